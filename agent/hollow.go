package agent

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// A hollow node is the agent's control-plane session without processes, the
// way Kubernetes' Kubemark runs hollow kubelets: it registers, heartbeats
// every interval the server names, watches the per-task assignment stream
// and reports each task RUNNING as soon as it is assigned (STOPPED when told
// to stop), over the same session code (session, reporter,
// AssignmentStream) and whatever ControlPlane it is given — the real gRPC
// client for `fathom bench cluster`. Many run in one process.

// HollowConfig configures RunHollow.
type HollowConfig struct {
	// Node is what the hollow node registers (Name, CPUCores and
	// MemoryBytes are required; Enforcement defaults to "none").
	Node NodeInfo
	// ControlPlane is the session's transport. Required.
	ControlPlane ControlPlane
	// Now is the clock for the statuses' start and finish times; nil =
	// time.Now.
	Now func() time.Time
	// Log; nil = a logger that drops everything (thousands run at once).
	Log *slog.Logger
}

// RunHollow runs a hollow node until ctx ends.
func RunHollow(ctx context.Context, cfg HollowConfig) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Node.Enforcement == "" {
		cfg.Node.Enforcement = "none"
	}
	if cfg.Node.Version == "" {
		cfg.Node.Version = "hollow"
	}
	h := &hollowHost{rep: newReporter(10000), now: cfg.Now, node: cfg.Node, tasks: map[string]TaskStatus{}}
	runSessions(ctx, cfg.ControlPlane, cfg.Node, h.rep, h, cfg.Log.With("node", cfg.Node.Name))
}

// hollowHost is the session host of a hollow node: a set of task statuses
// in place of an executor.
type hollowHost struct {
	rep  *reporter
	now  func() time.Time
	node NodeInfo

	mu    sync.Mutex
	tasks map[string]TaskStatus
}

func (h *hollowHost) registered(Registration) {}

// reconcile "starts" every assignment to run that does not run (a new task,
// or a new run of it: its generation moved past the run's), "stops" those
// asked to stop, keeps KEEP copies as they are, and forgets tasks that left
// the set. Each change is reported, as the executor would.
func (h *hollowHost) reconcile(set []Assignment) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	want := make(map[string]bool, len(set))
	for _, a := range set {
		want[a.TaskID] = true
		st, known := h.tasks[a.TaskID]
		switch a.Desired {
		case DesiredRun:
			if known && st.State == StateRunning {
				st.Generation = max(st.Generation, a.Generation) // resized in place
				h.tasks[a.TaskID] = st
				continue
			}
			st = TaskStatus{TaskID: a.TaskID, State: StateRunning, StartedAt: now, Generation: a.Generation}
		case DesiredStop:
			if !known || st.State != StateRunning {
				continue
			}
			st.State, st.FinishedAt, st.Reason, st.Generation = StateStopped, now, "stopped as asked", a.Generation
		default: // DesiredKeep: never starts anything
			continue
		}
		h.tasks[a.TaskID] = st
		h.rep.add(st)
	}
	for id := range h.tasks {
		if !want[id] {
			delete(h.tasks, id)
		}
	}
}

func (h *hollowHost) statuses() []TaskStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]TaskStatus, 0, len(h.tasks))
	for _, st := range h.tasks {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	return out
}

// usage: a hollow node uses nothing and has all its memory available.
func (h *hollowHost) usage() NodeHeartbeat {
	return NodeHeartbeat{MemoryAvailableBytes: h.node.MemoryBytes}
}
