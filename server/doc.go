// Package server is Fathom's control plane wiring: the gRPC services of
// api/proto/fathom/v1 (jobs, nodes, agents, recommendations, models), the
// grpc-gateway REST API on the same HTTP port, and the loop that drives the
// pure control loop (package controller).
//
// loop.go: every state change is an op applied to the controller by one
// goroutine; rounds run every tenth of the heartbeat timeout (and soon after
// an op that kicks them); each batch's Ready is committed to etcd (package
// store) before the ops are answered and the assignment changes are sent to
// the agents' streams (streams.go: per-task updates with a bounded buffer per
// node and a full resend when one falls behind). If a commit fails the
// controller is restored from etcd and the ops answered UNAVAILABLE, so an
// acknowledged request is durable and a restarted server loads exactly what
// was acknowledged.
//
// The rest is wiring: jobs.go, nodes.go, agent.go (handlers: an op or a
// read), convert.go (domain <-> API and stored records), rightsizing.go (reads
// usage over PromQL and feeds the predictor the controller shares),
// autoscale.go (runs the node-provider hook the controller asks for),
// registry.go and coldstart.go (model versions). Task states, sizing and
// failure handling are the controller's: see docs/controller.md.
package server
