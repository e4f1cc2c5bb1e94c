package scheduler

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Phase is where a task is in its life, as the control plane records it.
type Phase int

// Task phases.
const (
	Pending Phase = iota // waiting for a node
	Running              // assigned to Node (started or starting)
	Lost                 // its node went down; waiting to be re-placed
)

func (p Phase) String() string {
	return [...]string{"pending", "running", "lost"}[p]
}

// NodeStatus is a node plus what the control plane last heard from it.
// Node.Down is the node's state as recorded before this reconcile.
type NodeStatus struct {
	Node
	LastHeartbeat time.Time
}

// TaskStatus is a wanted task and where it stands. Task carries the current
// recommendation (Request, Limit, Usage); Applied and AppliedLimit are the
// sizes in effect on the node (zero: the same as Task's), so a difference is
// a resize to make.
type TaskStatus struct {
	Task
	Phase        Phase
	Node         string    // Running: where it runs; Lost: where it was
	Attempt      int       // which placement of the task is current
	Applied      Resources // request in effect on the node
	AppliedLimit Resources // limit in effect on the node
	Since        time.Time // when the current placement was made
	ResizedAt    time.Time // when the sizes in effect were last changed
}

// Copy is a task process an agent reports running.
type Copy struct {
	TaskID  string
	Attempt int
	Node    string
}

// ClusterState is the snapshot Reconcile reads.
type ClusterState struct {
	Nodes  []NodeStatus
	Tasks  []TaskStatus
	Copies []Copy
}

// ReconcileOptions tune Reconcile. Zero values take the defaults in
// parentheses.
type ReconcileOptions struct {
	Options // placement options (seed, ε, risk model, candidates)
	// HeartbeatTimeout marks a node down when its last heartbeat is older (10 s).
	HeartbeatTimeout time.Duration
	// MassFailureFraction: when at least this share of nodes is down at once
	// it is more likely a partition than failures (0.3), and re-placement of
	// lost tasks is limited to MassFailureRate per reconcile (50).
	MassFailureFraction float64
	MassFailureRate     int
	// ResizeDeadband ignores recommendation changes smaller than this
	// relative amount in every resource (0.1).
	ResizeDeadband float64
	// ShrinkDelay holds back a shrink until this long after the last resize
	// (5 min), as the HPA's scale-down stabilization: growth is applied at
	// once, but a task is not shrunk straight after growing, so a
	// recommendation that swings does not resize it every reconcile.
	ShrinkDelay time.Duration
	// MoveCost is the disruption of moving a task, against which the unmet
	// share of a grown request is weighed (0.25: move when more than a
	// quarter of the new request has no room on the current node).
	MoveCost float64
	// MinTaskAge: tasks placed more recently are not moved by resize or
	// consolidation, so the scheduler does not undo its own decisions (5 min).
	MinTaskAge time.Duration
	// Consolidate turns on draining of under-used nodes whose tasks fit
	// elsewhere.
	Consolidate bool
	// ConsolidateBelow: only nodes whose largest requested share is below
	// this are drained (0.3); DrainBudget caps tasks moved per reconcile (10).
	ConsolidateBelow float64
	DrainBudget      int
	// SpareNodes is how many empty nodes the autoscaling report keeps (1).
	SpareNodes int
}

func (o *ReconcileOptions) normalize() error {
	if err := o.Options.normalize(); err != nil {
		return err
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = 10 * time.Second
	}
	def(&o.MassFailureFraction, 0.3)
	if o.MassFailureRate == 0 {
		o.MassFailureRate = 50
	}
	def(&o.ResizeDeadband, 0.1)
	def(&o.MoveCost, 0.25)
	if o.ShrinkDelay == 0 {
		o.ShrinkDelay = 5 * time.Minute
	}
	if o.MinTaskAge == 0 {
		o.MinTaskAge = 5 * time.Minute
	}
	def(&o.ConsolidateBelow, 0.3)
	if o.DrainBudget == 0 {
		o.DrainBudget = 10
	}
	if o.SpareNodes == 0 {
		o.SpareNodes = 1
	}
	if o.HeartbeatTimeout < 0 || o.MassFailureFraction < 0 || o.MassFailureFraction > 1 || o.MassFailureRate < 0 ||
		o.ResizeDeadband < 0 || o.MoveCost < 0 || o.ConsolidateBelow < 0 || o.ConsolidateBelow > 1 || o.DrainBudget < 0 {
		return fmt.Errorf("%w: reconcile options out of range (timeouts, rates and budgets ≥ 0; fractions in [0,1])", ErrInvalid)
	}
	return nil
}

