package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// ConsolidateOptions tune Consolidate. Zero values take the defaults in
// parentheses.
type ConsolidateOptions struct {
	MoveOptions
	// Below: only nodes whose largest requested share is below this are
	// drained (0.3).
	Below float64
	// Budget caps the tasks moved per call (10).
	Budget int
}

func (o *ConsolidateOptions) normalize() error {
	if err := o.MoveOptions.normalize(); err != nil {
		return err
	}
	if o.Below == 0 {
		o.Below = 0.3
	}
	if o.Budget == 0 {
		o.Budget = 10
	}
	if o.Below < 0 || o.Below > 1 || o.Budget < 0 {
		return fmt.Errorf("%w: consolidate below %v must be in [0, 1] and the budget ≥ 0", ErrInvalid, o.Below)
	}
	return nil
}

// Drain empties an under-used node by moving its tasks.
type Drain struct {
	Node   string
	Tasks  []string
	Reason string
}

// Consolidate drains under-used nodes whose tasks all fit on other nodes in
// use (moving onto an empty node saves nothing), emptiest first, within
// Budget tasks. since says when a task's current placement was made: a node
// with a task younger than MinTaskAge is left (a deadband against
// flapping). Nodes in skip (for example ones that just received tasks) are
// not drained. It returns the drains and the placements of the moved
// tasks, and updates the State with them.
func (s *State) Consolidate(since func(taskID string) time.Time, skip map[string]bool, now time.Time, opts ConsolidateOptions) ([]Drain, []Placement, error) {
	if err := opts.normalize(); err != nil {
		return nil, nil, err
	}
	type cand struct {
		n     int32
		share float64
	}
	var cs []cand
	for i := range s.nodes {
		ns := &s.nodes[i]
		if !ns.schedulable() || len(ns.tasks) == 0 || skip[ns.Name] {
			continue
		}
		share := 0.0
		for r := Resource(0); r < NumResources; r++ {
			share = max(share, ns.alloc[r]/ns.Capacity[r])
		}
		if share < opts.Below {
			cs = append(cs, cand{int32(i), share})
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return cmp.Compare(a.share, b.share) })
	var drains []Drain
	var places []Placement
	moved := map[string]bool{}
	budget := opts.Budget
	for _, cd := range cs {
		ns := &s.nodes[cd.n]
		if len(ns.tasks) > budget || moved[ns.Name] {
			continue
		}
		var tasks []Task
		ok := true
		for _, k := range ns.tasks {
			t := s.tasks[k].Task
			if now.Sub(since(t.ID)) < opts.MinTaskAge {
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
			return nil, nil, err
		}
		// Moving onto an empty node saves nothing: only nodes in use take
		// the tasks.
		var closed []Node
		for i := range s.nodes {
			if e := s.nodes[i].Node; s.nodes[i].schedulable() && len(s.nodes[i].tasks) == 0 {
				closed = append(closed, e)
				e.Cordoned = true
				if _, err := s.AddNode(e); err != nil {
					return nil, nil, err
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
			return nil, nil, err
		}
		for _, e := range closed {
			if _, err := s.AddNode(e); err != nil {
				return nil, nil, err
			}
		}
		n.Draining = false
		if len(plan.Unplaced) > 0 {
			// Undo: not everything fits elsewhere.
			for _, p := range plan.Placements {
				s.Remove(p.TaskID)
			}
			if _, err := s.AddNode(n); err != nil {
				return nil, nil, err
			}
			for _, t := range tasks {
				if err := s.Assign(t, name); err != nil {
					return nil, nil, err
				}
			}
			continue
		}
		if _, err := s.AddNode(n); err != nil {
			return nil, nil, err
		}
		d := Drain{Node: name, Reason: fmt.Sprintf("largest requested share %.0f%% is under %.0f%% and its %d tasks fit elsewhere", 100*cd.share, 100*opts.Below, len(tasks))}
		for _, p := range plan.Placements {
			d.Tasks = append(d.Tasks, p.TaskID)
			moved[p.Node] = true
		}
		places = append(places, plan.Placements...)
		drains = append(drains, d)
		budget -= len(tasks)
	}
	return drains, places, nil
}
