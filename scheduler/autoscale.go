package scheduler

import (
	"fmt"
	"math"
	"slices"
)

// AutoscaleReport says how many machines the current work needs and which
// could go.
type AutoscaleReport struct {
	NodesUp        int
	MachinesUsed   int // nodes with at least one task
	MachinesNeeded int // used plus extra nodes (of the most common shape) for what waits
	LowerBound     int // max over resources of ⌈Σ requests / capacity of the common shape⌉
	CouldRemove    []string
	Add            int
	// Unfittable counts waiting tasks that fit no machine of the common
	// shape (too large, or constrained to labels it lacks).
	Unfittable int
	// Shape is the common node shape the report counts in.
	Shape Resources
}

// Autoscale reports machines used and needed, and which empty nodes could go.
// waiting are the tasks that wait for room (not those that wait for time,
// such as rate-limited re-placements): they are packed onto fresh nodes of
// the most common shape to count the machines to add. Empty schedulable
// nodes beyond spare could be removed, but only while nothing waits. The
// State is not changed.
func (s *State) Autoscale(waiting []Task, spare int, opts Options) AutoscaleReport {
	var a AutoscaleReport
	shapes := map[Resources]int{}
	var common Resources
	for i := range s.nodes {
		if s.nodes[i].removed {
			continue
		}
		c := s.nodes[i].Capacity
		shapes[c]++
		if k := shapes[c]; k > shapes[common] || (k == shapes[common] && lessRes(c, common)) {
			common = c
		}
	}
	a.Shape = common
	var sum Resources
	var empty []string
	for i := range s.nodes {
		ns := &s.nodes[i]
		if ns.removed {
			continue
		}
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
	extra := 0
	if len(waiting) > 0 && common != (Resources{}) {
		o := opts
		o.NoPreemption, o.fill = true, true
		o.Seed = 0
		f := s.freshMachines(waiting, common, o)
		extra, a.Unfittable = f.machines, f.unfittable
		sum = sum.Add(f.requested)
	}
	a.MachinesNeeded = a.MachinesUsed + extra
	a.Add = extra
	if common != (Resources{}) {
		for r := range sum {
			a.LowerBound = max(a.LowerBound, int(math.Ceil(sum[r]/common[r]-1e-9)))
		}
	}
	if len(waiting) == 0 && len(empty) > spare {
		a.CouldRemove = empty[:len(empty)-spare]
	}
	return a
}

// freshMemo is the last packing of waiting tasks onto fresh machines: it
// depends on nothing but its inputs, and a queue of tasks that wait for
// room is the same from one round to the next.
type freshMemo struct {
	waiting    []Task
	shape      Resources
	opts       Options
	machines   int
	unfittable int
	requested  Resources // Σ requests of the tasks placed there
}

// freshMachines packs waiting onto fresh machines of shape, one filled
// before the next is opened, or answers from the memo.
func (s *State) freshMachines(waiting []Task, shape Resources, o Options) freshMemo {
	if m := s.fresh; m != nil && m.shape == shape && m.opts == o && slices.EqualFunc(m.waiting, waiting, sameTask) {
		return *m
	}
	m := freshMemo{waiting: slices.Clone(waiting), shape: shape, opts: o}
	nodes := make([]Node, len(waiting))
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("new-%d", i), Capacity: shape}
	}
	if ps, err := NewState(ClusterView{Nodes: nodes}); err == nil {
		if plan, err := ps.Place(waiting, o); err == nil {
			m.unfittable = len(plan.Unplaced)
			for _, u := range ps.Usage() {
				if u.Tasks > 0 {
					m.machines++
					m.requested = m.requested.Add(u.Requested)
				}
			}
		}
	}
	s.fresh = &m
	return m
}

// sameTask: a and b are the same demand.
func sameTask(a, b Task) bool {
	return a.ID == b.ID && a.Job == b.Job && a.Priority == b.Priority && a.Request == b.Request && a.Limit == b.Limit &&
		a.Usage == b.Usage && a.MaxPerNode == b.MaxPerNode && a.Avoid == b.Avoid && sameRules(&a, &b)
}

func lessRes(a, b Resources) bool {
	for r := range a {
		if a[r] != b[r] {
			return a[r] < b[r]
		}
	}
	return false
}
