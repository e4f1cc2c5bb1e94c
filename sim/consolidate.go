package sim

import (
	"cmp"
	"slices"

	"github.com/fathom-scheduler/fathom/scheduler"
)

// consolidate drains up to ConsolidateBudget machines whose tasks all fit
// elsewhere, emptiest first. Each drain is asked of the real scheduler: the
// machine is cordoned and its tasks are placed with State.Place under the
// policy's own rules (requests, prod limits, overload risk); if any task
// finds no room the drain is undone and the round stops. Every task moved
// counts as a reschedule. The same rule runs for every policy but the
// oracle (which is repacked from scratch each window).
func (r *run) consolidate() error {
	type cand struct {
		name  string
		ids   []string
		share float64
	}
	var cands []cand
	c := r.capacity()
	usage := r.state.Usage()
	for _, u := range usage {
		if u.Tasks == 0 || r.down[u.Name] || u.Cordoned {
			continue
		}
		share := max(u.Requested[0]/c[0], u.Requested[1]/c[1])
		cands = append(cands, cand{name: u.Name, share: share})
	}
	if len(cands) < 2 {
		return nil
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		if x := cmp.Compare(a.share, b.share); x != 0 {
			return x
		}
		return cmp.Compare(a.name, b.name)
	})
	for i := 0; i < min(r.opts.ConsolidateBudget, len(cands)-1); i++ {
		ok, err := r.drain(cands[i].name)
		if err != nil || !ok {
			return err
		}
	}
	return nil
}

// drain tries to move every task off a machine; it reports whether it did.
func (r *run) drain(name string) (bool, error) {
	ids := r.state.NodeTasks(name)
	if err := r.state.SetNodeFlags(name, true, false, false); err != nil {
		return false, err
	}
	defer r.state.SetNodeFlags(name, false, false, false) //nolint:errcheck // the node exists
	batch := make([]scheduler.Task, 0, len(ids))
	for _, id := range ids {
		t, _ := r.state.Task(id)
		r.state.Remove(id)
		batch = append(batch, t)
	}
	plan, err := r.state.Place(batch, r.placeOpts())
	if err != nil {
		return false, err
	}
	if len(plan.Unplaced) > 0 {
		for _, p := range plan.Placements {
			r.state.Remove(p.TaskID)
		}
		for _, t := range batch {
			if err := r.state.Assign(t, name); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	r.reschedules += len(batch)
	r.slotReschedules += len(batch)
	return true, nil
}
