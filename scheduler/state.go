package scheduler

import (
	"fmt"
	"maps"
	"slices"
)

// State is the scheduler's working copy of a cluster: nodes, the tasks on
// them and the indexes that make placement cheap. It is built from a
// ClusterView and then changed only by Place and the methods below, so a
// long-lived caller (the server, the simulator) can keep one State and feed
// it changes instead of rebuilding it.
//
// A State does no I/O and is not safe for concurrent use.
type State struct {
	nodes    []nodeState
	byName   map[string]int32
	freeNode []int32 // slots of removed nodes, reused by AddNode
	live     int     // nodes not removed
	tasks    []taskState
	byID     map[string]int32
	freeTask []int32
	jobCount map[jobNode]int32
	// jobTotal counts each job's placed tasks; a job with at least
	// denseAt of them also keeps its per-node counts in jobDense, indexed
	// by node, so that the spread check of its tasks is an array read (a
	// 10,000-replica job walks past every node already holding its share).
	jobTotal map[int32]int32
	jobDense map[int32][]int32
	jobIDs   map[string]int32
	idx      freeIndex
	// epoch grows whenever capacity is freed or added, so a class that failed
	// to place at the current epoch fails again without another search.
	epoch int64
	// consCache caches constraint results per constraint signature per node.
	consCache map[string][]int8
	// spreadCount counts tasks per (job, label, value) of tasks with
	// Spread; labelNodes counts schedulable nodes per label and value
	// (spread.go).
	spreadCount map[spreadKey]int32
	labelNodes  map[string]map[string]int32
	// fresh is Autoscale's last packing onto fresh machines.
	fresh *freshMemo
}

type nodeState struct {
	Node
	alloc     Resources // Σ requests
	prodLimit Resources // Σ limits of prod tasks
	mu        Resources // Σ predicted mean usage
	v         Resources // Σ predicted variance
	sd        Resources // Σ predicted stddev (for correlated tasks)
	bmax      Resources // largest cap − mean of one task (for Bernstein)
	tasks     []int32
	// ports counts the tasks holding each port; portsInRange is how many
	// distinct held ports lie in PortRange (ports.go).
	ports        map[int]int32
	portsInRange int
	bucket       int32 // -1: not schedulable, not in the index
	pos          int32
	removed      bool // RemoveNode: a free slot
}

type taskState struct {
	Task
	node int32 // -1: not placed
	live bool
	// spreadVal is the value of Task.Spread on its node that it is counted
	// under (spreadCounted).
	spreadVal     string
	spreadCounted bool
}

type jobNode struct {
	job  int32 // interned job name (State.jobIDs)
	node int32
}

// jobID interns a job name.
func (s *State) jobID(job string) int32 {
	id, ok := s.jobIDs[job]
	if !ok {
		id = int32(len(s.jobIDs))
		s.jobIDs[job] = id
	}
	return id
}

