package server

import (
	"context"
	"sort"
	"time"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// Placer chooses nodes for pending tasks. It must be pure: no I/O, no clock
// (now is given), no global randomness. Swapping the placement policy (for
// scheduler.Place) means implementing this interface and setting
// Options.Placer; nothing else in the server changes.
type Placer interface {
	Place(nodes []NodeView, pending []PendingTask, now time.Time) []Placement
}

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
	// Hints from the spec (0 = none given).
	CPUHint    float64
	MemoryHint int64
	// LastNode is where the task ran before it was lost or drained ("" = none).
	LastNode string
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

// maxPlacePerRound bounds one placement round.
const maxPlacePerRound = 10000

func (s *Server) placeLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		}
		if err := s.placeRound(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("placement round failed", "err", err)
		}
		// Coalesce bursts of submissions into one round.
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// placeRound places pending tasks once.
func (s *Server) placeRound(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock() // write: we prune s.pending and set wait reasons
	var nodes []NodeView
	for _, ne := range s.nodes {
		n := ne.node
		if n.GetState() != fathomv1.NodeState_NODE_STATE_UP || !n.GetSchedulable() {
			continue
		}
		v := NodeView{Name: n.GetName(), Labels: n.GetLabels(), CPUCores: n.GetCpuCores(), MemoryBytes: n.GetMemoryBytes(),
			CPUUsed: n.GetCpuUsedCores(), MemoryUsed: n.GetMemoryUsedBytes(), MemoryPressure: n.GetMemoryPressure()}
		for id := range s.byNode[n.GetName()] {
			jobID, idx, _ := splitTaskID(id)
			if e := s.jobs[jobID]; e != nil {
				if t := e.tasks[idx]; t != nil && t.GetNode() == n.GetName() && !terminal(t.GetState()) {
					v.CPURequested += t.GetCpuRequestCores()
					v.MemoryRequested += t.GetMemoryRequestBytes()
					v.Tasks++
					v.Running = append(v.Running, RunningTask{TaskID: id, JobID: jobID, Namespace: t.GetNamespace(), JobName: t.GetJobName(),
						Priority: e.job.GetSpec().GetPriority(), CPURequest: t.GetCpuRequestCores(), CPULimit: t.GetCpuLimitCores(),
						MemoryRequest: t.GetMemoryRequestBytes(), MemoryLimit: t.GetMemoryLimitBytes()})
				}
			}
		}
		nodes = append(nodes, v)
	}
	sort.Slice(nodes, func(a, b int) bool { return nodes[a].Name < nodes[b].Name })
	// Without a node there is nothing to decide: say why once, server-wide,
	// instead of walking every pending job (keeps submissions fast while no
	// agent is connected).
	s.noNodes = ""
	if len(nodes) == 0 {
		s.noNodes = "no node is up and schedulable (start an agent: fathom agent --server ADDR)"
		if len(s.nodes) == 0 {
			s.noNodes = "no node has registered (start an agent: fathom agent --server ADDR)"
		}
		s.mu.Unlock()
		return nil
	}
	var pending []PendingTask
	var entries []*jobEntry
	for id, e := range s.pending {
		has := false
		for i := range e.tasks {
			t := e.tasks[i]
			if !needsPlacement(e, t) {
				continue
			}
			has = true
			if len(pending) >= maxPlacePerRound {
				break
			}
			p := PendingTask{TaskID: TaskID(e.job.GetId(), int32(i)), JobID: e.job.GetId(), Index: int32(i),
				Namespace: e.job.GetNamespace(), JobName: e.job.GetName(), Type: e.job.GetSpec().GetType(),
				Priority: e.job.GetSpec().GetPriority(), CPUHint: e.job.GetCpuHintCores(), MemoryHint: e.job.GetMemoryHintBytes()}
			if t != nil && len(t.GetHistory()) > 0 {
				for _, h := range t.GetHistory() {
					if h.GetNode() != "" {
						p.LastNode = h.GetNode()
					}
				}
			}
			pending = append(pending, p)
		}
		if !has {
			delete(s.pending, id)
			e.waitReason = ""
			continue
		}
		entries = append(entries, e)
	}
	if len(pending) == 0 {
		s.mu.Unlock()
		return nil
	}
	// Oldest jobs first, tasks by index: a stable, explainable order.
	sort.SliceStable(pending, func(a, b int) bool {
		ja, jb := s.jobs[pending[a].JobID].job, s.jobs[pending[b].JobID].job
		if !ja.GetCreatedAt().AsTime().Equal(jb.GetCreatedAt().AsTime()) {
			return ja.GetCreatedAt().AsTime().Before(jb.GetCreatedAt().AsTime())
		}
		if pending[a].JobID != pending[b].JobID {
			return pending[a].JobID < pending[b].JobID
		}
		return pending[a].Index < pending[b].Index
	})
	now := s.now()
	start := time.Now() // wall time of the pass, for fathom_scheduler_placement_duration
	plan := s.placer.Place(nodes, pending, now)
	s.metrics.sched.PlacementDuration.Observe(time.Since(start).Seconds())
	b := &batch{}
	rescheduled := 0
	for _, pl := range plan {
		jobID, idx, ok := splitTaskID(pl.TaskID)
		e := s.jobs[jobID]
		if !ok || e == nil || int(idx) >= len(e.tasks) || !needsPlacement(e, e.tasks[idx]) {
			continue
		}
		if pl.Node == "" {
			e.waitReason = pl.Reason
			s.metrics.sched.Placements.WithLabelValues("unschedulable").Inc()
			continue
		}
		if e.tasks[idx].GetState() == fathomv1.TaskState_TASK_STATE_LOST {
			rescheduled++
		}
		if ne := s.nodes[pl.Node]; ne == nil || ne.node.GetState() != fathomv1.NodeState_NODE_STATE_UP {
			continue
		}
		t := s.newTaskRecord(e, int(idx))
		t.State = fathomv1.TaskState_TASK_STATE_PLACED
		t.Node = pl.Node
		t.DesiredState = fathomv1.DesiredState_DESIRED_STATE_RUN
		t.Generation++
		t.CpuRequestCores, t.CpuLimitCores = pl.CPURequest, pl.CPULimit
		t.MemoryRequestBytes, t.MemoryLimitBytes = pl.MemoryRequest, pl.MemoryLimit
		t.Pid, t.ExitCode, t.OomKilled, t.Evicted, t.StartedAt, t.FinishedAt = 0, 0, false, false, nil, nil
		withHistory(t, now, pl.Reason)
		b.tasks = append(b.tasks, t)
	}
	s.mu.Unlock()
	if err := s.commit(ctx, b); err != nil {
		return err
	}
	s.metrics.placements.Add(float64(len(b.tasks)))
	s.metrics.sched.Placements.WithLabelValues("placed").Add(float64(len(b.tasks)))
	if rescheduled > 0 {
		s.metrics.sched.Reschedules.WithLabelValues("node_failed").Add(float64(rescheduled))
	}
	return nil
}
