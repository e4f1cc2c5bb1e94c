package controller

import (
	"maps"

	"github.com/fathom-scheduler/fathom/scheduler"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TaskState is where a task is in its life. The controller is the only
// writer of task state; agents report what they observe (Report) and the
// controller decides what that means.
type TaskState uint8

// Task states. Placed, Running and Lost are active; Succeeded, Failed and
// Stopped are terminal (until a cron run starts the task again).
const (
	Pending   TaskState = iota + 1 // waiting for a node
	Placed                         // assigned to a node; not yet reported running
	Running                        // the agent reports the process running
	Succeeded                      // a batch or cron task exited 0
	Failed                         // exited non-zero (past its retries), rejected by the node
	Lost                           // its node stopped heartbeating; it is placed again
	Stopped                        // stopped on request
)

var stateNames = [...]string{"unspecified", "pending", "placed", "running", "succeeded", "failed", "lost", "stopped"}

func (s TaskState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Terminal reports whether the task is over.
func (s TaskState) Terminal() bool { return s == Succeeded || s == Failed || s == Stopped }

// Desired is what the controller wants an agent to do with a copy of a task.
type Desired uint8

// Desired states.
const (
	DesiredRun  Desired = iota + 1
	DesiredStop         // stop the process; the task ends when the agent confirms
	// DesiredKeep keeps a running copy running but never starts or restarts
	// it: the copy a node still has of a task that was placed elsewhere
	// (a ghost), until the replacement runs.
	DesiredKeep
)

func (d Desired) String() string {
	switch d {
	case DesiredRun:
		return "run"
	case DesiredStop:
		return "stop"
	case DesiredKeep:
		return "keep"
	}
	return "unspecified"
}

// Job types.
const (
	TypeService = "service"
	TypeBatch   = "batch"
	TypeCron    = "cron"
)

// Spec is a validated, normalized job spec in the controller's terms (the
// server translates the API's JobSpec at its edge). Sizes are hints: zero
// means "Fathom sizes it".
type Spec struct {
	Name      string
	Namespace string
	Type      string // service | batch | cron
	Priority  string // prod | batch | best-effort
	Replicas  int32
	Schedule  string // cron only
	Command   []string
	Env       map[string]string
	User      string
	// Hints (0 = none given), and as written in the spec ("500m", "256Mi").
	CPUHint    float64
	MemoryHint int64
	CPUText    string
	MemoryText string
	// Update is how a new version of a service replaces the running one
	// (nil: the defaults, DefaultUpdate); HealthCheck is run by the agent
	// (nil: none). See rollout.go.
	Update      *UpdatePolicy
	HealthCheck *HealthCheck
	// Restart is the restart policy (nil: the type's default, see
	// DefaultRestartPolicy).
	Restart *RestartPolicy
	// Constraints on node labels, all of which must hold where a task runs;
	// Spread names a node label whose values the tasks spread over ("" =
	// none).
	Constraints []Constraint
	Spread      string
	// Ports are the named ports each task holds on its node: Static
	// asks for that number, 0 for one the scheduler picks from the node's
	// port range (see Task.Ports).
	Ports []PortSpec
}

// PortSpec is one named port of a job's tasks.
type PortSpec struct {
	Name   string
	Static int
}

// Constraint operators on node labels.
const (
	OpEqual    = "="
	OpNotEqual = "!="
	OpIn       = "in"
	OpExists   = "exists"
)

// Constraint is one rule on node labels: Label Op Values (one value for =
// and !=, the set for in, none for exists).
type Constraint struct {
	Label  string
	Op     string
	Values []string
}

// clone returns a deep copy.
func (s Spec) clone() Spec {
	s.Command = slices.Clone(s.Command)
	s.Env = maps.Clone(s.Env)
	if s.Update != nil {
		u := *s.Update
		s.Update = &u
	}
	if s.HealthCheck != nil {
		h := *s.HealthCheck
		h.Command = slices.Clone(h.Command)
		s.HealthCheck = &h
	}
	if s.Restart != nil {
		p := *s.Restart
		s.Restart = &p
	}
	s.Ports = slices.Clone(s.Ports)
	s.Constraints = slices.Clone(s.Constraints)
	for i := range s.Constraints {
		s.Constraints[i].Values = slices.Clone(s.Constraints[i].Values)
	}
	return s
}

// Job is one submitted job.
type Job struct {
	ID        string
	Spec      Spec
	CreatedAt time.Time
	// StopRequested is set once the job was stopped; StoppedAt says when.
	StopRequested bool
	StoppedAt     time.Time
	// Cron jobs: when the current run started (zero = no run yet) and how
	// many runs have started.
	LastRunAt time.Time
	Runs      int32
	// Version is the spec's version (1 when submitted; every update adds
	// one); StableVersion the last one whose rollout succeeded (0: none
	// yet); Deployment the latest rollout (nil: none). Previous keeps the
	// specs of older versions that tasks still run, and of the stable one.
	Version       int64
	StableVersion int64
	Deployment    *Deployment
	Previous      []VersionedSpec
	// VersionAt is when the current version was submitted, VersionReason
	// why it exists ("submitted", "scaled from 4 to 6", ...).
	VersionAt     time.Time
	VersionReason string
}

func (j Job) clone() Job {
	j.Spec = j.Spec.clone()
	if j.Deployment != nil {
		d := *j.Deployment
		j.Deployment = &d
	}
	j.Previous = slices.Clone(j.Previous)
	for i := range j.Previous {
		j.Previous[i].Spec = j.Previous[i].Spec.clone()
	}
	return j
}

// JobState is a job's state, derived from its tasks.
type JobState uint8

// Job states.
const (
	JobPending   JobState = iota + 1 // no task placed yet (or a cron job between runs)
	JobRunning                       // at least one task placed or running
	JobSucceeded                     // every task succeeded
	JobFailed                        // batch: a task failed for good; service: every replica ended, one failed
	JobStopped                       // stopped on request
)

var jobStateNames = [...]string{"unspecified", "pending", "running", "succeeded", "failed", "stopped"}

func (s JobState) String() string {
	if int(s) < len(jobStateNames) {
		return jobStateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Transition is one entry of a task's recent history.
type Transition struct {
	Time    time.Time
	State   TaskState
	Node    string
	Message string
}

// Sizes are the request and limit of a task (0 limit = none).
type Sizes struct {
	CPURequest, CPULimit       float64
	MemoryRequest, MemoryLimit int64
}

// Task is one replica of a job: the record the controller persists.
type Task struct {
	JobID      string
	Index      int32
	State      TaskState
	Desired    Desired
	Node       string // where it is placed ("" while pending or lost)
	Generation int64  // bumps on every change of its assignment
	// StartGeneration is the generation at which the current run was asked
	// for (a placement, a restart): reports of an earlier run are stale.
	StartGeneration int64
	Sizes
	PID        int32
	ExitCode   int32
	OOMKilled  bool
	Evicted    bool
	Restarts   int32
	StartedAt  time.Time
	FinishedAt time.Time
	UpdatedAt  time.Time
	// Reason says, for a person, why the task is in this state or where.
	Reason  string
	History []Transition
	// PlacedAt is when the current placement was made; ResizedAt when its
	// sizes last changed (moves and shrinks wait on both).
	PlacedAt  time.Time
	ResizedAt time.Time
	// Eviction back-off: the task is not placed on AvoidNode again before
	// AvoidUntil, nor while that node has no room for it.
	Evictions  int32
	AvoidNode  string
	AvoidUntil time.Time
	// Version is the job version the task runs (its spec), VersionAt when
	// it took it. Health is its health check's last result in this run,
	// HealthMessage the check's output, HealthySince when it last turned
	// healthy (zero: not healthy; without a check: when it began running).
	Version       int64
	VersionAt     time.Time
	Health        Health
	HealthMessage string
	HealthySince  time.Time
	// Restart policy bookkeeping (restart.go): restarts counted in the
	// current interval and when it began; RestartAt is when a restart that
	// waits for its delay is due (zero: none waits).
	RestartAttempts int32
	RestartWindow   time.Time
	RestartAt       time.Time
	// Ports are the task's port numbers by name on Node, chosen when it was
	// placed (nil for a job without ports).
	Ports map[string]int
}

// ID is the task's stable id, "<job id>-<index>".
func (t *Task) ID() string { return TaskID(t.JobID, t.Index) }

func (t Task) clone() Task {
	t.History = slices.Clone(t.History)
	t.Ports = maps.Clone(t.Ports)
	return t
}

// TaskID is the stable id of task idx of a job: "<job id>-<index>". A task
// keeps its id when it moves or is placed again.
func TaskID(jobID string, idx int32) string { return jobID + "-" + strconv.Itoa(int(idx)) }

// SplitTaskID inverts TaskID.
func SplitTaskID(id string) (jobID string, idx int32, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(id[i+1:], 10, 32)
	if err != nil || n < 0 {
		return "", 0, false
	}
	return id[:i], int32(n), true
}

// maxHistory bounds Task.History.
const maxHistory = 8

// Node is a machine's persisted record.
type Node struct {
	Name         string
	CPU          float64 // cores offered to tasks
	Memory       int64   // bytes offered to tasks
	Labels       map[string]string
	Enforcement  string
	AgentAddress string
	Version      string
	Up           bool
	// Schedulable is false when cordoned or draining.
	Schedulable bool
	Draining    bool
	// RemovalRequestedAt is set when the controller cordoned the node to
	// hand it to the node provider for removal.
	RemovalRequestedAt time.Time
	RegisteredAt       time.Time
	// PortRange is where the node's dynamic ports come from (`fathom
	// agent --port-range`); the zero range gives none.
	PortRange scheduler.PortRange
}

func (n Node) clone() Node {
	n.Labels = maps.Clone(n.Labels)
	return n
}

// NodeInfo is what an agent registers.
type NodeInfo struct {
	Name         string
	CPU          float64
	Memory       int64
	Labels       map[string]string
	Enforcement  string
	AgentAddress string
	Version      string
	PortRange    scheduler.PortRange
}

// Usage is a node's observed load from its heartbeat (memory only, never
// persisted).
type Usage struct {
	CPUUsed         float64
	MemoryUsed      int64
	MemoryAvailable int64
	MemoryPressure  bool
	// TasksCPUUsed and TasksMemoryUsed are what Fathom's tasks use (0 when
	// the agent does not say).
	TasksCPUUsed    float64
	TasksMemoryUsed int64
}

// Ghost is a copy of a task left on a node other than the task's current
// placement: after its node was lost (it may only be cut off) or while the
// task moves. The node keeps it running (DesiredKeep), never restarting it,
// until the task's current placement runs; then it is stopped. Ghosts are
// persisted so that a restarted control plane keeps that promise.
type Ghost struct {
	TaskID     string
	Node       string
	Generation int64 // of the copy on that node
	Sizes
	Since time.Time
}

// Assignment is one task an agent should run, as the agent sees it.
type Assignment struct {
	TaskID    string
	JobID     string
	Namespace string
	JobName   string
	Index     int32
	Command   []string
	Env       map[string]string
	User      string
	Type      string
	Priority  string
	Sizes
	Desired    Desired
	Generation int64
	// Ports are the task's ports on this node by name; the agent passes
	// each as FATHOM_PORT_<NAME> (upper case).
	Ports map[string]int
	// HealthCheck is run by the agent while the task runs (nil: none);
	// Version is the job version the assignment is of.
	HealthCheck *HealthCheck
	Version     int64
}

// AssignmentChange is one change of a node's assignment set: the task's
// assignment on the node (nil: the task left the node and the agent stops
// it). Changes are per task: a node's whole set never travels as one value.
type AssignmentChange struct {
	Node       string
	TaskID     string
	Assignment *Assignment
}

// Status is what an agent reports of one task.
type Status struct {
	TaskID     string
	State      ReportedState
	PID        int32
	ExitCode   int32
	OOMKilled  bool
	Evicted    bool
	Reason     string
	Restarts   int32
	StartedAt  time.Time
	FinishedAt time.Time
	Generation int64
	// MemoryUsed is the task's memory use when it was evicted or killed (0
	// when the agent does not say).
	MemoryUsed int64
	// Health is the task's health check's last result in this run
	// (HealthNone: no check), HealthMessage its output.
	Health        Health
	HealthMessage string
	// LogTail is the end of the task's output when its process ended on
	// its own (bounded by the agent; see internal/logtail).
	LogTail string
}

// ReportedState is a task state as an agent observes it.
type ReportedState uint8

// Reported states.
const (
	ReportedRunning ReportedState = iota + 1
	ReportedSucceeded
	ReportedFailed
	ReportedStopped
	// ReportedRejected: the node cannot run the assignment (missing
	// executable, unknown user, a limit below current use).
	ReportedRejected
)

func (s ReportedState) String() string {
	switch s {
	case ReportedRunning:
		return "running"
	case ReportedSucceeded:
		return "succeeded"
	case ReportedFailed:
		return "failed"
	case ReportedStopped:
		return "stopped"
	case ReportedRejected:
		return "rejected"
	}
	return "unspecified"
}
