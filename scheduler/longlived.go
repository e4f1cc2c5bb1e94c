package scheduler

import (
	"fmt"
	"time"
)

// Resize and Consolidate run Reconcile's resize and consolidation steps on a
// long-lived State, so that a caller that keeps its State up to date (with
// Assign, Remove, AddNode, SetNodeFlags) can use them without rebuilding the
// state from a snapshot every time, as Reconcile does. Both update s with
// what they decide, as Place does.

// Resize applies the changed recommendations of running tasks: each
// TaskStatus must be Running and already assigned in s on its Node with the
// sizes in effect (Applied and AppliedLimit, or Request and Limit when those
// are zero); Task carries the new recommendation. It returns one Resize per
// task that changed beyond the deadband (in place, moved, or left with the
// reason) and a Placement for each moved task, exactly as Reconcile would.
func (s *State) Resize(running []TaskStatus, now time.Time, opts ReconcileOptions) ([]Resize, []Placement, error) {
	m, err := s.runningMap(running, &opts)
	if err != nil {
		return nil, nil, err
	}
	var res Result
	if err := res.resize(s, ClusterState{}, m, now, opts); err != nil {
		return nil, nil, err
	}
	return res.Resize, res.Place, nil
}

// Consolidate drains under-used nodes whose tasks all fit on other nodes in
// use, within opts.DrainBudget tasks, as Reconcile does with Consolidate on
// (opts.Consolidate itself is not consulted). running lists the tasks
// assigned in s (their Since decides who is old enough to move). It returns
// the drains and the placements of the moved tasks.
func (s *State) Consolidate(running []TaskStatus, now time.Time, opts ReconcileOptions) ([]Drain, []Placement, error) {
	m, err := s.runningMap(running, &opts)
	if err != nil {
		return nil, nil, err
	}
	var res Result
	if err := res.consolidate(s, m, now, opts); err != nil {
		return nil, nil, err
	}
	return res.Drain, res.Place, nil
}

func (s *State) runningMap(running []TaskStatus, opts *ReconcileOptions) (map[string]*TaskStatus, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	m := make(map[string]*TaskStatus, len(running))
	for i := range running {
		ts := &running[i]
		if ts.Phase != Running {
			return nil, fmt.Errorf("%w: task %s is %s; only running tasks are resized or moved", ErrInvalid, ts.ID, ts.Phase)
		}
		if node, ok := s.TaskNode(ts.ID); !ok || node != ts.Node {
			return nil, fmt.Errorf("%w: task %s is not assigned on %q in this State; Assign it first", ErrInvalid, ts.ID, ts.Node)
		}
		m[ts.ID] = ts
	}
	return m, nil
}