// Result is what Reconcile decided. The caller applies it in this order:
// record NodesDown/NodesUp and Lost, start Place (each a new attempt of its
// task), stop Stop and Preempt, apply Resize, and record Deferred.
type Result struct {
	NodesDown []string
	NodesUp   []string
	Lost      []LostTask
	Place     []Placement
	Preempt   []Preemption
	Stop      []Stop
	Resize    []Resize
	Drain     []Drain
	// Deferred tasks stay pending (or lost) with a reason.
	Deferred []Unplaced
	// Adopted lost tasks found running again on their returned node: the
	// caller marks them running on that node (same attempt).
	Adopted []string
	// StaleKept counts copies left running on a returned node because their
	// replacement does not run yet.
	StaleKept int
	Autoscale AutoscaleReport
}

// LostTask is a task whose node went down.
type LostTask struct {
	TaskID string
	Node   string
	Reason string
}

// Stop asks an agent to stop one copy of a task.
type Stop struct {
	TaskID  string
	Attempt int
	Node    string
	Reason  string
}

// Resize changes a running task's sizes in place, or says why it moved or
// was left as it is.
type Resize struct {
	TaskID   string
	Node     string
	From, To Resources // requests
	Limit    Resources // new limit (InPlace)
	InPlace  bool
	Moved    bool // a Placement elsewhere was made instead
	Reason   string
}

// Drain empties an under-used node by moving its tasks.
type Drain struct {
	Node   string
	Tasks  []string
	Reason string
}

// AutoscaleReport says how many machines the current work needs and which
// could go.
type AutoscaleReport struct {
	NodesUp        int
	MachinesUsed   int // nodes with at least one task after this reconcile
	MachinesNeeded int // used plus extra nodes (of the most common shape) for what waits
	LowerBound     int // max over resources of ⌈Σ requests / capacity of the common shape⌉
	CouldRemove    []string
	Add            int
	// Unfittable counts waiting tasks that fit no machine of the common
	// shape (too large, or constrained to labels it lacks).
	Unfittable int
}

// Reconcile compares the wanted state with what is observed and returns the
// actions to take at time now. It is pure: the same state, now and options
// give the same Result.
//
// In order: nodes whose heartbeat is older than HeartbeatTimeout go down and
// their running tasks become lost; lost tasks are re-placed at once (limited
// to MassFailureRate when MassFailureFraction of nodes is down: a partition
// is likely and the nodes may return), then pending tasks; copies of a task
// other than its current attempt are stopped, but only once the current
// attempt runs (so a returning node's copies keep serving until their
// replacements are up); changed recommendations are applied in place when
// they fit, otherwise moved or left by MoveCost; with Consolidate, nodes
// under ConsolidateBelow are drained within DrainBudget; last, an
// autoscaling report.
func Reconcile(st ClusterState, now time.Time, opts ReconcileOptions) (Result, error) {
	if err := opts.normalize(); err != nil {
		return Result{}, err
	}
	var res Result
	view := ClusterView{Nodes: make([]Node, 0, len(st.Nodes))}
	down := map[string]time.Duration{}
	for _, ns := range st.Nodes {
		n := ns.Node
		age := now.Sub(ns.LastHeartbeat)
		isDown := age > opts.HeartbeatTimeout
		if isDown && !n.Down {
			res.NodesDown = append(res.NodesDown, n.Name)
		} else if !isDown && n.Down {
			res.NodesUp = append(res.NodesUp, n.Name)
		}
		n.Down = isDown
		if isDown {
			down[n.Name] = age
		} else {
			res.Autoscale.NodesUp++
		}
		view.Nodes = append(view.Nodes, n)
	}
	massive := len(st.Nodes) > 0 && float64(len(down)) >= opts.MassFailureFraction*float64(len(st.Nodes))

	s, err := NewState(view)
	if err != nil {
		return Result{}, err
	}
	reported := make(map[copyKey]bool, len(st.Copies))
	for _, c := range st.Copies {
		reported[copyKey{c.TaskID, c.Attempt, c.Node}] = true
	}
	var lost, pending []Task
	running := map[string]*TaskStatus{}
	for i := range st.Tasks {
		ts := &st.Tasks[i]
		switch ts.Phase {
		case Running:
			if age, ok := down[ts.Node]; ok {
				res.Lost = append(res.Lost, LostTask{TaskID: ts.ID, Node: ts.Node,
					Reason: fmt.Sprintf("node %s down: no heartbeat for %s (timeout %s)", ts.Node, age.Round(time.Second), opts.HeartbeatTimeout)})
				lost = append(lost, ts.Task)
				continue
			}
			if _, ok := s.Node(ts.Node); !ok {
				lost = append(lost, ts.Task)
				res.Lost = append(res.Lost, LostTask{TaskID: ts.ID, Node: ts.Node, Reason: "node " + ts.Node + " is gone"})
				continue
			}
			if err := s.Assign(applied(ts), ts.Node); err != nil {
				return Result{}, err
			}
			running[ts.ID] = ts
		case Lost:
			_, isDown := down[ts.Node]
			if _, known := s.Node(ts.Node); known && !isDown && reported[copyKey{ts.ID, ts.Attempt, ts.Node}] {
				// Its node came back with the task still running: adopt it
				// instead of placing a second copy.
				if err := s.Assign(applied(ts), ts.Node); err != nil {
					return Result{}, err
				}
				running[ts.ID] = ts
				res.Adopted = append(res.Adopted, ts.ID)
				continue
			}
			lost = append(lost, ts.Task)
		default:
			pending = append(pending, ts.Task)
		}
	}

	// Re-place lost tasks first, rate-limited in a mass failure, then pending.
	if massive && len(lost) > opts.MassFailureRate {
		slices.SortStableFunc(lost, func(a, b Task) int { return cmp.Compare(b.Priority, a.Priority) })
		for _, t := range lost[opts.MassFailureRate:] {
			res.Deferred = append(res.Deferred, Unplaced{TaskID: t.ID, Reason: fmt.Sprintf(
				"re-placement rate-limited: %d of %d nodes are down at once (a partition is likely); %d lost tasks re-placed per reconcile",
				len(down), len(st.Nodes), opts.MassFailureRate)})
		}
		lost = lost[:opts.MassFailureRate]
	}
	if err := res.place(s, append(lost, pending...), opts.Options); err != nil {
		return Result{}, err
	}

	res.stopStale(st, down, reported)
	if err := res.resize(s, st, running, now, opts); err != nil {
		return Result{}, err
	}
	if opts.Consolidate {
		if err := res.consolidate(s, running, now, opts); err != nil {
			return Result{}, err
		}
	}
	specs := make(map[string]Task, len(st.Tasks))
	for i := range st.Tasks {
		specs[st.Tasks[i].ID] = st.Tasks[i].Task
	}
	res.autoscale(s, view.Nodes, specs, opts)
	return res, nil
}

