package scheduler

import (
	"fmt"
	"math"
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
		fresh := make([]Node, len(waiting))
		for i := range fresh {
			fresh[i] = Node{Name: fmt.Sprintf("new-%d", i), Capacity: common}
		}
		if ps, err := NewState(ClusterView{Nodes: fresh}); err == nil {
			o := opts
			o.NoPreemption = true
			o.Seed = 0
			if plan, err := ps.Place(waiting, o); err == nil {
				a.Unfittable = len(plan.Unplaced)
				for _, u := range ps.Usage() {
					if u.Tasks > 0 {
						extra++
						sum = sum.Add(u.Requested)
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
	if len(waiting) == 0 && len(empty) > spare {
		a.CouldRemove = empty[:len(empty)-spare]
	}
	return a
}

func lessRes(a, b Resources) bool {
	for r := range a {
		if a[r] != b[r] {
			return a[r] < b[r]
		}
	}
	return false
}