// NewState builds a State from a view. It returns an error wrapping
// ErrInvalid naming the first node or assignment that is wrong.
func NewState(view ClusterView) (*State, error) {
	s := &State{
		byName:    make(map[string]int32, len(view.Nodes)),
		byID:      make(map[string]int32, len(view.Running)),
		jobCount:  make(map[jobNode]int32),
		jobTotal:  make(map[int32]int32),
		jobDense:  make(map[int32][]int32),
		jobIDs:    make(map[string]int32),
		consCache: make(map[string][]int8),

		spreadCount: make(map[spreadKey]int32),
		labelNodes:  make(map[string]map[string]int32),
	}
	for i := range view.Nodes {
		n := &view.Nodes[i]
		if err := n.Validate(); err != nil {
			return nil, err
		}
		for r := range s.idx.scale {
			s.idx.scale[r] = max(s.idx.scale[r], n.Capacity[r])
		}
	}
	for _, n := range view.Nodes {
		if _, err := s.AddNode(n); err != nil {
			return nil, err
		}
	}
	for _, a := range view.Running {
		if err := s.Assign(a.Task, a.Node); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (n *nodeState) schedulable() bool { return !n.Down && !n.Cordoned && !n.Draining && !n.removed }

// AddNode adds a node, or updates its capacity, labels and flags if a node of
// that name exists. It reports whether the node is new.
func (s *State) AddNode(n Node) (bool, error) {
	if err := n.Validate(); err != nil {
		return false, err
	}
	for r := range s.idx.scale {
		if n.Capacity[r] > s.idx.scale[r] {
			s.rescale(r, n.Capacity[r])
		}
	}
	s.epoch++
	if i, ok := s.byName[n.Name]; ok {
		ns := &s.nodes[i]
		s.idx.remove(s, i)
		if ns.schedulable() {
			s.trackLabels(i, -1)
		}
		relabel := !maps.Equal(ns.Labels, n.Labels)
		ns.Node = n
		ns.portsInRange = 0
		for p := range ns.ports {
			if n.PortRange.Contains(p) {
				ns.portsInRange++
			}
		}
		for k := range s.consCache {
			s.consCache[k][i] = 0
		}
		if ns.schedulable() {
			s.idx.insert(s, i)
			s.trackLabels(i, 1)
		}
		if relabel {
			for _, t := range ns.tasks {
				s.countSpread(t, -1)
				s.countSpread(t, 1)
			}
		}
		return false, nil
	}
	var i int32
	if k := len(s.freeNode); k > 0 {
		i = s.freeNode[k-1]
		s.freeNode = s.freeNode[:k-1]
		s.nodes[i] = nodeState{Node: n, bucket: -1, pos: -1}
		for k := range s.consCache {
			s.consCache[k][i] = 0
		}
	} else {
		i = int32(len(s.nodes))
		s.nodes = append(s.nodes, nodeState{Node: n, bucket: -1, pos: -1})
		for k, c := range s.consCache {
			s.consCache[k] = append(c, 0)
		}
	}
	s.byName[n.Name] = i
	s.live++
	if s.nodes[i].schedulable() {
		s.idx.insert(s, i)
		s.trackLabels(i, 1)
	}
	return true, nil
}

// RemoveNode forgets a node that has no tasks left (a machine given back),
// so that a cluster whose machines come and go does not keep them all. It
// returns an error wrapping ErrInvalid when tasks are still assigned there.
func (s *State) RemoveNode(name string) error {
	i, ok := s.byName[name]
	if !ok {
		return nil
	}
	ns := &s.nodes[i]
	if len(ns.tasks) > 0 {
		return fmt.Errorf("%w: node %s still has %d tasks; remove them first", ErrInvalid, name, len(ns.tasks))
	}
	s.idx.remove(s, i)
	if ns.schedulable() {
		s.trackLabels(i, -1)
	}
	*ns = nodeState{Node: Node{Down: true}, bucket: -1, pos: -1, removed: true}
	delete(s.byName, name)
	s.freeNode = append(s.freeNode, i)
	s.live--
	s.epoch++
	return nil
}

// Epoch grows whenever capacity is added or freed (a node added, changed or
// removed, a task removed or moved). A task that did not fit at one epoch
// cannot fit at the same epoch with the same sizes and options: callers
// need not ask again until it changes (Nomad's blocked evaluations).
func (s *State) Epoch() int64 { return s.epoch }

// Nodes is how many nodes the State holds.
func (s *State) Nodes() int { return s.live }

// rescale rebuilds the index when a node larger than any before arrives.
func (s *State) rescale(r int, v float64) {
	s.idx = freeIndex{scale: s.idx.scale}
	s.idx.scale[r] = v
	for i := range s.nodes {
		s.nodes[i].bucket = -1
		if s.nodes[i].schedulable() {
			s.idx.insert(s, int32(i))
		}
	}
}

// SetNodeFlags changes a node's cordoned, draining and down flags.
func (s *State) SetNodeFlags(name string, cordoned, draining, down bool) error {
	i, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("%w: no node %q", ErrInvalid, name)
	}
	n := s.nodes[i].Node
	n.Cordoned, n.Draining, n.Down = cordoned, draining, down
	_, err := s.AddNode(n)
	return err
}

// Node returns the named node and whether it exists.
func (s *State) Node(name string) (Node, bool) {
	i, ok := s.byName[name]
	if !ok {
		return Node{}, false
	}
	return s.nodes[i].Node, true
}

// Assign records that task t runs on the named node, whatever the filters
// say (it is an observed fact). A task already known moves.
func (s *State) Assign(t Task, node string) error {
	if err := t.Validate(); err != nil {
		return err
	}
	n, ok := s.byName[node]
	if !ok {
		return fmt.Errorf("%w: task %s is on node %q, which is not in the view; add the node first", ErrInvalid, t.ID, node)
	}
	s.Remove(t.ID)
	s.commit(t, n)
	return nil
}

// Remove forgets a task (stopped, finished, preempted, lost). It reports
// whether the task was known.
func (s *State) Remove(id string) bool {
	i, ok := s.byID[id]
	if !ok {
		return false
	}
	s.uncommit(i)
	return true
}

// TaskNode returns the node a task is on.
func (s *State) TaskNode(id string) (string, bool) {
	i, ok := s.byID[id]
	if !ok {
		return "", false
	}
	return s.nodes[s.tasks[i].node].Name, true
}

// Task returns a placed task's spec.
func (s *State) Task(id string) (Task, bool) {
	i, ok := s.byID[id]
	if !ok {
		return Task{}, false
	}
	return s.tasks[i].Task, true
}

// NodeTasks returns the IDs of the tasks on a node.
func (s *State) NodeTasks(name string) []string {
	i, ok := s.byName[name]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(s.nodes[i].tasks))
	for _, t := range s.nodes[i].tasks {
		out = append(out, s.tasks[t].ID)
	}
	slices.Sort(out)
	return out
}

