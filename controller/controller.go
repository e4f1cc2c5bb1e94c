package controller

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// Controller owns the life of every task. It is a deterministic state
// machine: events (Submit, Stop, Register, Heartbeat, Report, Cordon,
// Drain, Observed, Tick) change it, each with the time `now` it happens at,
// and Ready returns what changed since the last call, for the caller to
// persist and to send to agents. It does no I/O, never reads the clock and
// uses no global randomness; it is not safe for concurrent use (the server
// serializes access; the simulator is single-threaded).
//
// The caller's contract, as with etcd raft's Ready: persist Ready's records
// before acknowledging anything that caused them and before sending its
// assignment changes to agents; if persisting fails, the controller is
// ahead of the store and must be rebuilt from it (Restore).
type Controller struct {
	cfg  Config
	pred *predictor.Predictor
	now  time.Time
	// graceUntil: before it, no node is declared down (after Restore).
	graceUntil time.Time

	jobs  map[string]*jobEntry
	crons map[string]*jobEntry // the cron jobs of jobs
	// deploying are the jobs with an active rollout; trimming those with
	// tasks past their replicas (scaled down) still to forget.
	deploying map[string]*jobEntry
	trimming  map[string]*jobEntry
	names     map[string]string // "<namespace>/<name>" -> id of the job holding it
	nodes     map[string]*nodeEntry
	// big caches the largest node's capacity (largest); big.ok false
	// after any change of the nodes.
	big struct {
		ok  bool
		cpu float64
		mem int64
	}
	sched *scheduler.State
	// ghosts: task id -> node -> the copy that node keeps (see Ghost).
	ghosts map[string]map[string]*Ghost
	// queue holds the tasks that wait for a node, in arrival order (entries
	// that no longer wait are dropped as they are met).
	queue []ref
	// blocked are the queued tasks that found no room at blockedEpoch (the
	// State's capacity epoch), in the order they were blocked; a round does
	// not offer them again before the epoch changes or their retry is due
	// (the earliest is blockedRetry). blockedDirty: one of them changed.
	blocked      []ref
	blockedEpoch int64
	blockedRetry time.Time
	blockedDirty bool
	blockedRoom  []scheduler.Task // the blocked tasks that wait for room, as offered
	seq          uint64           // arrival order of the queue
	// observed are running tasks with new usage, sized at the next Tick.
	observed map[ref]struct{}
	// restarting are the tasks whose restart waits for its delay
	// (Task.RestartAt; see restart.go).
	restarting map[ref]struct{}
	// noNodes says why nothing can be placed at all ("" = nodes exist).
	noNodes string
	round   uint64
	// lastConsolidation is when the last consolidation pass ran.
	lastConsolidation time.Time
	// gcNext: no job collection pass before it (gc.go).
	gcNext time.Time

	provider providerMemory
	report   Autoscale

	out ready // changes since the last Ready
}

// ref names one task of a job inside the controller.
type ref struct {
	job *jobEntry
	idx int32
}

func (r ref) task() *Task { return r.job.tasks[r.idx] }
func (r ref) meta() *taskMeta {
	return &r.job.meta[r.idx]
}
func (r ref) id() string { return TaskID(r.job.job.ID, r.idx) }

type jobEntry struct {
	job      Job
	tasks    []*Task // every replica; a task never placed is Pending with Generation 0
	meta     []taskMeta
	nameHeld bool
	stored   []bool // task i has a persisted record
	// cons are the spec's constraints in the scheduler's terms.
	cons []scheduler.Constraint
}

// taskMeta is what the controller keeps of a task in memory only.
type taskMeta struct {
	queued bool
	// wait says why the task waits (pending, lost) or why its recommended
	// sizes were not applied (running); from the last round.
	wait string
	// decision is the sizing loop's last word on the task.
	decision string
	// sized is the source of the task's starting sizes ("hints", ...).
	sized string
	// dist is the predicted usage distribution the task was placed or last
	// resized with (CPU, memory).
	dist [scheduler.NumResources]scheduler.Dist
	// floor is what the task's last OOM kill or eviction showed it needs:
	// its next placement starts at least there.
	floor Sizes
	// blocked: the scheduler found no room for the task (it is in the
	// controller's blocked list); it is not offered again before the
	// State's epoch changes or retryAt.
	// room is the task as last offered when it waits for room (demand for
	// the autoscaling report while it is not offered).
	blocked bool
	retryAt time.Time
	room    *scheduler.Task
	seq     uint64 // arrival order in the queue
}

