package agent

import (
	"maps"
	"slices"
	"time"
)

// TaskState is a task's state as the agent reports it.
type TaskState string

const (
	StateRunning   TaskState = "RUNNING"
	StateSucceeded TaskState = "SUCCEEDED"
	StateFailed    TaskState = "FAILED"
	StateStopped   TaskState = "STOPPED"
	// StateRejected: the assignment cannot be satisfied here (missing
	// executable, unknown user, limit below current use).
	StateRejected TaskState = "REJECTED"
)

// Terminal reports whether no process runs for the task in this state.
func (s TaskState) Terminal() bool { return s != StateRunning && s != "" }

// DesiredState is what the control plane wants for a task.
type DesiredState int

const (
	DesiredRun DesiredState = iota
	DesiredStop
	// DesiredKeep keeps a running copy running (and resizes it) but never
	// starts or restarts it: the server's word for a copy whose task was
	// re-placed elsewhere and whose replacement does not run yet.
	DesiredKeep
)

// Priority classes, lowest evicted first.
const (
	PriorityProd       = "prod"
	PriorityBatch      = "batch"
	PriorityBestEffort = "best-effort"
)

// Assignment is one task the control plane wants on this node. It mirrors
// the wire message fathom.v1.Assignment; the gRPC edge translates.
type Assignment struct {
	TaskID    string            `json:"task_id"`
	JobID     string            `json:"job_id"`
	Namespace string            `json:"namespace"`
	JobName   string            `json:"job_name"`
	TaskIndex int32             `json:"task_index"`
	Command   []string          `json:"command"`
	Env       map[string]string `json:"env,omitempty"`
	User      string            `json:"user,omitempty"`
	JobType   string            `json:"job_type"` // service | batch | cron
	Priority  string            `json:"priority"` // prod | batch | best-effort

	CPURequestCores    float64 `json:"cpu_request_cores"`
	CPULimitCores      float64 `json:"cpu_limit_cores"` // 0 = unlimited
	MemoryRequestBytes int64   `json:"memory_request_bytes"`
	MemoryLimitBytes   int64   `json:"memory_limit_bytes"` // 0 = unlimited

	Desired    DesiredState `json:"desired_state"`
	Generation int64        `json:"generation"`
	// Ports are the task's named ports on this node, passed as
	// FATHOM_PORT_<NAME> (upper case, '-' as '_').
	Ports map[string]int32 `json:"ports,omitempty"`
	// HealthCheck is run while the task runs (health.go); Version is the
	// job version (informational).
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
	Version     int64        `json:"version,omitempty"`
}

// sameSpec reports whether a and b run the same process, so that a change
// between them is a change of limits only and can be applied in place.
func sameSpec(a, b Assignment) bool {
	if a.TaskID != b.TaskID || a.User != b.User || a.JobType != b.JobType || !slices.Equal(a.Command, b.Command) || len(a.Env) != len(b.Env) || !maps.Equal(a.Ports, b.Ports) {
		return false
	}
	for k, v := range a.Env {
		if w, ok := b.Env[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// AssignmentSet is the full desired set for the node (level-triggered).
type AssignmentSet struct {
	Revision    int64
	Assignments []Assignment
}

// TaskStatus is one task's reported state. It mirrors fathom.v1.TaskStatus.
type TaskStatus struct {
	TaskID    string    `json:"task_id"`
	State     TaskState `json:"state"`
	PID       int32     `json:"pid,omitempty"`
	ExitCode  int32     `json:"exit_code"`
	OOMKilled bool      `json:"oom_killed,omitempty"`
	Evicted   bool      `json:"evicted,omitempty"`
	// MemoryUsed is the working set when the task was evicted (0 = unknown).
	MemoryUsed int64     `json:"memory_used_bytes,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Restarts   int32     `json:"restarts"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Generation int64     `json:"generation"`
	// LogTail is the end of the task's output when its process ended on
	// its own (bounded: 10 lines, 1 KiB).
	LogTail string `json:"log_tail,omitempty"`
	// Health is the health check's last result in this run ("": no check
	// or not checked yet), HealthMessage its output (bounded).
	Health        Health `json:"health,omitempty"`
	HealthMessage string `json:"health_message,omitempty"`
}
