package server

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// The reconcile loop is the server's one scheduling path. Every round it
// builds a scheduler.ClusterState from what the server knows (nodes with
// their last heartbeat and cordon/drain flags, every wanted task with its
// current placement and sizes, the copies agents run, the predictor's
// current requests), calls scheduler.Reconcile, and applies the Result in
// one etcd commit: nodes down or up, lost tasks, placements, preemptions,
// stale copies stopped, requests resized or tasks moved, drains. Agents see
// the outcome through their level-triggered assignment sets.
//
// Liveness is part of the same round (a node whose heartbeat is older than
// HeartbeatTimeout is marked down by Reconcile), so there is no second loop
// deciding where tasks go.
//
// Division of labour with the right-sizing loop (rightsizing.go): that loop
// owns limits (what the agent enforces, changed in place by its own policy);
// this loop owns requests (what the scheduler packs with): a changed
// recommendation is applied in place when the node has room, otherwise the
// task is moved when the unmet share passes the move cost, or left.

// reconcileState is what the loop keeps between rounds. Guarded by Server.mu.
type reconcileState struct {
	opts scheduler.ReconcileOptions
	// ghosts are copies of a task left on a node after the task was lost
	// (its node stopped heartbeating) or moved: task id -> node -> the
	// record as that node last had it. A ghost stays in its node's
	// assignment set, so a returning or partitioned node keeps serving the
	// task, until the task's current placement reports running; then it is
	// dropped and the agent stops it (Reconcile's stale-copy rule).
	ghosts map[string]map[string]*fathomv1.Task
	// resizedAt is when a task's request was last changed by the loop.
	resizedAt map[string]time.Time
	// wanted, when set (tests), replaces the right-sizer as the source of
	// running tasks' recommended sizes.
	wanted func() map[string]Sizing
}

// ghostChange adds (rec != nil) or removes a ghost copy in a batch.
type ghostChange struct {
	task, node string
	rec        *fathomv1.Task
}

// initReconcile checks the reconcile options and fills their defaults.
func (s *Server) initReconcile() error {
	o := s.o.Reconcile
	o.HeartbeatTimeout = s.o.HeartbeatTimeout
	if s.o.OverloadRisk != 0 {
		o.OverloadRisk = s.o.OverloadRisk
	}
	if _, err := scheduler.Reconcile(scheduler.ClusterState{}, time.Time{}, o); err != nil {
		return fmt.Errorf("server: reconcile options: %w", err)
	}
	s.rc = reconcileState{opts: o, ghosts: map[string]map[string]*fathomv1.Task{}, resizedAt: map[string]time.Time{}}
	return nil
}

// installGhosts applies b's ghost changes and marks the nodes whose
// assignment sets change. A task that starts running (or ends) retires its
// copies elsewhere: those nodes are touched so their sets drop them. Caller
// holds mu (write).
func (s *Server) installGhosts(b *batch, touched map[string]bool) {
	for _, g := range b.ghosts {
		m := s.rc.ghosts[g.task]
		if g.rec == nil {
			delete(m, g.node)
			if len(m) == 0 {
				delete(s.rc.ghosts, g.task)
			}
		} else {
			if m == nil {
				m = map[string]*fathomv1.Task{}
				s.rc.ghosts[g.task] = m
			}
			m[g.node] = g.rec
		}
		touched[g.node] = true
	}
	if len(s.rc.ghosts) == 0 {
		return
	}
	for _, t := range b.tasks {
		if t.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING || terminal(t.GetState()) {
			for node := range s.rc.ghosts[t.GetId()] {
				touched[node] = true
			}
		}
	}
}

// ghostLive reports whether the ghost of task id on node still belongs in
// node's assignment set: until the task's current placement runs on another
// node (or the task ends or is stopped). Caller holds mu (read).
func (s *Server) ghostLive(id, node string) bool {
	jobID, idx, ok := splitTaskID(id)
	e := s.jobs[jobID]
	if !ok || e == nil || int(idx) >= len(e.tasks) || e.job.GetStopRequested() {
		return false
	}
	t := e.tasks[idx]
	if t == nil {
		return true
	}
	if terminal(t.GetState()) || t.GetDesiredState() == fathomv1.DesiredState_DESIRED_STATE_STOP || t.GetNode() == node {
		return false
	}
	return t.GetState() != fathomv1.TaskState_TASK_STATE_RUNNING
}

