// Package sim replays cluster traces through the control loop the server
// runs (package controller, and through it the scheduler's long-lived State
// and the predictor with Fathom's recommenders) on virtual time, so that
// claims about machines saved and risk taken are measured with the code that
// runs in production.
//
// A Workload is a set of tasks with their usage per 5-minute window (built
// from the same predictor.Series that `fathom model eval` reads). Run
// simulates it once per policy, each in a controller of its own:
//
//   - provisioned: a recommender that answers the size the trace's owner
//     provisioned, packed on its limits;
//   - vpa, autopilot: the baseline recommenders, packed on their limits
//     (controller.SizingPolicy.PackOnLimit: request = limit), so machines
//     are never oversubscribed;
//   - fathom: packed on its predicted request with the predictor's step
//     distribution (predictor/step.go: mean = max(decayed mean, last
//     window), spread = Options.StepSpread × the RMS change from one window
//     to the next) under the scheduler's overload-risk bound with the tasks'
//     correlation (by default the predictor's online estimate, as the
//     server's --risk-correlation online);
//   - oracle: a recommender that answers the usage of the window about to
//     start, through the same loop with no deadband or delay.
//
// What is simulated is what the controller cannot see for itself: the
// clock (one window per step), the agents (simulated machines that run what
// their assignments say, report starts, stops, OOM kills and evictions, and
// heartbeat), the trace's usage (capped at each copy's limits; memory above
// the limit is an OOM kill, memory beyond a machine's capacity evicts), the
// node provider (machines added and removed at once), machine failures
// (Options.Failures) and the predictor's observations (each window, after
// it is used). Every decision — placement, resizes, moves, OOM and
// eviction handling, consolidation, autoscaling — is the controller's. See
// docs/simulator.md.
//
// Run does no I/O and is deterministic for a workload, options and seed;
// Load and the trace readers in sim/trace do the reading, Export writes a
// live cluster's usage in Fathom's trace format.
package sim
