// Package agent is Fathom's node agent: the part that runs on every machine.
//
// Run is the entry point (`fathom agent`, and `fathom dev` in-process). It
// registers the node with the control plane, heartbeats, watches the full
// desired set of assignments (level-triggered) and reconciles its tasks to
// it, reports every task state change, and keeps doing so across control
// plane outages: sessions reconnect with jittered backoff, re-register and
// re-report the current state of every task. The control plane is seen
// through the small ControlPlane interface; GRPCControlPlane speaks
// fathom.v1.AgentService and StaticControlPlane reads a local file. Wire types
// are translated at that edge; the rest of the package uses its own
// Assignment and TaskStatus.
//
// Executor runs each task as a process that leads its own process group, in
// its own cgroup (package cgroups: v2, v1, or none), with the assignment's
// memory limit and CPU quota. Limit changes are applied in place (same pid);
// a limit below current use is rejected and the task keeps its old limits.
// Stop is SIGTERM to the group, a grace period, then SIGKILL to the group and
// everything left in the cgroup. A process that exits is never started again
// on the agent's own: the control plane's restart policy decides and asks
// with a new generation; the exit's status carries the exit code and the
// last lines of the output (10 lines, 1 KiB). Exit codes come from wait(2), collected by one
// reaper goroutine for all tasks; OOM kills from the cgroup's own oom_kill
// counter. Each task's stdout and stderr are its own O_APPEND descriptor on
// output.log, rotated by size by copying and truncating while the task is
// frozen for an instant (logrotate.go), so no line is lost and an agent
// restart never touches a task's output. Tasks outlive the agent: their pid,
// process start time and cgroup paths are kept in DataDir, and a restarted
// agent re-attaches instead of starting a second copy.
//
// Sampler reads every task's cgroup counters once a second and keeps the
// peak working set between pushes; it is a prometheus.Collector for
// /metrics and builds remote-write batches that RemoteWriter pushes every
// 10 s through a bounded buffer that counts what it drops. Under memory
// pressure SelectEvictions picks best-effort, then batch tasks (largest
// overuse of request first) and the executor kills them before the kernel's
// OOM killer has to.
//
// See docs/agent.md for the operator's view.
package agent