// reconcileLoop runs a round every tick (a tenth of the heartbeat timeout,
// between 100 ms and 1 s, so that a lapsed node is noticed promptly) and
// soon after every Kick.
func (s *Server) reconcileLoop(ctx context.Context) {
	period := min(max(s.o.HeartbeatTimeout/10, 100*time.Millisecond), time.Second)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		}
		if err := s.reconcileRound(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reconcile round failed", "err", err)
		}
		// Coalesce bursts of submissions into one round.
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// roundInput is a ClusterState plus what the server needs to apply the
// result.
type roundInput struct {
	st       scheduler.ClusterState
	sizes    map[string]Sizing         // tasks to start: their sizes
	tasks    map[string]scheduler.Task // every task given to Reconcile
	stopping map[string]bool           // running tasks being stopped: no actions
	lostNode map[string]string         // lost tasks: the node of their current copy
	prio     map[string]string         // task id -> priority name
	entries  []*jobEntry
	// waits are the new per-task wait reasons, installed by apply.
	waits map[*jobEntry]map[int32]string
}

func (in *roundInput) wait(e *jobEntry, i int, why string) {
	m := in.waits[e]
	if m == nil {
		m = map[int32]string{}
		in.waits[e] = m
	}
	m[int32(i)] = why
}

// maxPlacePerRound bounds how many waiting tasks one round considers.
const maxPlacePerRound = 10000

// recommended returns the predictor's current sizes of running tasks (read
// before taking mu: the two locks are never held together here).
func (s *Server) recommended() map[string]Sizing {
	s.mu.RLock()
	wanted := s.rc.wanted
	s.mu.RUnlock()
	if wanted != nil {
		return wanted()
	}
	rs := s.o.RightSizer
	if rs == nil {
		return nil
	}
	out := map[string]Sizing{}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for id, st := range rs.state {
		if st.hasRec {
			out[id] = rs.sizing(st.rec)
		}
	}
	return out
}

// placedAt is when t's current placement was made (from its history).
func placedAt(t *fathomv1.Task) time.Time {
	h := t.GetHistory()
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].GetState() == fathomv1.TaskState_TASK_STATE_PLACED {
			return h[i].GetTime().AsTime()
		}
	}
	return t.GetUpdatedAt().AsTime()
}

