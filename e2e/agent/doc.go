// Package agent holds the agent's end-to-end test: the real fathom binary
// as server and agent, a job submitted through the CLI, usage read back with
// PromQL from the server, and the agent SIGKILLed and restarted under its
// running task. It builds the binary, so it runs only with FATHOM_E2E=1.
package agent
