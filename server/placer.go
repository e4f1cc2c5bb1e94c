package server

// The server has one scheduling path, the reconcile loop (reconcile.go),
// which drives scheduler.Reconcile. PendingTask describes a waiting task to
// the Sizer (scheduling.go) and the cold-start model.

import fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"

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

// Cold-start sizes for tasks without hints or history (no limits).
const (
	DefaultCPURequest    = 0.1
	DefaultMemoryRequest = 64 << 20
)