// NodeUsage is the committed load of one node.
type NodeUsage struct {
	Name string
	Node
	Tasks int
	// Requested is Σ requests; ProdLimits Σ limits of prod tasks; Mean and
	// Variance the summed predicted usage distribution.
	Requested, ProdLimits, Mean, Variance Resources
}

// Usage returns the load of every node, in the order nodes were added.
func (s *State) Usage() []NodeUsage {
	out := make([]NodeUsage, 0, s.live)
	for i := range s.nodes {
		n := &s.nodes[i]
		if n.removed {
			continue
		}
		out = append(out, NodeUsage{Name: n.Name, Node: n.Node, Tasks: len(n.tasks), Requested: n.alloc, ProdLimits: n.prodLimit, Mean: n.mu, Variance: n.v})
	}
	return out
}

// Risk returns a node's estimated probability of overload per resource under
// the given model.
func (s *State) Risk(name string, m RiskModel) (Resources, bool) {
	i, ok := s.byName[name]
	if !ok {
		return Resources{}, false
	}
	n := &s.nodes[i]
	var p Resources
	for r := Resource(0); r < NumResources; r++ {
		p[r] = OverloadProbability(m, n.Capacity[r], n.mu[r], n.v[r], n.bmax[r])
	}
	return p, true
}

// cap returns the most a task can use of resource r on node n: its limit, or
// the node's capacity without one.
func taskCap(t *Task, n *nodeState, r Resource) float64 {
	if t.Limit[r] > 0 {
		return min(t.Limit[r], n.Capacity[r])
	}
	return n.Capacity[r]
}

func (s *State) commit(t Task, n int32) int32 {
	// Spreading is decided at placement; the task's replicas are counted
	// on every node (jobCount) whatever the stored copy says, and a later
	// move (resize, consolidation, a preempted victim) is not held to the
	// cap of the placement that is over.
	t.MaxPerNode = 0
	var i int32
	if k := len(s.freeTask); k > 0 {
		i = s.freeTask[k-1]
		s.freeTask = s.freeTask[:k-1]
		s.tasks[i] = taskState{Task: t, node: n, live: true}
	} else {
		i = int32(len(s.tasks))
		s.tasks = append(s.tasks, taskState{Task: t, node: n, live: true})
	}
	s.byID[t.ID] = i
	ns := &s.nodes[n]
	ts := &s.tasks[i]
	ns.alloc = ns.alloc.Add(t.Request)
	if t.Priority.IsProd() {
		ns.prodLimit = ns.prodLimit.Add(effLimit(&ts.Task))
	}
	for r := Resource(0); r < NumResources; r++ {
		d := ts.dist(r)
		ns.mu[r] += d.Mean
		ns.v[r] += d.StdDev * d.StdDev
		ns.sd[r] += d.StdDev
		ns.bmax[r] = max(ns.bmax[r], taskCap(&ts.Task, ns, r)-d.Mean)
	}
	ns.tasks = append(ns.tasks, i)
	if t.Job != "" {
		j := s.jobID(t.Job)
		s.jobCount[jobNode{j, n}]++
		s.jobTotal[j]++
		if d, ok := s.jobDense[j]; ok {
			if int(n) >= len(d) {
				d = append(d, make([]int32, len(s.nodes)-len(d))...)
				s.jobDense[j] = d
			}
			d[n]++
		} else if s.jobTotal[j] >= denseAt {
			d := make([]int32, len(s.nodes))
			for m := range d {
				d[m] = s.jobCount[jobNode{j, int32(m)}]
			}
			s.jobDense[j] = d
		}
	}
	s.countSpread(i, 1)
	s.holdPorts(&ts.Task, n, 1)
	s.idx.update(s, n)
	return i
}

