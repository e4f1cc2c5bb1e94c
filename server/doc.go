// Package server is Fathom's control plane: the gRPC services of
// api/proto/fathom/v1 (jobs, nodes, agents; recommendations and models as a
// contract until the predictor is wired in), the grpc-gateway REST API on the
// same HTTP port, the job and task state machine, and the reconcile loop
// (agent liveness and placement).
//
// State lives in etcd (package store) and is mirrored in memory. Every change
// is committed to etcd first and installed in memory after, so an
// acknowledged request is durable and a restarted server loads exactly what
// was acknowledged.
//
// Task states: PENDING -> PLACED -> RUNNING -> SUCCEEDED | FAILED | STOPPED.
// A task whose node stops heartbeating becomes LOST and is placed again
// (same task id, next generation). A drained or evicted task goes back to
// PENDING. A task that is still pending when its job is stopped is STOPPED
// without ever running. See docs/operator-guide.md.
//
// One loop decides where tasks run: the reconcile loop (reconcile.go) drives
// scheduler.Reconcile every round (nodes down, lost tasks, placements within
// an overload risk, preemption, stale copies, resizes and moves,
// consolidation, the autoscaling report) and commits the result; see
// docs/scheduler.md. With Options.RightSizer the server also runs the
// right-sizing loop (rightsizing.go) and the model registry (registry.go);
// see docs/rightsizing.md.
package server
