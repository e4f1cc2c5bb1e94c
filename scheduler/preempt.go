package scheduler

import (
	"cmp"
	"slices"
)

// preempt finds, for a prod task that fits nowhere, the node where stopping
// lower-priority tasks makes room at the least disruption, measured in order
// by: the highest priority among the victims, the number of victims, and
// their summed size (dominant share). Victims are taken lowest priority
// first (best-effort before batch before prod), larger first within a
// priority, and the set is then made minimal (a victim whose stopping turns
// out unnecessary is kept). It returns -1 when no node can make room.
func (c *placeCtx) preempt(t *Task) (int32, []int32) {
	s := c.s
	type cost struct {
		prio  Priority
		count int
		size  float64
	}
	bestNode, bestVictims := int32(-1), []int32(nil)
	var best cost
	var vs []int32
	for n := range s.nodes {
		n := int32(n)
		ns := &s.nodes[n]
		if ns.removed {
			continue
		}
		if nodeHealth.Filter(nodeHealth{}, c, t, n) != ReasonNone || avoidFilter.Filter(avoidFilter{}, c, t, n) != ReasonNone ||
			constraintFilter.Filter(constraintFilter{}, c, t, n) != ReasonNone ||
			spreadFilter.Filter(spreadFilter{}, c, t, n) != ReasonNone {
			continue
		}
		vs = vs[:0]
		for _, k := range ns.tasks {
			if s.tasks[k].Priority < t.Priority {
				vs = append(vs, k)
			}
		}
		if len(vs) == 0 {
			continue
		}
		slices.SortFunc(vs, func(a, b int32) int {
			ta, tb := &s.tasks[a], &s.tasks[b]
			if ta.Priority != tb.Priority {
				return cmp.Compare(ta.Priority, tb.Priority)
			}
			if c := cmp.Compare(size(&tb.Task, ns.Capacity), size(&ta.Task, ns.Capacity)); c != 0 {
				return c
			}
			return cmp.Compare(ta.ID, tb.ID)
		})
		// Take victims until the task fits.
		take := 0
		for take <= len(vs) && !c.fitsWithout(t, n, vs[:take]) {
			take++
		}
		if take > len(vs) {
			continue
		}
		chosen := slices.Clone(vs[:take])
		// Make the set minimal: spare, highest priority first, any victim
		// the task does not need gone.
		for i := len(chosen) - 1; i >= 0; i-- {
			trial := slices.Delete(slices.Clone(chosen), i, i+1)
			if c.fitsWithout(t, n, trial) {
				chosen = trial
			}
		}
		cc := cost{}
		for _, v := range chosen {
			cc.prio = max(cc.prio, s.tasks[v].Priority)
			cc.size += size(&s.tasks[v].Task, ns.Capacity)
		}
		cc.count = len(chosen)
		if bestNode < 0 || cc.prio < best.prio || (cc.prio == best.prio && (cc.count < best.count || (cc.count == best.count && cc.size < best.size))) {
			bestNode, bestVictims, best = n, chosen, cc
		}
	}
	return bestNode, bestVictims
}

// fitsWithout reports whether t passes the resource, prod-limit and risk
// filters on node n once the victims are gone. For the Bernstein range it
// keeps the node's current largest range, which can only over-state risk.
func (c *placeCtx) fitsWithout(t *Task, n int32, victims []int32) bool {
	s := c.s
	ns := &s.nodes[n]
	alloc, prod, mu, v, sd := ns.alloc, ns.prodLimit, ns.mu, ns.v, ns.sd
	for _, k := range victims {
		vt := &s.tasks[k].Task
		alloc = alloc.Sub(vt.Request)
		if vt.Priority.IsProd() {
			prod = prod.Sub(effLimit(vt))
		}
		for r := Resource(0); r < NumResources; r++ {
			d := vt.dist(r)
			mu[r] -= d.Mean
			v[r] -= d.StdDev * d.StdDev
			sd[r] -= d.StdDev
		}
	}
	if !alloc.Add(t.Request).Fits(ns.Capacity) {
		return false
	}
	if t.Priority.IsProd() && !prod.Add(effLimit(t)).Fits(ns.Capacity) {
		return false
	}
	for r := Resource(0); r < NumResources; r++ {
		d := t.dist(r)
		vv := max(0, v[r]) + d.StdDev*d.StdDev
		b := max(ns.bmax[r], taskCap(t, ns, r)-d.Mean)
		if !fitsOne(mu[r]+d.Mean+c.risk.marginFor(r, vv, max(0, sd[r])+d.StdDev, b), ns.Capacity[r]) {
			return false
		}
	}
	return true
}
