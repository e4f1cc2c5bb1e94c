// Package scheduler is Fathom's pure placement and reconciliation core.
//
// It does no I/O, never reads the clock and never uses global randomness: every
// call takes a snapshot of the cluster, the time `now` and a seed, and returns a
// value (a Plan or a Result) that the caller applies. The server drives it on
// real time, the simulator on virtual time.
//
// Two entry points:
//
//   - Place(view, pending, opts) packs pending tasks onto nodes through a
//     pipeline of filters (node health, constraints, spread, resources,
//     prod limits, overload risk) and scores (best fit blended with a
//     stranding-avoidance term), with candidate sampling over a free-capacity
//     index so the cost per placement stays flat as the cluster grows.
//     A prod task that fits nowhere may preempt lower-priority tasks.
//   - Reconcile(state, opts) turns observed state (heartbeats, running copies,
//     changed recommendations) into actions: nodes down, tasks lost and
//     re-placed, stale copies stopped, resizes, consolidation drains and an
//     autoscaling report.
//
// Every decision carries an Explanation: how many nodes were looked at, how
// many were filtered for which reason, and the top scores.
//
// The overload risk bound is documented in risk.go and README.md.
package scheduler