// snapshot builds the round's input. Caller holds mu (write: wait reasons
// are reset).
func (s *Server) snapshot(now time.Time, recs map[string]Sizing) *roundInput {
	in := &roundInput{sizes: map[string]Sizing{}, tasks: map[string]scheduler.Task{}, stopping: map[string]bool{},
		lostNode: map[string]string{}, prio: map[string]string{}, waits: map[*jobEntry]map[int32]string{}}
	names := make([]string, 0, len(s.nodes))
	for name := range s.nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	schedulable := 0
	for _, name := range names {
		ne := s.nodes[name]
		n := ne.node
		ns := scheduler.NodeStatus{Node: scheduler.Node{
			Name: name, Labels: n.GetLabels(), Capacity: scheduler.Resources{n.GetCpuCores(), float64(n.GetMemoryBytes())},
			Cordoned: !n.GetSchedulable() && !n.GetDraining(), Draining: n.GetDraining(),
			Down: n.GetState() != fathomv1.NodeState_NODE_STATE_UP,
		}, LastHeartbeat: ne.lastSeen}
		if ns.Node.Validate() != nil {
			continue // never registered with a capacity; Register refuses that
		}
		if !ns.Down && n.GetSchedulable() && now.Sub(ne.lastSeen) <= s.o.HeartbeatTimeout {
			schedulable++
		}
		in.st.Nodes = append(in.st.Nodes, ns)
	}
	s.noNodes = ""
	if schedulable == 0 {
		s.noNodes = "no node is up and schedulable (start an agent: fathom agent --server ADDR)"
		if len(s.nodes) == 0 {
			s.noNodes = "no node has registered (start an agent: fathom agent --server ADDR)"
		}
	}
	in.entries = s.sortedJobs(func(*jobEntry) bool { return true })
	// Replicas per job that want a node, for the spread cap.
	active := make(map[string]int, len(in.entries))
	total := 0
	for _, e := range in.entries {
		for _, t := range e.tasks {
			if needsPlacement(e, t) || (t != nil && t.GetNode() != "" && !terminal(t.GetState())) {
				active[e.job.GetId()]++
				total++
			}
		}
	}
	in.st.Tasks = make([]scheduler.TaskStatus, 0, total)
	in.st.Copies = make([]scheduler.Copy, 0, total)
	in.tasks = make(map[string]scheduler.Task, total)
	in.prio = make(map[string]string, total)
	spread := func(jobID string) int {
		if schedulable == 0 {
			return 0
		}
		return int(math.Ceil(float64(active[jobID]) / float64(schedulable)))
	}
	waiting := 0
	for _, e := range in.entries {
		jobID := e.job.GetId()
		prio := e.job.GetSpec().GetPriority()
		pr, err := scheduler.ParsePriority(prio)
		if err != nil {
			pr = scheduler.Batch
		}
		for i, t := range e.tasks {
			id := TaskID(jobID, int32(i))
			switch {
			case needsPlacement(e, t):
				if waiting >= maxPlacePerRound {
					in.wait(e, i, fmt.Sprintf("more than %d tasks wait; considered in a later round", maxPlacePerRound))
					continue
				}
				waiting++
				p := pendingTask(e, i, t)
				z := startSizes(s.sizer, p, now)
				task, err := schedTask(id, jobID, pr, z, spread(jobID))
				if err != nil {
					in.wait(e, i, "cannot be scheduled as sized: "+err.Error())
					continue
				}
				ts := scheduler.TaskStatus{Task: task, Phase: scheduler.Pending, Attempt: 1}
				if t != nil && t.GetState() == fathomv1.TaskState_TASK_STATE_LOST {
					ts.Phase = scheduler.Lost
					for node, g := range s.rc.ghosts[id] {
						if g.GetGeneration() == t.GetGeneration() {
							ts.Node = node
							in.lostNode[id] = node
						}
					}
				}
				in.sizes[id] = z
				in.tasks[id] = task
				in.prio[id] = prio
				in.st.Tasks = append(in.st.Tasks, ts)
			case t != nil && t.GetNode() != "" && !terminal(t.GetState()):
				applied := scheduler.Resources{t.GetCpuRequestCores(), float64(t.GetMemoryRequestBytes())}
				limit := scheduler.Resources{t.GetCpuLimitCores(), float64(t.GetMemoryLimitBytes())}
				task := scheduler.Task{ID: id, Job: jobID, Priority: pr, Request: applied, Limit: limit, MaxPerNode: spread(jobID)}
				stopping := t.GetDesiredState() == fathomv1.DesiredState_DESIRED_STATE_STOP
				if z, ok := recs[id]; ok && !stopping {
					task.Request = scheduler.Resources{z.CPURequest, float64(z.MemoryRequest)}
					task.Usage = [scheduler.NumResources]scheduler.Dist{z.CPUUsage, z.MemoryUsage}
				}
				for r := range limit {
					if limit[r] > 0 {
						task.Request[r] = min(task.Request[r], limit[r]) // limits are the right-sizer's
						applied[r] = min(applied[r], limit[r])
					}
				}
				if task.Validate() != nil {
					task.Request, task.Usage = applied, [scheduler.NumResources]scheduler.Dist{}
				}
				if stopping {
					in.stopping[id] = true
				}
				in.tasks[id] = task
				in.prio[id] = prio
				in.st.Tasks = append(in.st.Tasks, scheduler.TaskStatus{Task: task, Phase: scheduler.Running, Node: t.GetNode(), Attempt: 1,
					Applied: applied, AppliedLimit: limit, Since: placedAt(t), ResizedAt: s.rc.resizedAt[id]})
				if t.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING {
					in.st.Copies = append(in.st.Copies, scheduler.Copy{TaskID: id, Attempt: 1, Node: t.GetNode()})
				}
			}
		}
	}
	// Copies left on other nodes: the current attempt while the task is
	// lost (adopted if its node returns), a stale one once it was placed
	// again. A stale copy on a node that is down is forgotten once the task
	// runs elsewhere: its node's set no longer holds it (ghostLive), so the
	// agent stops it when it returns.
	for id, m := range s.rc.ghosts {
		for node := range m {
			if ne := s.nodes[node]; (ne == nil || ne.node.GetState() != fathomv1.NodeState_NODE_STATE_UP) && !s.ghostLive(id, node) {
				delete(m, node)
			}
		}
		if len(m) == 0 {
			delete(s.rc.ghosts, id)
			continue
		}
		jobID, idx, _ := splitTaskID(id)
		var cur *fathomv1.Task
		if e := s.jobs[jobID]; e != nil && int(idx) < len(e.tasks) {
			cur = e.tasks[idx]
		}
		for node, g := range m {
			attempt := 0
			if cur != nil && cur.GetState() == fathomv1.TaskState_TASK_STATE_LOST && g.GetGeneration() == cur.GetGeneration() {
				attempt = 1
			}
			in.st.Copies = append(in.st.Copies, scheduler.Copy{TaskID: id, Attempt: attempt, Node: node})
		}
	}
	sort.Slice(in.st.Copies, func(a, b int) bool {
		ca, cb := in.st.Copies[a], in.st.Copies[b]
		if ca.TaskID != cb.TaskID {
			return ca.TaskID < cb.TaskID
		}
		return ca.Node < cb.Node
	})
	return in
}