// applied is the task with the sizes in effect on its node.
func applied(ts *TaskStatus) Task {
	t := ts.Task
	if ts.Applied != (Resources{}) {
		t.Request = ts.Applied
	}
	if ts.AppliedLimit != (Resources{}) {
		t.Limit = ts.AppliedLimit
	}
	if t.Limit != (Resources{}) {
		for r := range t.Limit {
			t.Limit[r] = max(t.Limit[r], t.Request[r])
		}
	}
	return t
}

func (res *Result) place(s *State, tasks []Task, opts Options) error {
	if len(tasks) == 0 {
		return nil
	}
	plan, err := s.Place(tasks, opts)
	if err != nil {
		return err
	}
	res.Place = append(res.Place, plan.Placements...)
	res.Preempt = append(res.Preempt, plan.Preemptions...)
	res.Deferred = append(res.Deferred, plan.Unplaced...)
	return nil
}

type copyKey struct {
	id      string
	attempt int
	node    string
}

// stopStale stops copies that are not a task's current attempt, once the
// current attempt is reported running on an up node.
func (res *Result) stopStale(st ClusterState, down map[string]time.Duration, reported map[copyKey]bool) {
	want := make(map[string]*TaskStatus, len(st.Tasks))
	for i := range st.Tasks {
		want[st.Tasks[i].ID] = &st.Tasks[i]
	}
	for _, c := range st.Copies {
		ts, ok := want[c.TaskID]
		if !ok {
			res.Stop = append(res.Stop, Stop{TaskID: c.TaskID, Attempt: c.Attempt, Node: c.Node, Reason: "task is no longer wanted"})
			continue
		}
		if c.Attempt == ts.Attempt && c.Node == ts.Node {
			continue
		}
		if _, isDown := down[c.Node]; isDown {
			continue // cannot reach it; stopped when the node returns
		}
		current := ts.Phase == Running && reported[copyKey{ts.ID, ts.Attempt, ts.Node}]
		if _, d := down[ts.Node]; d {
			current = false
		}
		if !current {
			res.StaleKept++
			continue
		}
		res.Stop = append(res.Stop, Stop{TaskID: c.TaskID, Attempt: c.Attempt, Node: c.Node,
			Reason: fmt.Sprintf("stale copy (attempt %d); attempt %d runs on %s", c.Attempt, ts.Attempt, ts.Node)})
	}
}