// denseAt is the number of placed tasks from which a job's per-node
// counts are kept in an array (see State.jobDense).
const denseAt = 256

// jobOn is how many tasks of job j node n holds.
func (s *State) jobOn(j, n int32) int32 {
	if d, ok := s.jobDense[j]; ok {
		if int(n) < len(d) {
			return d[n]
		}
		return 0
	}
	return s.jobCount[jobNode{j, n}]
}

// effLimit is the limit counted against capacity for prod tasks: the limit,
// or the request when the task has none.
func effLimit(t *Task) Resources {
	l := t.Limit
	for r := range l {
		if l[r] == 0 {
			l[r] = t.Request[r]
		}
	}
	return l
}

func (s *State) uncommit(i int32) {
	ts := &s.tasks[i]
	n := ts.node
	ns := &s.nodes[n]
	ns.alloc = ns.alloc.Sub(ts.Request)
	if ts.Priority.IsProd() {
		ns.prodLimit = ns.prodLimit.Sub(effLimit(&ts.Task))
	}
	for r := Resource(0); r < NumResources; r++ {
		d := ts.dist(r)
		ns.mu[r] -= d.Mean
		ns.v[r] -= d.StdDev * d.StdDev
		if ns.v[r] < 1e-15 {
			ns.v[r] = max(ns.v[r], 0)
		}
		ns.sd[r] = max(ns.sd[r]-d.StdDev, 0)
	}
	if k := slices.Index(ns.tasks, i); k >= 0 {
		ns.tasks[k] = ns.tasks[len(ns.tasks)-1]
		ns.tasks = ns.tasks[:len(ns.tasks)-1]
	}
	if len(ns.tasks) == 0 {
		// Clear float drift on an empty node.
		ns.alloc, ns.prodLimit, ns.mu, ns.v, ns.sd = Resources{}, Resources{}, Resources{}, Resources{}, Resources{}
	}
	ns.bmax = Resources{}
	for _, k := range ns.tasks {
		t := &s.tasks[k]
		for r := Resource(0); r < NumResources; r++ {
			ns.bmax[r] = max(ns.bmax[r], taskCap(&t.Task, ns, r)-t.dist(r).Mean)
		}
	}
	s.countSpread(i, -1)
	s.holdPorts(&ts.Task, n, -1)
	if ts.Job != "" {
		j := s.jobID(ts.Job)
		k := jobNode{j, n}
		if s.jobCount[k]--; s.jobCount[k] <= 0 {
			delete(s.jobCount, k)
		}
		if d, ok := s.jobDense[j]; ok && int(n) < len(d) {
			d[n]--
		}
		if s.jobTotal[j]--; s.jobTotal[j] <= 0 {
			delete(s.jobTotal, j)
			delete(s.jobDense, j)
		}
	}
	delete(s.byID, ts.ID)
	ts.live = false
	ts.Task = Task{}
	s.freeTask = append(s.freeTask, i)
	s.idx.update(s, n)
	s.epoch++
}

// Fits reports whether task t passes every filter on the named node as the
// State is now, without placing it (ReasonNone: it fits). A task already
// assigned counts where it is: remove it first to ask about new sizes.
func (s *State) Fits(t Task, node string, opts Options) (Reason, error) {
	if err := opts.normalize(); err != nil {
		return ReasonNone, err
	}
	if err := t.Validate(); err != nil {
		return ReasonNone, err
	}
	n, ok := s.byName[node]
	if !ok {
		return ReasonNone, fmt.Errorf("%w: no node %q", ErrInvalid, node)
	}
	c := &placeCtx{s: s, risk: opts.riskParams()}
	return c.filter(&t, n), nil
}
