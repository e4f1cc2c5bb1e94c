package server

// The server has one scheduling path, the reconcile loop (reconcile.go),
// which drives scheduler.Reconcile. The types below describe nodes and
// waiting tasks to SchedulerPlacer.Place, a one-shot of the same translation
// for tools and tests, and PendingTask to the Sizer.

import fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"

// NodeView is what a placer sees of one node.
type NodeView struct {
	Name        string
	Labels      map[string]string
	CPUCores    float64
	MemoryBytes int64
	// Sums of the requests of the tasks already placed there.
	CPURequested    float64
	MemoryRequested int64
	// Measured usage from the last heartbeat.
	CPUUsed        float64
	MemoryUsed     int64
	MemoryPressure bool
	Tasks          int
	// Running lists the tasks placed there (for spread and priorities).
	Running []RunningTask
}

// RunningTask is a task already placed on a node.
type RunningTask struct {
	TaskID, JobID, Namespace, JobName, Priority string
	CPURequest, CPULimit                        float64
	MemoryRequest, MemoryLimit                  int64
}

// PendingTask is a task that needs a node.
type PendingTask struct {
	TaskID    string
	JobID     string
	Index     int32
	Namespace string
	JobName   string
	Type      string // service | batch | cron
	Priority  string // prod | batch | best-effort
	// Command is the task's command line (a cold-start model feature).
	Command []string
	// Hints from the spec (0 = none given).
	CPUHint    float64
	MemoryHint int64
	// LastNode is where the task ran before it was lost or drained ("" = none).
	LastNode string
}

// jobPendingTask is the job-level part of a PendingTask for job j: what the
// Sizer and the cold-start model know of every task of the job.
func jobPendingTask(j *fathomv1.Job) PendingTask {
	return PendingTask{JobID: j.GetId(), Namespace: j.GetNamespace(), JobName: j.GetName(), Type: j.GetSpec().GetType(),
		Priority: j.GetSpec().GetPriority(), Command: j.GetSpec().GetTask().GetCommand(),
		CPUHint: j.GetCpuHintCores(), MemoryHint: j.GetMemoryHintBytes()}
}

// Placement is a placer's decision for one task.
type Placement struct {
	TaskID string
	// Node is "" when the task cannot be placed now; Reason says why.
	Node   string
	Reason string
	// Sizes the agent enforces (limits 0 = unlimited).
	CPURequest, CPULimit       float64
	MemoryRequest, MemoryLimit int64
}

// Cold-start sizes for tasks without hints or history (no limits).
const (
	DefaultCPURequest    = 0.1
	DefaultMemoryRequest = 64 << 20
)
