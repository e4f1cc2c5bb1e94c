// Package scheduler is Fathom's pure placement core.
//
// It does no I/O, never reads the clock and never uses global randomness: every
// call takes the cluster's State, the time `now` and a seed, and returns a
// value that the caller applies. Its caller is package controller, which the
// server drives on real time and the simulator on virtual time.
//
// Entry points, on a long-lived State fed with every change:
//
//   - Place(view, pending, opts) packs pending tasks onto nodes through a
//     pipeline of filters (node health, constraints, spread, resources,
//     prod limits, overload risk) and scores (best fit blended with a
//     stranding-avoidance term), with candidate sampling over a free-capacity
//     index so the cost per placement stays flat as the cluster grows.
//     A prod task that fits nowhere may preempt lower-priority tasks.
//   - State.Resize decides where a running task's new sizes fit: in place, a
//     move, or left with the reason.
//   - State.Consolidate drains under-used nodes into nodes in use.
//   - State.Autoscale counts machines used, needed and removable.
//
// Every decision carries an Explanation: how many nodes were looked at, how
// many were filtered for which reason, and the top scores.
//
// The overload risk bound is documented in risk.go and README.md.
package scheduler