type nodeEntry struct {
	node     Node
	lastSeen time.Time
	// restored: loaded by Restore and not heard from since; such a node has
	// the failover grace to reconnect.
	restored bool
	usage    Usage
	tasks    map[ref]struct{} // placed here and not terminal
}

// New returns an empty controller.
func New(cfg Config) (*Controller, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, pred: cfg.Predictor}
	c.reset()
	return c, nil
}

func (c *Controller) reset() {
	c.jobs = map[string]*jobEntry{}
	c.crons = map[string]*jobEntry{}
	c.deploying = map[string]*jobEntry{}
	c.trimming = map[string]*jobEntry{}
	c.blocked, c.blockedDirty, c.blockedRoom = nil, false, nil
	c.names = map[string]string{}
	c.nodes = map[string]*nodeEntry{}
	c.big.ok = false
	c.sched, _ = scheduler.NewState(scheduler.ClusterView{})
	c.ghosts = map[string]map[string]*Ghost{}
	c.queue = nil
	c.observed = map[ref]struct{}{}
	c.restarting = map[ref]struct{}{}
	c.provider = newProviderMemory()
	c.report = Autoscale{}
	c.out = newReady()
	c.gcNext = time.Time{}
}

// Config returns the configuration in effect (defaults filled).
func (c *Controller) Config() Config { return c.cfg }

// Predictor is the predictor the controller sizes with (nil: hints only).
func (c *Controller) Predictor() *predictor.Predictor { return c.pred }

// advance moves the controller's clock to now (never backwards).
func (c *Controller) advance(now time.Time) time.Time {
	if now.After(c.now) {
		c.now = now
	}
	return c.now
}

// Snapshot is the persisted state Restore loads.
type Snapshot struct {
	Jobs   []Job
	Tasks  []Task
	Nodes  []Node
	Ghosts []Ghost
	// Names maps "<namespace>/<name>" to the id of the job holding it.
	Names map[string]string
}

