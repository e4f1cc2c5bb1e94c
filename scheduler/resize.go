package scheduler

import (
	"fmt"
	"time"
)

// MoveOptions tune Resize and Consolidate: when a running task may be moved
// to another node. Zero values take the defaults in parentheses.
type MoveOptions struct {
	Options // placement options (seed, ε, risk model, candidates)
	// MoveCost is the disruption of moving a task, against which the unmet
	// share of a grown request is weighed (0.25: move when more than a
	// quarter of the new request has no room on the current node).
	MoveCost float64
	// MinTaskAge: tasks placed more recently are not moved, so the caller's
	// loop does not undo its own decisions (5 min).
	MinTaskAge time.Duration
}

func (o *MoveOptions) normalize() error {
	if err := o.Options.normalize(); err != nil {
		return err
	}
	if o.MoveCost == 0 {
		o.MoveCost = 0.25
	}
	if o.MinTaskAge == 0 {
		o.MinTaskAge = 5 * time.Minute
	}
	if o.MoveCost < 0 || o.MinTaskAge < 0 {
		return fmt.Errorf("%w: move cost and minimum task age must not be negative", ErrInvalid)
	}
	return nil
}

// ResizeRequest asks for a running task's sizes to change: Task carries the
// new sizes (Request, Limit, Usage) and must already be assigned in the
// State on Node with the sizes in effect. Since is when its current
// placement was made (young tasks are not moved).
type ResizeRequest struct {
	Task  Task
	Node  string
	Since time.Time
}

// Resize is the outcome of one ResizeRequest: the new sizes were applied
// where the task runs (InPlace), or the task was moved to another node
// (Moved, with Placement), or it was left as it is (neither) with Reason.
type Resize struct {
	TaskID    string
	Node      string
	From, To  Resources // requests
	InPlace   bool
	Moved     bool
	Placement Placement // when Moved
	// NoRoom: the task had to move and no node has room for its new sizes
	// (more machines would help; an autoscaler counts it as waiting work).
	NoRoom bool
	Reason string
}

// Resize applies new sizes to running tasks, in order. Deciding whether a
// task's sizes should change at all (deadbands, delays) is the caller's
// policy; Resize only decides where the new sizes fit: in place when the
// node passes every filter with them (requests, Σ prod limits, overload
// risk), otherwise on another node when more than MoveCost of the new
// request has no room where the task is and the task is older than
// MinTaskAge, otherwise nowhere (the old sizes stay). The State is updated
// with every outcome.
func (s *State) Resize(reqs []ResizeRequest, now time.Time, opts MoveOptions) ([]Resize, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	c := &placeCtx{s: s, risk: opts.riskParams()}
	out := make([]Resize, 0, len(reqs))
	var buf []int32
	for q, rq := range reqs {
		want := rq.Task
		if err := want.Validate(); err != nil {
			return nil, err
		}
		i, ok := s.byID[want.ID]
		if !ok || s.nodes[s.tasks[i].node].Name != rq.Node {
			return nil, fmt.Errorf("%w: task %s is not assigned on %q in this State; Assign it first", ErrInvalid, want.ID, rq.Node)
		}
		old := s.tasks[i].Task
		n := s.tasks[i].node
		if want.Ports == nil {
			// A resize keeps the task's ports.
			want.Ports = old.Ports
		}
		s.uncommit(i)
		c.cur = nil
		r := Resize{TaskID: want.ID, Node: rq.Node, From: old.Request, To: want.Request}
		why := c.filter(&want, n)
		if why == ReasonNone || shrinksWithin(old, want, opts.Risk == RiskBernstein) {
			// Every check is monotone in request, limit, mean and spread
			// (also the correlation-aware bound; under Bernstein the upward
			// range must not grow either): a change in which nothing grows
			// fits wherever the old sizes did.
			s.commit(want, n)
			r.InPlace, r.Reason = true, "fits in place"
			out = append(out, r)
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
		// A node that fails the prod-limit or risk check with the new sizes
		// cannot keep the task as it grows: the task must move whatever
		// share of its request has room there.
		must := why == ReasonProdLimits || why == ReasonRisk
		young := now.Sub(rq.Since) < opts.MinTaskAge
		if (unmet > opts.MoveCost || must) && !young {
			if m, mwhy := c.selectNode(&want, opts.Options, uint64(q)+1<<32, &buf); m >= 0 {
				s.choosePorts(&want, m)
				s.commit(want, m)
				r.Moved = true
				if must && unmet <= opts.MoveCost {
					r.Reason = fmt.Sprintf("the new sizes do not pass the %s check on %s: moved to %s", why, rq.Node, s.nodes[m].Name)
				} else {
					r.Reason = fmt.Sprintf("%.0f%% of the new request has no room on %s (move cost %.2f): moved to %s", 100*unmet, rq.Node, opts.MoveCost, s.nodes[m].Name)
				}
				r.Placement = Placement{TaskID: want.ID, Node: s.nodes[m].Name, Ports: want.PortMap(), Score: mwhy.Top[0].Score, Why: mwhy}
				out = append(out, r)
				continue
			}
			r.NoRoom = true
		}
		s.commit(old, n)
		switch {
		case young && (unmet > opts.MoveCost || must):
			r.Reason = fmt.Sprintf("no room on %s for the new sizes (%s); left as is: placed %s ago, under the %s minimum age for moves", rq.Node, why, now.Sub(rq.Since).Round(time.Second), opts.MinTaskAge)
		case r.NoRoom && must:
			r.Reason = fmt.Sprintf("the new sizes do not pass the %s check on %s and no other node fits; left as is", why, rq.Node)
		case young:
			r.Reason = fmt.Sprintf("no room on %s; left as is: placed %s ago, under the %s minimum age for moves", rq.Node, now.Sub(rq.Since).Round(time.Second), opts.MinTaskAge)
		case unmet <= opts.MoveCost:
			r.Reason = fmt.Sprintf("no room on %s; left as is: %.0f%% unmet is under the move cost %.2f", rq.Node, 100*unmet, opts.MoveCost)
		default:
			r.Reason = fmt.Sprintf("no room on %s and no other node fits; left as is", rq.Node)
		}
		out = append(out, r)
	}
	return out, nil
}

// shrinksWithin reports whether no request, limit, predicted mean or spread
// of want exceeds old's (and, when rng, no upward range limit − mean:
// Bernstein's margin grows with it).
func shrinksWithin(old, want Task, rng bool) bool {
	if want.Priority != old.Priority || !sameRules(&want, &old) || want.MaxPerNode != old.MaxPerNode || want.Avoid != old.Avoid {
		return false
	}
	we, oe := effLimit(&want), effLimit(&old)
	for r := Resource(0); r < NumResources; r++ {
		if want.Request[r] > old.Request[r] || (want.Priority.IsProd() && we[r] > oe[r]) {
			return false
		}
		wd, od := want.dist(r), old.dist(r)
		if wd.Mean > od.Mean || wd.StdDev > od.StdDev {
			return false
		}
		if rng {
			if (want.Limit[r] == 0) != (old.Limit[r] == 0) || want.Limit[r]-wd.Mean > old.Limit[r]-od.Mean {
				return false
			}
		}
	}
	return true
}