// pendingTask describes slot i of a job for the Sizer.
func pendingTask(e *jobEntry, i int, t *fathomv1.Task) PendingTask {
	j := e.job
	p := jobPendingTask(j)
	p.TaskID, p.Index = TaskID(j.GetId(), int32(i)), int32(i)
	for _, h := range t.GetHistory() {
		if h.GetNode() != "" {
			p.LastNode = h.GetNode()
		}
	}
	return p
}

// roundStats counts what a round did, for the metrics and the log.
type roundStats struct {
	placed, rescheduled, moved, unschedulable, preempted, resized, stale int
	preemptedBy                                                          map[string]int // victim priority -> count
	movedBy                                                              map[string]int // reason -> count
}

// reconcileRound runs one round: snapshot, scheduler.Reconcile, apply.
func (s *Server) reconcileRound(ctx context.Context) error {
	recs := s.recommended()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now := s.now()
	s.mu.Lock() // write: snapshot forgets retired ghosts, apply sets wait reasons
	if len(s.nodes) == 0 {
		s.noNodes = "no node has registered (start an agent: fathom agent --server ADDR)"
		s.mu.Unlock()
		return nil
	}
	in := s.snapshot(now, recs)
	opts := s.rc.opts
	opts.Seed = splitmix(s.o.Reconcile.Seed ^ uint64(now.UnixNano()))
	// Readers are not held up while the scheduler decides: mu is released,
	// and wmu (held) keeps every change of existing state out until the
	// result is applied. Jobs created meanwhile wait for the next round.
	s.mu.Unlock()
	start := time.Now() // wall time of the pass, for fathom_scheduler_placement_duration
	res, err := scheduler.Reconcile(in.st, now, opts)
	s.metrics.sched.PlacementDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.sched.Placements.WithLabelValues("error").Inc()
		return fmt.Errorf("scheduler refused the round (seed %d): %w", opts.Seed, err)
	}
	s.mu.Lock()
	b, stats := s.apply(in, res, now)
	s.mu.Unlock()
	if err := s.commit(ctx, b); err != nil {
		return err
	}
	m := s.metrics
	m.placements.Add(float64(stats.placed))
	m.sched.Placements.WithLabelValues("placed").Add(float64(stats.placed))
	m.sched.Placements.WithLabelValues("unschedulable").Add(float64(stats.unschedulable))
	if stats.rescheduled > 0 {
		m.sched.Reschedules.WithLabelValues("node_failed").Add(float64(stats.rescheduled))
	}
	for why, n := range stats.movedBy {
		m.sched.Reschedules.WithLabelValues(why).Add(float64(n))
	}
	for p, n := range stats.preemptedBy {
		m.sched.Preemptions.WithLabelValues(p).Add(float64(n))
	}
	for _, n := range res.NodesDown {
		m.nodesDown.Inc()
		s.log.Warn("node down: no heartbeat", "node", n, "timeout", s.o.HeartbeatTimeout)
	}
	if len(res.Place)+len(res.Preempt)+len(res.Stop)+len(res.Lost)+len(res.Drain) > 0 || stats.resized > 0 {
		s.log.Info("reconciled", "seed", opts.Seed, "placed", stats.placed, "lost", len(res.Lost), "preempted", stats.preempted,
			"moved", stats.moved, "resized", stats.resized, "stale_stopped", stats.stale, "stale_kept", res.StaleKept,
			"deferred", len(res.Deferred), "drained", len(res.Drain))
	}
	s.observeAutoscale(res.Autoscale, now)
	return nil
}

