// Package sim replays cluster traces through Fathom's real recommenders
// (package models, scored with package predictor's Tally) and its real
// scheduler (package scheduler) on virtual time, so that claims about
// machines saved and risk taken are measured with the code that runs in
// production.
//
// A Workload is a set of tasks with their usage per 5-minute window (built
// from the same predictor.Series that `fathom model eval` reads). Run
// simulates it once per policy:
//
//   - provisioned: tasks are sized as their owners provisioned them;
//   - vpa, autopilot: the baseline recommenders; tasks are packed on their
//     limits (request = limit), so machines are never oversubscribed;
//   - fathom: packed on its predicted request with a predicted usage
//     distribution (the step distribution of fast.go: mean = max(decayed
//     mean, last window), spread = Options.StepSpread × the RMS change from
//     one window to the next), admitted only while the scheduler's
//     overload-risk bound stays below ε, with the tasks' correlation
//     (Options.Correlation; by default estimated as the run goes from the
//     windows replayed so far, see EstimateStepCorrelation);
//   - oracle: knows each window's usage in advance and repacks from scratch
//     every window: the floor.
//
// The engine is a discrete-event loop (events.go) over virtual time: task
// arrivals and departures, machine failures (Options.Failures) and window
// ticks. Each window: every running task is sized with no look-ahead (the
// recommender has seen only earlier windows), raised sizes are applied at
// once and lowered ones past a deadband (in place when the scheduler says
// they fit there, otherwise by moving the task); waiting tasks are placed
// with scheduler.State.Place, machines being added while a task fits on
// none; tasks then use what the trace says, capped at their limits; a
// machine whose memory runs out evicts its lowest-priority tasks; every
// hour machines whose tasks fit elsewhere are drained; empty machines are
// released. Machines used in a window are the machines running at least
// one task. See docs/simulator.md.
//
// Run does no I/O and is deterministic for a workload, options and seed;
// Load and the trace readers in sim/trace do the reading.
package sim