// Restore replaces the controller's state with a snapshot loaded from the
// store at now: after a restart of the control plane, a new leader, or a
// failed commit. Every node gets FailoverGrace to heartbeat before it can
// be declared down; running tasks are adopted as they are (nothing is
// restarted). Records that do not fit together (a task without its job)
// are skipped and reported in the returned warnings.
func (c *Controller) Restore(snap Snapshot, now time.Time) (warnings []string) {
	c.reset()
	c.now = now
	c.graceUntil = now.Add(c.cfg.FailoverGrace)
	for _, n := range snap.Nodes {
		n = n.clone()
		e := &nodeEntry{node: n, lastSeen: now, restored: true, tasks: map[ref]struct{}{}}
		c.nodes[n.Name] = e
		if _, err := c.sched.AddNode(c.schedNode(&e.node)); err != nil {
			warnings = append(warnings, fmt.Sprintf("node %s: %v", n.Name, err))
		}
	}
	for _, j := range snap.Jobs {
		if j.Version == 0 { // stored before versions
			j.Version, j.StableVersion = 1, 1
		}
		e := newJobEntry(j.clone())
		c.addJob(e)
		if id, ok := snap.Names[j.Spec.Namespace+"/"+j.Spec.Name]; ok && id == j.ID {
			e.nameHeld = true
			c.names[j.Spec.Namespace+"/"+j.Spec.Name] = j.ID
		}
	}
	for _, t := range snap.Tasks {
		e := c.jobs[t.JobID]
		if e == nil || t.Index < 0 {
			warnings = append(warnings, fmt.Sprintf("task %s: its job is not stored; ignored", t.ID()))
			continue
		}
		for int(t.Index) >= len(e.tasks) { // past the replicas: being scaled down
			n := int32(len(e.tasks))
			e.tasks = append(e.tasks, &Task{JobID: e.job.ID, Index: n, State: Stopped, Desired: DesiredStop, Version: e.job.Version})
			e.meta = append(e.meta, taskMeta{})
			e.stored = append(e.stored, false)
			c.trimming[e.job.ID] = e
		}
		t = t.clone()
		if t.Version == 0 {
			t.Version = e.job.Version // stored before versions
		}
		e.tasks[t.Index] = &t
		e.stored[t.Index] = true
	}
	for _, e := range c.jobs {
		if e.job.Deployment.Active() {
			c.deploying[e.job.ID] = e
		}
	}
	for _, e := range c.sortedJobs() {
		for i := range e.tasks {
			r := ref{e, int32(i)}
			t := r.task()
			if t.Node != "" && !t.State.Terminal() {
				ne := c.nodes[t.Node]
				if ne == nil {
					warnings = append(warnings, fmt.Sprintf("task %s is on node %s, which is not stored; placing it again", r.id(), t.Node))
					t.State, t.Node = Lost, ""
					c.markTask(r)
				} else if t.State == Placed || t.State == Running {
					ne.tasks[r] = struct{}{}
					if !t.RestartAt.IsZero() {
						c.restarting[r] = struct{}{}
					}
					if err := c.sched.Assign(c.schedTask(r, t.Sizes, r.meta().dist), t.Node); err != nil {
						warnings = append(warnings, fmt.Sprintf("task %s: %v", r.id(), err))
					}
				}
			}
			if c.waiting(r) {
				c.enqueue(r)
			}
		}
	}
	for _, g := range snap.Ghosts {
		jobID, idx, ok := SplitTaskID(g.TaskID)
		e := c.jobs[jobID]
		if !ok || e == nil || int(idx) >= len(e.tasks) || c.nodes[g.Node] == nil {
			warnings = append(warnings, fmt.Sprintf("copy of %s on %s: its task or node is not stored; dropped", g.TaskID, g.Node))
			continue
		}
		gc := g
		m := c.ghosts[g.TaskID]
		if m == nil {
			m = map[string]*Ghost{}
			c.ghosts[g.TaskID] = m
		}
		m[g.Node] = &gc
	}
	// Nothing restored is a change to persist; agents get their full sets
	// when they reconnect.
	c.out = newReady()
	return warnings
}

func newJobEntry(j Job) *jobEntry {
	n := int(j.Spec.Replicas)
	e := &jobEntry{job: j, tasks: make([]*Task, n), meta: make([]taskMeta, n), stored: make([]bool, n), cons: schedConstraints(j.Spec.Constraints)}
	for i := range e.tasks {
		e.tasks[i] = &Task{JobID: j.ID, Index: int32(i), State: Pending, Desired: DesiredRun, UpdatedAt: j.CreatedAt,
			Reason: "waiting for a node", Version: j.Version, VersionAt: j.VersionAt}
	}
	return e
}

// sortedJobs returns the jobs oldest first (ties by id).
func (c *Controller) sortedJobs() []*jobEntry {
	out := make([]*jobEntry, 0, len(c.jobs))
	for _, e := range c.jobs {
		out = append(out, e)
	}
	return sortJobs(out)
}

// sortJobs sorts jobs by creation, then id.
func sortJobs(out []*jobEntry) []*jobEntry {
	slices.SortFunc(out, func(a, b *jobEntry) int {
		if x := a.job.CreatedAt.Compare(b.job.CreatedAt); x != 0 {
			return x
		}
		return cmp.Compare(a.job.ID, b.job.ID)
	})
	return out
}

// lookup finds a task by id.
func (c *Controller) lookup(id string) (ref, bool) {
	jobID, idx, ok := SplitTaskID(id)
	if !ok {
		return ref{}, false
	}
	e := c.jobs[jobID]
	if e == nil || int(idx) >= len(e.tasks) {
		return ref{}, false
	}
	return ref{e, idx}, true
}

// isCron reports whether the job is a cron job.
func (e *jobEntry) isCron() bool { return e.job.Spec.Type == TypeCron }