// resize applies changed recommendations of running tasks.
func (res *Result) resize(s *State, st ClusterState, running map[string]*TaskStatus, now time.Time, opts ReconcileOptions) error {
	c := &placeCtx{s: s, risk: opts.riskParams()}
	ids := make([]string, 0, len(running))
	for id := range running {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var buf []int32
	for q, id := range ids {
		ts := running[id]
		old := applied(ts)
		want := ts.Task
		if !changed(old.Request, want.Request, opts.ResizeDeadband) && !changed(old.Limit, want.Limit, opts.ResizeDeadband) {
			continue
		}
		if !grows(old, want) && now.Sub(maxTime(ts.ResizedAt, ts.Since)) < opts.ShrinkDelay {
			continue // shrink held: too soon after the last change
		}
		node := ts.Node
		n := s.byName[node]
		s.Remove(id)
		c.cur = nil
		r := Resize{TaskID: id, Node: node, From: old.Request, To: want.Request, Limit: want.Limit}
		if why := c.filter(&want, n); why == ReasonNone {
			s.commit(want, n)
			r.InPlace, r.Reason = true, "fits in place"
			res.Resize = append(res.Resize, r)
			continue
		}
		// No room here: weigh the unmet share of the new request against
		// the cost of moving.
		unmet := 0.0
		ns := &s.nodes[n]
		for k := Resource(0); k < NumResources; k++ {
			if want.Request[k] > 0 {
				room := ns.Capacity[k] - ns.alloc[k]
				unmet = max(unmet, (want.Request[k]-room)/want.Request[k])
			}
		}
		young := now.Sub(ts.Since) < opts.MinTaskAge
		if unmet > opts.MoveCost && !young {
			if m, why := c.selectNode(&want, opts.Options, uint64(q)+1<<32, &buf); m >= 0 {
				s.commit(want, m)
				r.Moved = true
				r.Reason = fmt.Sprintf("%.0f%% of the new request has no room on %s (move cost %.2f): moved to %s", 100*unmet, node, opts.MoveCost, s.nodes[m].Name)
				res.Resize = append(res.Resize, r)
				res.Place = append(res.Place, Placement{TaskID: id, Node: s.nodes[m].Name, Score: why.Top[0].Score, Why: why})
				continue
			}
		}
		s.commit(old, n)
		switch {
		case young:
			r.Reason = fmt.Sprintf("no room on %s; left as is: placed %s ago, under the %s minimum age for moves", node, now.Sub(ts.Since).Round(time.Second), opts.MinTaskAge)
		case unmet <= opts.MoveCost:
			r.Reason = fmt.Sprintf("no room on %s; left as is: %.0f%% unmet is under the move cost %.2f", node, 100*unmet, opts.MoveCost)
		default:
			r.Reason = fmt.Sprintf("no room on %s and no other node fits; left as is", node)
		}
		res.Resize = append(res.Resize, r)
	}
	return nil
}

// grows reports whether want asks for more than old in any request or limit.
func grows(old, want Task) bool {
	for r := range old.Request {
		if want.Request[r] > old.Request[r] || want.Limit[r] > old.Limit[r] {
			return true
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func changed(a, b Resources, band float64) bool {
	for r := range a {
		if math.Abs(a[r]-b[r]) > band*math.Max(math.Abs(a[r]), 1e-12) && a[r] != b[r] {
			return true
		}
	}
	return false
}

// consolidate drains under-used nodes whose tasks all fit elsewhere.
func (res *Result) consolidate(s *State, running map[string]*TaskStatus, now time.Time, opts ReconcileOptions) error {
	type cand struct {
		n     int32
		share float64
	}
	var cs []cand
	moved := map[string]bool{}
	for _, p := range res.Place {
		moved[p.Node] = true
	}
	for i := range s.nodes {
		ns := &s.nodes[i]
		if !ns.schedulable() || len(ns.tasks) == 0 || moved[ns.Name] {
			continue
		}
		share := 0.0
		for r := Resource(0); r < NumResources; r++ {
			share = max(share, ns.alloc[r]/ns.Capacity[r])
		}
		if share < opts.ConsolidateBelow {
			cs = append(cs, cand{int32(i), share})
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return cmp.Compare(a.share, b.share) })
	budget := opts.DrainBudget
	for _, cd := range cs {
		ns := &s.nodes[cd.n]
		if len(ns.tasks) > budget {
			continue
		}
		var tasks []Task
		ok := true
		for _, k := range ns.tasks {
			t := s.tasks[k].Task
			if rs := running[t.ID]; rs == nil || now.Sub(rs.Since) < opts.MinTaskAge {
				ok = false // too young to move: deadband against flapping
				break
			}
			tasks = append(tasks, t)
		}
		if !ok {
			continue
		}
		name := ns.Name
		n := ns.Node
		n.Draining = true
		if _, err := s.AddNode(n); err != nil {
			return err
		}
		// Moving onto an empty node saves nothing: only nodes in use take
		// the tasks.
		var closed []Node
		for i := range s.nodes {
			if e := s.nodes[i].Node; s.nodes[i].schedulable() && len(s.nodes[i].tasks) == 0 {
				closed = append(closed, e)
				e.Cordoned = true
				if _, err := s.AddNode(e); err != nil {
					return err
				}
			}
		}
		for _, t := range tasks {
			s.Remove(t.ID)
		}
		o := opts.Options
		o.NoPreemption = true
		plan, err := s.Place(tasks, o)
		if err != nil {
			return err
		}
		for _, e := range closed {
			if _, err := s.AddNode(e); err != nil {
				return err
			}
		}
		if len(plan.Unplaced) > 0 {
			// Undo: not everything fits elsewhere.
			for _, p := range plan.Placements {
				s.Remove(p.TaskID)
			}
			n.Draining = false
			if _, err := s.AddNode(n); err != nil {
				return err
			}
			for _, t := range tasks {
				if err := s.Assign(t, name); err != nil {
					return err
				}
			}
			continue
		}
		d := Drain{Node: name, Reason: fmt.Sprintf("largest requested share %.0f%% is under %.0f%% and its %d tasks fit elsewhere", 100*cd.share, 100*opts.ConsolidateBelow, len(tasks))}
		for _, p := range plan.Placements {
			d.Tasks = append(d.Tasks, p.TaskID)
			moved[p.Node] = true
		}
		res.Place = append(res.Place, plan.Placements...)
		res.Drain = append(res.Drain, d)
		budget -= len(tasks)
	}
	return nil
}

// autoscale reports machines used and needed, and which empty nodes could go.
func (res *Result) autoscale(s *State, nodes []Node, specs map[string]Task, opts ReconcileOptions) {
	a := &res.Autoscale
	a.NodesUp = 0
	shapes := map[Resources]int{}
	var common Resources
	for _, n := range nodes {
		shapes[n.Capacity]++
		if c := shapes[n.Capacity]; c > shapes[common] || (c == shapes[common] && lessRes(n.Capacity, common)) {
			common = n.Capacity
		}
	}
	var sum Resources
	var empty []string
	for i := range s.nodes {
		ns := &s.nodes[i]
		sum = sum.Add(ns.alloc)
		if ns.Down {
			continue
		}
		a.NodesUp++
		if len(ns.tasks) > 0 {
			a.MachinesUsed++
		} else if ns.schedulable() {
			empty = append(empty, ns.Name)
		}
	}
	// Tasks that wait because nothing fits need new machines: pack them on
	// fresh nodes of the common shape (rate-limited ones are not counted:
	// they wait for time, not room).
	var waiting []Task
	for _, d := range res.Deferred {
		if t, ok := specs[d.TaskID]; ok && d.Why.Nodes > 0 {
			waiting = append(waiting, t)
		}
	}
	extra := 0
	if len(waiting) > 0 && common != (Resources{}) {
		fresh := make([]Node, len(waiting))
		for i := range fresh {
			fresh[i] = Node{Name: fmt.Sprintf("new-%d", i), Capacity: common}
		}
		if ps, err := NewState(ClusterView{Nodes: fresh}); err == nil {
			o := opts.Options
			o.NoPreemption = true
			if plan, err := ps.Place(waiting, o); err == nil {
				a.Unfittable = len(plan.Unplaced)
				for _, p := range plan.Placements {
					t := specs[p.TaskID]
					sum = sum.Add(t.Request)
				}
				for _, u := range ps.Usage() {
					if u.Tasks > 0 {
						extra++
					}
				}
			}
		}
	}
	a.MachinesNeeded = a.MachinesUsed + extra
	a.Add = extra
	if common != (Resources{}) {
		for r := range sum {
			a.LowerBound = max(a.LowerBound, int(math.Ceil(sum[r]/common[r]-1e-9)))
		}
	}
	if len(waiting) == 0 && len(empty) > opts.SpareNodes {
		a.CouldRemove = empty[:len(empty)-opts.SpareNodes]
	}
}

func lessRes(a, b Resources) bool {
	for r := range a {
		if a[r] != b[r] {
			return a[r] < b[r]
		}
	}
	return false
}
