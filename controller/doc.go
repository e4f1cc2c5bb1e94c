// Package controller is Fathom's control loop: the one place that decides
// what happens to every job, task and node.
//
// It is pure, like etcd's raft: no I/O, no clock, no global randomness.
// Callers feed it events, each with the time it happened — Submit, Stop,
// Register, Heartbeat, Report, Cordon, Drain, RemoveNode, Observed (new
// usage), ProviderDone, Update, Scale, Promote — and run rounds with Tick(now). Ready returns what
// changed since the last call: records to persist, job names reserved or
// released, per-node assignment changes for the agents, a node-provider call,
// counters and log lines. The caller persists a Ready before it acknowledges
// anything that caused it; if persisting fails it rebuilds the controller
// from the store with Restore.
//
// A round: nodes not heard from go down and their tasks are lost (their
// copies kept serving as ghosts until replaced); tasks whose restart delay
// is over start again on their nodes (restart.go: the restart policy, like
// Nomad's, decides when a task that exits runs again or fails); cron runs
// start; rollouts replace old-version tasks as their health allows
// (rollout.go); waiting
// tasks are placed by the long-lived scheduler.State within the overload
// risk (prod may preempt; tasks that found no room wait in a blocked list
// until capacity changes); running tasks are resized by the one sizing
// policy (sizing.go); under-used nodes are consolidated when configured;
// the autoscaling report and node-provider decisions come last.
//
// The server (package server) drives it on real time with etcd and gRPC
// agents; the simulator (package sim) drives the same code on virtual time
// with simulated machines. See docs/controller.md.
package controller