// waiting reports whether the task needs a node: pending or lost, its job
// not stopped, and (cron) a run started.
func (c *Controller) waiting(r ref) bool {
	e := r.job
	if e.job.StopRequested || (e.isCron() && e.job.LastRunAt.IsZero()) {
		return false
	}
	st := r.task().State
	return st == Pending || st == Lost
}

// enqueue adds a waiting task to the placement queue (once).
func (c *Controller) enqueue(r ref) {
	m := r.meta()
	if m.blocked {
		// Its sizes or state changed: it is offered again.
		m.blocked, m.room = false, nil
		c.blockedDirty = true // its entry there goes
		m.seq, c.seq = c.seq, c.seq+1
		c.queue = append(c.queue, r)
		return
	}
	if m.queued {
		return
	}
	m.queued = true
	m.seq, c.seq = c.seq, c.seq+1
	c.queue = append(c.queue, r)
}

// withHistory records a transition (bounded history).
func withHistory(t *Task, now time.Time, msg string) {
	t.UpdatedAt = now
	t.Reason = msg
	t.History = append(t.History, Transition{Time: now, State: t.State, Node: t.Node, Message: msg})
	if len(t.History) > maxHistory {
		t.History = slices.Delete(t.History, 0, len(t.History)-maxHistory)
	}
}

// setNode moves a task's placement to node ("" = none), keeping the node
// indexes and marking both nodes' assignment sets changed.
func (c *Controller) setNode(r ref, node string) {
	t := r.task()
	if t.Node == node {
		c.markAssign(node, r)
		return
	}
	if old := c.nodes[t.Node]; old != nil {
		delete(old.tasks, r)
		c.markAssign(t.Node, r)
	}
	t.Node = node
	if ne := c.nodes[node]; ne != nil {
		ne.tasks[r] = struct{}{}
	}
	c.markAssign(node, r)
}

// release drops the task from the node's index (it ended), keeping the
// record's node for history, and from the scheduler.
func (c *Controller) unplace(r ref) {
	t := r.task()
	if ne := c.nodes[t.Node]; ne != nil {
		delete(ne.tasks, r)
	}
	c.markAssign(t.Node, r)
	c.sched.Remove(r.id())
}

// addGhost records the copy the node keeps of task r (its record as it is
// now, before the task moves).
func (c *Controller) addGhost(r ref, node string) {
	t := r.task()
	g := &Ghost{TaskID: r.id(), Node: node, Generation: t.Generation, Sizes: t.Sizes, Since: c.now}
	m := c.ghosts[g.TaskID]
	if m == nil {
		m = map[string]*Ghost{}
		c.ghosts[g.TaskID] = m
	}
	m[node] = g
	c.out.ghostPut[ghostKey{g.TaskID, node}] = struct{}{}
	delete(c.out.ghostDel, ghostKey{g.TaskID, node})
	c.markAssign(node, r)
}

// dropGhost forgets the copy on node (the agent stops it).
func (c *Controller) dropGhost(r ref, node string) {
	id := r.id()
	m := c.ghosts[id]
	if m[node] == nil {
		return
	}
	delete(m, node)
	if len(m) == 0 {
		delete(c.ghosts, id)
	}
	c.out.ghostDel[ghostKey{id, node}] = struct{}{}
	delete(c.out.ghostPut, ghostKey{id, node})
	c.markAssign(node, r)
}