// splitmix is splitmix64's finalizer: a round's seed from its time.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// apply turns a Result into one batch. Caller holds wmu and mu (write).
func (s *Server) apply(in *roundInput, res scheduler.Result, now time.Time) (*batch, roundStats) {
	b := &batch{}
	st := roundStats{preemptedBy: map[string]int{}, movedBy: map[string]int{}}
	recs := map[string]*fathomv1.Task{} // records changed in this round
	var order []string
	rec := func(id string) (*jobEntry, *fathomv1.Task) {
		jobID, idx, ok := splitTaskID(id)
		e := s.jobs[jobID]
		if !ok || e == nil || int(idx) >= len(e.tasks) {
			return nil, nil
		}
		if t := recs[id]; t != nil {
			return e, t
		}
		t := s.newTaskRecord(e, int(idx))
		recs[id] = t
		order = append(order, id)
		return e, t
	}
	ghost := func(id, node string, t *fathomv1.Task) {
		b.ghosts = append(b.ghosts, ghostChange{task: id, node: node, rec: t})
	}
	nodeRecord := func(name string, up bool) {
		ne := s.nodes[name]
		if ne == nil {
			return
		}
		n := proto.Clone(ne.node).(*fathomv1.Node)
		if up {
			n.State = fathomv1.NodeState_NODE_STATE_UP
		} else {
			n.State = fathomv1.NodeState_NODE_STATE_DOWN
		}
		b.nodes = append(b.nodes, persistedNode(n))
	}
	for _, n := range res.NodesDown {
		nodeRecord(n, false)
	}
	for _, n := range res.NodesUp {
		nodeRecord(n, true)
	}

	// Lost: the node stopped heartbeating. The copy there becomes a ghost:
	// it keeps serving if the node is only cut off, until the task runs
	// again elsewhere.
	for _, l := range res.Lost {
		_, t := rec(l.TaskID)
		if t == nil {
			continue
		}
		if in.stopping[l.TaskID] {
			t.State = fathomv1.TaskState_TASK_STATE_STOPPED
			t.FinishedAt = timestamppb.New(now)
			withHistory(t, now, l.Reason+" while the task was stopping")
			continue
		}
		ghost(l.TaskID, l.Node, proto.Clone(t).(*fathomv1.Task))
		t.State = fathomv1.TaskState_TASK_STATE_LOST
		t.Node = ""
		why := l.Reason
		if ne := s.nodes[l.Node]; ne != nil {
			why = fmt.Sprintf("node %s stopped heartbeating (last at %s, timeout %s)", l.Node, ne.lastSeen.UTC().Format(time.RFC3339), s.o.HeartbeatTimeout)
		}
		withHistory(t, now, why+"; placing the task again")
		st.rescheduled++
	}
	// Adopted: the node came back with the lost task still running.
	for _, id := range res.Adopted {
		_, t := rec(id)
		node := in.lostNode[id]
		if t == nil || node == "" {
			continue
		}
		t.State = fathomv1.TaskState_TASK_STATE_RUNNING
		t.Node = node
		withHistory(t, now, "node "+node+" is back with the task still running: adopted (no second copy started)")
		ghost(id, node, nil)
	}
	// Preemption: victims leave their node's assignment set (the agent
	// stops them) and wait again with the reason, unless placed elsewhere
	// below.
	preemptedBy := map[string]string{}
	preemptFor := map[string]string{}
	for _, p := range res.Preempt {
		if in.stopping[p.TaskID] {
			continue
		}
		_, t := rec(p.TaskID)
		if t == nil {
			continue
		}
		why := fmt.Sprintf("preempted by %s (%s) on %s: stopped to make room", p.For, in.prio[p.For], p.Node)
		preemptedBy[p.TaskID] = why
		preemptFor[p.TaskID] = p.For
		t.State = fathomv1.TaskState_TASK_STATE_PENDING
		t.Node = ""
		t.DesiredState = fathomv1.DesiredState_DESIRED_STATE_RUN
		t.Pid = 0
		withHistory(t, now, why)
		st.preempted++
		st.preemptedBy[in.prio[p.TaskID]]++
	}
	// Why a running task moves.
	moveWhy := map[string]string{}
	moveKind := map[string]string{}
	for _, r := range res.Resize {
		if r.Moved {
			moveWhy[r.TaskID], moveKind[r.TaskID] = "request resized: "+r.Reason, "resize"
		}
	}
	for _, d := range res.Drain {
		for _, id := range d.Tasks {
			moveWhy[id], moveKind[id] = "consolidation drains "+d.Node+": "+d.Reason, "consolidation"
		}
		s.log.Info("consolidating: draining node", "node", d.Node, "tasks", len(d.Tasks), "why", d.Reason)
	}
	for _, pl := range res.Place {
		if in.stopping[pl.TaskID] {
			continue
		}
		e, t := rec(pl.TaskID)
		if t == nil || e.job.GetStopRequested() {
			continue
		}
		if ne := s.nodes[pl.Node]; ne == nil {
			continue
		}
		what := fmt.Sprintf("placed on %s (score %.1f): %s", pl.Node, pl.Score, pl.Why)
		if z, ok := in.sizes[pl.TaskID]; ok {
			t.CpuRequestCores, t.CpuLimitCores = z.CPURequest, z.CPULimit
			t.MemoryRequestBytes, t.MemoryLimitBytes = z.MemoryRequest, z.MemoryLimit
			what += "; sized by " + z.Source
		} else if t.GetState() == fathomv1.TaskState_TASK_STATE_LOST {
			// Lost in this round: it keeps its sizes (the request as the
			// scheduler packed it).
			task := in.tasks[pl.TaskID]
			t.CpuRequestCores, t.MemoryRequestBytes = task.Request[scheduler.CPU], int64(task.Request[scheduler.Memory])
			what += "; keeps its sizes"
		} else if old := t.GetNode(); old != "" {
			// A move: the new copy starts with the new request; the old one
			// keeps serving until the new one runs.
			task := in.tasks[pl.TaskID]
			t.CpuRequestCores, t.MemoryRequestBytes = task.Request[scheduler.CPU], int64(task.Request[scheduler.Memory])
			if t.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING {
				ghost(pl.TaskID, old, proto.Clone(s.jobs[t.GetJobId()].tasks[t.GetIndex()]).(*fathomv1.Task))
			}
			what = fmt.Sprintf("moved from %s (%s); %s", old, moveWhy[pl.TaskID], what)
			st.moved++
			st.movedBy[moveKind[pl.TaskID]]++
			s.rc.resizedAt[pl.TaskID] = now
		}
		if why := preemptedBy[pl.TaskID]; why != "" {
			what = why + "; " + what
		}
		t.State = fathomv1.TaskState_TASK_STATE_PLACED
		t.Node = pl.Node
		t.DesiredState = fathomv1.DesiredState_DESIRED_STATE_RUN
		t.Generation++
		t.Pid, t.ExitCode, t.OomKilled, t.Evicted, t.StartedAt, t.FinishedAt = 0, 0, false, false, nil, nil
		withHistory(t, now, what)
		st.placed++
	}
	// Stale copies whose task runs elsewhere: drop the ghost (the agent
	// stops it) and say so in the task's history.
	for _, sp := range res.Stop {
		ghost(sp.TaskID, sp.Node, nil)
		st.stale++
		if _, t := rec(sp.TaskID); t != nil {
			withHistory(t, now, "copy on "+sp.Node+" stopped: "+sp.Reason)
		} else {
			nodeRecord(sp.Node, true) // a write, so the node's set is sent again
		}
	}
	// Requests changed in place (limits are the right-sizer's).
	for _, r := range res.Resize {
		if !r.InPlace || in.stopping[r.TaskID] {
			if !r.Moved && !r.InPlace {
				// Shown with the task's reason while it lasts.
				jobID, idx, _ := splitTaskID(r.TaskID)
				if e := s.jobs[jobID]; e != nil {
					in.wait(e, int(idx), fmt.Sprintf("recommended request cpu %.3g, memory %d MiB: %s",
						r.To[scheduler.CPU], int64(r.To[scheduler.Memory])>>20, r.Reason))
				}
			}
			continue
		}
		_, t := rec(r.TaskID)
		if t == nil || t.GetNode() != r.Node {
			continue
		}
		cpu, mem := r.To[scheduler.CPU], int64(r.To[scheduler.Memory])
		if cpu != t.GetCpuRequestCores() {
			s.metrics.sched.Resizes.WithLabelValues("cpu").Inc()
		}
		if mem != t.GetMemoryRequestBytes() {
			s.metrics.sched.Resizes.WithLabelValues("memory").Inc()
		}
		t.CpuRequestCores, t.MemoryRequestBytes = cpu, mem
		t.Generation++
		t.UpdatedAt = timestamppb.New(now)
		t.Reason = fmt.Sprintf("request resized in place (generation %d): cpu %.3g→%.3g cores, memory %d→%d MiB: %s",
			t.GetGeneration(), r.From[scheduler.CPU], cpu, int64(r.From[scheduler.Memory])>>20, mem>>20, r.Reason)
		s.rc.resizedAt[r.TaskID] = now
		st.resized++
	}
	// Waiting tasks: the reason per task.
	for _, d := range res.Deferred {
		jobID, idx, ok := splitTaskID(d.TaskID)
		e := s.jobs[jobID]
		if !ok || e == nil {
			continue
		}
		why := d.Reason
		if f := preemptFor[d.TaskID]; f != "" {
			why = strings.TrimPrefix(why, "preempted by "+f+"; ") // the record says it already
		}
		if z, ok := in.sizes[d.TaskID]; ok && d.Why.Nodes > 0 {
			why = fmt.Sprintf("%s (needs %.3g cores, %d MiB; %s)", strings.TrimSuffix(why, "."), z.CPURequest, z.MemoryRequest>>20, d.Why)
		}
		in.wait(e, int(idx), why)
		st.unschedulable++
	}
	for _, e := range in.entries {
		e.waits = in.waits[e]
	}
	for _, id := range order {
		b.tasks = append(b.tasks, recs[id])
	}
	// Jobs that finish through this batch give their name back.
	byJob := map[*jobEntry]map[int32]*fathomv1.Task{}
	for _, t := range b.tasks {
		e := s.jobs[t.GetJobId()]
		if byJob[e] == nil {
			byJob[e] = map[int32]*fathomv1.Task{}
		}
		byJob[e][t.GetIndex()] = t
	}
	for e, ch := range byJob {
		s.maybeRelease(b, e, ch)
	}
	// Forget resize times of tasks that are gone.
	for id := range s.rc.resizedAt {
		if _, ok := in.tasks[id]; !ok {
			delete(s.rc.resizedAt, id)
		}
	}
	return b, st
}