// retireGhosts drops every copy of a task once its current placement runs
// (or it ended): the overlap of a move ends here.
func (c *Controller) retireGhosts(r ref, why string) {
	m := c.ghosts[r.id()]
	if len(m) == 0 {
		return
	}
	t := r.task()
	for _, node := range slices.Sorted(mapKeys(m)) {
		c.dropGhost(r, node)
		c.out.stats.StaleStopped++
		c.out.logf("copy of %s on %s stopped: %s", r.id(), node, why)
		if t.Node != node {
			withHistory(t, c.now, "copy on "+node+" stopped: "+why)
			c.markTask(r)
		}
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ghostLive reports whether the copy of task r on node still belongs in the
// node's set: until the task's current placement runs on another node, or
// the task ends or is stopped.
func (c *Controller) ghostLive(r ref, node string) bool {
	t := r.task()
	if r.job.job.StopRequested || t.State.Terminal() || t.Desired == DesiredStop || t.Node == node {
		return false
	}
	return t.State != Running
}

// markTask records that a task's record changed (to persist and publish).
func (c *Controller) markTask(r ref) {
	c.out.tasks[r] = struct{}{}
	if r.meta().blocked {
		c.blockedDirty = true
	}
}

// addJob installs a job entry.
func (c *Controller) addJob(e *jobEntry) {
	c.jobs[e.job.ID] = e
	if e.isCron() {
		c.crons[e.job.ID] = e
	}
}

// markJob records that a job's record changed.
func (c *Controller) markJob(e *jobEntry) { c.out.jobs[e] = struct{}{} }

// markNode records that a node's record changed.
func (c *Controller) markNode(name string) { c.out.nodes[name] = struct{}{} }

// markAssign records that task r's assignment on node may have changed.
func (c *Controller) markAssign(node string, r ref) {
	if node == "" {
		return
	}
	c.out.assign[nodeRef{node, r}] = struct{}{}
}

// schedNode is the scheduler's view of a node.
func (c *Controller) schedNode(n *Node) scheduler.Node {
	return scheduler.Node{Name: n.Name, Capacity: scheduler.Resources{n.CPU, float64(n.Memory)}, Labels: n.Labels,
		Cordoned: !n.Schedulable && !n.Draining, Draining: n.Draining, Down: !n.Up, PortRange: n.PortRange}
}

// schedTask is the scheduler's view of a task with sizes z and predicted
// usage dist.
func (c *Controller) schedTask(r ref, z Sizes, dist [scheduler.NumResources]scheduler.Dist) scheduler.Task {
	pr, err := scheduler.ParsePriority(r.job.job.Spec.Priority)
	if err != nil {
		pr = scheduler.Batch
	}
	t := scheduler.Task{ID: r.id(), Job: r.job.job.ID, Priority: pr,
		Request:     scheduler.Resources{z.CPURequest, float64(z.MemoryRequest)},
		Limit:       scheduler.Resources{z.CPULimit, float64(z.MemoryLimit)},
		Usage:       dist,
		Constraints: r.job.cons, Spread: r.job.job.Spec.Spread,
		Ports: schedPorts(r.job.job.Spec.Ports, r.task().Ports),
	}
	if t.Validate() != nil {
		t.Usage = [scheduler.NumResources]scheduler.Dist{}
	}
	return t
}

// schedPorts is the scheduler's view of a task's ports: the spec's, with
// the numbers the task holds now (a dynamic port keeps its number when it
// is still free where the task goes).
func schedPorts(spec []PortSpec, held map[string]int) []scheduler.Port {
	if len(spec) == 0 {
		return nil
	}
	out := make([]scheduler.Port, len(spec))
	for i, p := range spec {
		out[i] = scheduler.Port{Name: p.Name, Static: p.Static, Value: held[p.Name]}
		if p.Static > 0 {
			out[i].Value = p.Static
		}
	}
	return out
}

var schedOps = map[string]scheduler.Op{OpEqual: scheduler.OpEqual, OpNotEqual: scheduler.OpNotEqual, OpIn: scheduler.OpIn, OpExists: scheduler.OpExists}

// schedConstraints translates a spec's constraints for the scheduler (an
// unknown operator cannot come from a validated spec; it matches nothing).
func schedConstraints(cs []Constraint) []scheduler.Constraint {
	if len(cs) == 0 {
		return nil
	}
	out := make([]scheduler.Constraint, len(cs))
	for i, k := range cs {
		op, ok := schedOps[k.Op]
		if !ok {
			op = scheduler.OpIn // with no values: holds nowhere
			k.Values = nil
		}
		out[i] = scheduler.Constraint{Label: k.Label, Op: op, Values: k.Values}
		if len(k.Values) > 0 {
			out[i].Value = k.Values[0]
		}
	}
	return out
}
