package controller

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fathom-scheduler/fathom/scheduler"
)

// Tick runs one round of the control loop at now, in order: nodes whose
// heartbeat lapsed go down and their tasks are lost; cron runs that are due
// start; waiting tasks are placed (lost ones first, rate-limited in a mass
// failure; prod tasks may preempt), tasks on draining nodes move; running
// tasks with new usage are resized in place or moved; under-used nodes are
// consolidated (when configured); last, the autoscaling report and the
// node provider's decisions. Everything it decides is in the next Ready.
func (c *Controller) Tick(now time.Time) {
	now = c.advance(now)
	c.round++
	c.liveness(now)
	c.dueRestarts(now)
	c.startDueRuns(now)
	c.rollouts(now)
	placedOn, room := c.place(now)
	room = append(room, c.resize(now)...)
	if c.cfg.Consolidate && !now.Before(c.lastConsolidation.Add(c.cfg.ConsolidateInterval)) {
		c.lastConsolidation = now
		c.consolidate(now, placedOn)
	}
	c.autoscale(now, room)
	c.trimAll()
	c.collect(now)
}

// placeOpts are the scheduler's options for this round: the configured ones
// with the round's seed and, with OnlineCorrelation, the predictor's ρ.
func (c *Controller) placeOpts() scheduler.Options {
	o := c.cfg.Placement
	o.Seed = splitmix(c.cfg.Placement.Seed ^ c.round)
	if c.cfg.OnlineCorrelation && c.pred != nil && o.Risk != scheduler.RiskBernstein {
		rho := c.pred.Correlation(c.now)
		o.Correlation = scheduler.Resources{rho[0], rho[1]}
	}
	return o
}

func (c *Controller) moveOpts() scheduler.MoveOptions {
	return scheduler.MoveOptions{Options: c.placeOpts(), MoveCost: c.cfg.Sizing.MoveCost, MinTaskAge: c.cfg.Sizing.MinTaskAge}
}

// splitmix is splitmix64's finalizer: a round's seed.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// candidate is one task given to the scheduler this round.
type candidate struct {
	r    ref
	z    Sizing
	move string // "" = a waiting task; otherwise why it moves (its copy stays where it runs)
	from string // a move's current node
	prev scheduler.Task
}

// place gives the scheduler the tasks that wait and the tasks that must
// move off draining nodes. It returns the nodes that received tasks and the
// tasks that wait for room (for the autoscaling report).
func (c *Controller) place(now time.Time) (map[string]bool, []scheduler.Task) {
	schedulable, total, down := 0, 0, 0
	for _, ne := range c.nodes {
		total++
		switch {
		case !ne.node.Up:
			down++
		case ne.node.Schedulable:
			schedulable++
		}
	}
	c.noNodes = ""
	if schedulable == 0 {
		c.noNodes = "no node is up and schedulable (start an agent: fathom agent --server ADDR)"
		if len(c.nodes) == 0 {
			c.noNodes = "no node has registered (start an agent: fathom agent --server ADDR)"
		}
	}
	massive := total > 0 && float64(down) >= c.cfg.MassFailureFraction*float64(total)

	// The waiting tasks, in queue order, up to the round's budget. A task
	// that found no room waits in the blocked list, and is offered again
	// only once capacity changed or RetryWaiting passed.
	c.unblock(now)
	var cands []candidate
	room := slices.Clip(c.blockedRoom)
	lost := 0
	var limited []ref
	for _, r := range c.queue {
		m := r.meta()
		if c.jobs[r.job.job.ID] != r.job || !c.waiting(r) {
			m.queued = false
			continue
		}
		if len(cands) >= c.cfg.MaxPlacePerRound {
			m.wait = fmt.Sprintf("more than %d tasks wait; considered in a later round", c.cfg.MaxPlacePerRound)
			c.out.stats.Deferred++
			continue
		}
		t := r.task()
		if t.State == Lost {
			if massive && lost >= c.cfg.MassFailureRate {
				limited = append(limited, r)
				continue
			}
			lost++
		}
		var z Sizing
		if t.State == Lost && t.CPURequest > 0 {
			z = Sizing{Sizes: t.Sizes, Dist: r.meta().dist, Source: "its sizes before it was lost"}
		} else {
			z = c.startSizes(r, now)
		}
		cands = append(cands, candidate{r: r, z: z})
	}
	for _, r := range limited {
		r.meta().wait = fmt.Sprintf("re-placement rate-limited: %d of %d nodes are down at once (a partition is likely); %d lost tasks re-placed per round",
			down, total, c.cfg.MassFailureRate)
	}
	// Tasks on draining nodes move (their copies keep running there until
	// the new ones run).
	for _, name := range slices.Sorted(mapKeys(c.nodes)) {
		ne := c.nodes[name]
		if !ne.node.Draining || !ne.node.Up {
			continue
		}
		why := "node " + name + " is drained"
		if !ne.node.RemovalRequestedAt.IsZero() {
			why = "node " + name + " is emptied for removal"
		}
		for _, r := range sortedRefs(ne.tasks) {
			t := r.task()
			if t.Desired != DesiredRun || (t.State != Running && t.State != Placed) {
				continue
			}
			prev, ok := c.sched.Task(r.id())
			if !ok {
				continue
			}
			c.sched.Remove(r.id())
			cands = append(cands, candidate{r: r, z: Sizing{Sizes: t.Sizes, Dist: r.meta().dist}, move: why, from: name, prev: prev})
		}
	}
	c.queue = c.stillWaiting(c.queue)
	if len(cands) == 0 {
		return nil, room
	}

	// Spread: replicas of a job share a node only as far as needed.
	spread := map[*jobEntry]int{}
	for _, cd := range cands {
		e := cd.r.job
		if _, ok := spread[e]; ok || schedulable == 0 {
			continue
		}
		active := 0
		for _, t := range e.tasks {
			if !t.State.Terminal() {
				active++
			}
		}
		spread[e] = int(math.Ceil(float64(active) / float64(schedulable)))
	}
	batch := make([]scheduler.Task, 0, len(cands))
	byID := make(map[string]int, len(cands))    // task id -> index in cands
	inBatch := make(map[string]int, len(cands)) // task id -> index in batch
	for i, cd := range cands {
		st := c.schedTask(cd.r, cd.z.Sizes, cd.z.Dist)
		st.MaxPerNode = spread[cd.r.job]
		st.Avoid = c.avoid(cd.r, st, now)
		byID[st.ID] = i
		if err := st.Validate(); err != nil {
			cd.r.meta().wait = "cannot be scheduled as sized: " + err.Error()
			continue
		}
		inBatch[st.ID] = len(batch)
		batch = append(batch, st)
	}
	opts := c.placeOpts()
	plan, err := c.sched.Place(batch, opts)
	if err == nil {
		// Spreading is a preference: a task that found no node only because
		// its job's replicas already fill their share of every node with
		// room is placed without the cap.
		var again []scheduler.Task
		var still []scheduler.Unplaced
		for _, u := range plan.Unplaced {
			if i, ok := inBatch[u.TaskID]; ok && u.Why.Filtered[scheduler.ReasonSpread] > 0 {
				t := batch[i]
				t.MaxPerNode = 0
				again = append(again, t)
				continue
			}
			still = append(still, u)
		}
		if len(again) > 0 {
			o := opts
			o.NoPreemption = true // a victim could be a task placed in the first pass
			var p2 scheduler.Plan
			if p2, err = c.sched.Place(again, o); err == nil {
				plan.Placements = append(plan.Placements, p2.Placements...)
				plan.Preemptions = append(plan.Preemptions, p2.Preemptions...)
				plan.Unplaced = append(still, p2.Unplaced...)
			}
		}
	}
	if err != nil {
		// Options are checked by New; nothing else makes Place fail.
		c.out.logf("placement refused: %v", err)
		for _, cd := range cands {
			if cd.move != "" {
				_ = c.sched.Assign(cd.prev, cd.from)
			}
		}
		return nil, room
	}

	// Preemption: victims leave their node (the agent stops them) and wait
	// again with the reason, unless placed elsewhere below.
	preempted := map[string]string{}
	for _, p := range plan.Preemptions {
		r, ok := c.lookup(p.TaskID)
		if !ok {
			continue
		}
		t := r.task()
		why := fmt.Sprintf("preempted by %s (%s) on %s: stopped to make room", p.For, c.priorityOf(p.For), p.Node)
		preempted[p.TaskID] = why
		c.detach(r)
		t.State, t.Node, t.Desired, t.PID = Pending, "", DesiredRun, 0
		withHistory(t, now, why)
		c.markTask(r)
		c.out.stats.Preempted++
		c.out.stats.add(&c.out.stats.PreemptedBy, r.job.job.Spec.Priority)
		c.out.logf("task %s %s", p.TaskID, why)
	}
	placedOn := map[string]bool{}
	placed := map[string]bool{}
	for _, pl := range plan.Placements {
		r, ok := c.lookup(pl.TaskID)
		if !ok {
			continue
		}
		var cd candidate
		if i, ok := byID[pl.TaskID]; ok {
			cd = cands[i]
		} else {
			// A victim placed elsewhere in the same plan.
			t := r.task()
			cd = candidate{r: r, z: Sizing{Sizes: t.Sizes, Dist: r.meta().dist, Source: "its sizes before it was preempted"}}
		}
		what := fmt.Sprintf("placed on %s (score %.1f): %s", pl.Node, pl.Score, pl.Why)
		if cd.move != "" {
			what = fmt.Sprintf("moved from %s (%s); %s", cd.from, cd.move, what)
		} else if cd.z.Source != "" {
			what += "; sized by " + cd.z.Source
		}
		if why := preempted[pl.TaskID]; why != "" {
			what = why + "; " + what
		}
		c.placeOn(r, pl.Node, pl.Ports, cd.z, cd.move != "", what, now)
		if cd.move != "" {
			c.out.stats.Moved++
			c.out.stats.add(&c.out.stats.MovedBy, "drain")
		}
		placedOn[pl.Node] = true
		placed[pl.TaskID] = true
	}
	// Waiting tasks: the reason per task; moves that found no room stay.
	for _, u := range plan.Unplaced {
		r, ok := c.lookup(u.TaskID)
		if !ok {
			continue
		}
		why := u.Reason
		if by := preempted[u.TaskID]; by != "" {
			why = strings.TrimPrefix(why, "preempted by ")
			if i := strings.Index(why, "; "); i >= 0 {
				why = why[i+2:]
			}
		}
		if i, ok := byID[u.TaskID]; ok {
			cd := cands[i]
			if cd.move != "" {
				_ = c.sched.Assign(cd.prev, cd.from)
				r.meta().wait = cd.move + "; no other node has room: " + strings.TrimPrefix(why, "no node fits: ")
				continue
			}
			st := batch[inBatch[u.TaskID]]
			m := r.meta()
			if st.Avoid == "" { // an avoided node's back-off ends without a change of capacity
				m.blocked, m.retryAt = true, now.Add(c.cfg.RetryWaiting)
				c.blocked = append(c.blocked, r)
				if u.Why.Nodes > 0 {
					c.blockedRoom = append(c.blockedRoom, st)
				}
			}
			if u.Why.Nodes > 0 {
				why = fmt.Sprintf("%s (needs %.3g cores, %d MiB)", strings.TrimSuffix(why, "."), cd.z.CPURequest, cd.z.MemoryRequest>>20)
				room = append(room, st)
				m.room = &st
			}
		}
		r.meta().wait = why
		c.out.stats.Unschedulable++
	}
	// The queue keeps what still waits, in arrival order, then the victims
	// of preemption that found no other node.
	next := c.stillWaiting(c.queue)
	for _, p := range plan.Preemptions {
		r, ok := c.lookup(p.TaskID)
		if !ok {
			continue
		}
		if _, wasCand := byID[p.TaskID]; !wasCand && !placed[p.TaskID] && c.waiting(r) {
			m := r.meta()
			m.queued = true
			m.seq, c.seq = c.seq, c.seq+1
			next = append(next, r)
		}
	}
	c.queue = next
	return placedOn, room
}

// unblock moves the blocked tasks that may fit now back to the queue, in arrival order: all of them when the epoch
// changed (capacity was added or freed), those whose retry is due
// otherwise. Blocked tasks that no longer wait (stopped) are dropped.
func (c *Controller) unblock(now time.Time) {
	epoch := c.sched.Epoch()
	if len(c.blocked) == 0 {
		c.blockedEpoch = epoch
		return
	}
	if epoch == c.blockedEpoch && now.Before(c.blockedRetry) && !c.blockedDirty {
		return
	}
	all := epoch != c.blockedEpoch
	kept := c.blocked[:0:0]
	back := false
	c.blockedRetry = time.Time{}
	for _, r := range c.blocked {
		m := r.meta()
		switch {
		case !m.queued || c.jobs[r.job.job.ID] != r.job || !c.waiting(r):
			m.queued, m.blocked, m.room = false, false, nil
		case !m.blocked: // enqueued again meanwhile: it is in the queue
		case all || !now.Before(m.retryAt):
			m.blocked, m.room = false, nil
			c.queue = append(c.queue, r)
			back = true
		default:
			kept = append(kept, r)
			if c.blockedRetry.IsZero() || m.retryAt.Before(c.blockedRetry) {
				c.blockedRetry = m.retryAt
			}
		}
	}
	c.blocked, c.blockedEpoch, c.blockedDirty = kept, epoch, false
	c.blockedRoom = nil
	for _, r := range kept {
		if m := r.meta(); m.room != nil {
			c.blockedRoom = append(c.blockedRoom, *m.room)
		}
	}
	if back {
		slices.SortStableFunc(c.queue, func(a, b ref) int { return cmp.Compare(a.meta().seq, b.meta().seq) })
	}
}

// stillWaiting is q without the tasks that no longer wait (placed, stopped)
// and those now in the blocked list.
func (c *Controller) stillWaiting(q []ref) []ref {
	next := q[:0:0]
	for _, r := range q {
		m := r.meta()
		if !m.queued || m.blocked {
			continue
		}
		if c.jobs[r.job.job.ID] == r.job && c.waiting(r) {
			next = append(next, r)
		} else {
			m.queued = false
		}
	}
	return next
}

func (c *Controller) refsOf(cands []candidate) []ref {
	var out []ref
	for _, cd := range cands {
		if cd.move == "" {
			out = append(out, cd.r)
		}
	}
	return out
}

// priorityOf is a task's priority name.
func (c *Controller) priorityOf(id string) string {
	if r, ok := c.lookup(id); ok {
		return r.job.job.Spec.Priority
	}
	return "?"
}

// avoid is the node a task must not go to: the node that evicted it, during
// its back-off and then while that node has no room for it.
func (c *Controller) avoid(r ref, st scheduler.Task, now time.Time) string {
	t := r.task()
	if t.AvoidNode == "" {
		return ""
	}
	ne := c.nodes[t.AvoidNode]
	if ne == nil {
		return ""
	}
	if now.Before(t.AvoidUntil) || ne.usage.MemoryPressure || (ne.usage.MemoryAvailable > 0 && float64(ne.usage.MemoryAvailable) < st.Request[scheduler.Memory]) {
		return t.AvoidNode
	}
	return ""
}

// detach drops a task from its node's index (its assignment there goes),
// without touching the scheduler's State.
func (c *Controller) detach(r ref) {
	t := r.task()
	if ne := c.nodes[t.Node]; ne != nil {
		delete(ne.tasks, r)
	}
	c.markAssign(t.Node, r)
}

// placeOn records a placement the scheduler made (and committed to its
// State): a new attempt of the task (generation + 1) on node with sizes z.
// With move, the copy where the task runs now keeps running (a ghost) until
// the new one runs.
func (c *Controller) placeOn(r ref, node string, ports map[string]int, z Sizing, move bool, what string, now time.Time) {
	t := r.task()
	if move && t.Node != "" && t.Node != node && t.State == Running {
		c.addGhost(r, t.Node)
	}
	c.setNode(r, node)
	t.Sizes = z.Sizes
	t.Ports = maps.Clone(ports)
	m := r.meta()
	m.dist, m.floor, m.wait, m.queued = z.Dist, Sizes{}, "", false
	if z.Source != "" {
		m.sized = z.Source
	}
	t.State, t.Desired = Placed, DesiredRun
	t.Generation++
	t.StartGeneration = t.Generation
	t.PID, t.ExitCode, t.OOMKilled, t.Evicted, t.StartedAt, t.FinishedAt = 0, 0, false, false, time.Time{}, time.Time{}
	t.PlacedAt = now
	c.resetHealth(r)
	t.RestartAt = time.Time{} // a restart that waited is this placement
	if t.AvoidNode != "" && node != t.AvoidNode && !now.Before(t.AvoidUntil) {
		t.AvoidNode, t.AvoidUntil = "", time.Time{}
	}
	withHistory(t, now, what)
	c.markTask(r)
	c.out.stats.Placed++
}

// resize sizes again the running tasks with new usage: the sizing policy
// decides whether their sizes change, the scheduler where the new sizes fit
// (in place, on another node, or nowhere).
//
// It returns the tasks whose new sizes fit no node (as the scheduler sees
// them with those sizes): work that waits for room, like a task that waits
// to be placed, for the autoscaling report.
func (c *Controller) resize(now time.Time) []scheduler.Task {
	if len(c.observed) == 0 {
		return nil
	}
	refs := sortedRefs(c.observed)
	clear(c.observed)
	if c.pred == nil {
		return nil
	}
	type want struct {
		r   ref
		z   Sizing
		why string
	}
	var wants []want
	var reqs []scheduler.ResizeRequest
	for _, r := range refs {
		t := r.task()
		if t.State != Running || t.Desired != DesiredRun || t.Node == "" || r.job.job.StopRequested {
			continue
		}
		m := r.meta()
		rec, err := c.pred.Recommend(key(r), now)
		if err != nil {
			m.decision = "not enough usage measured yet (" + err.Error() + "); running at its starting sizes"
			continue
		}
		target := c.sizing(rec)
		if ne := c.nodes[t.Node]; ne != nil {
			target.Sizes = capAt(target.Sizes, ne.node.CPU, ne.node.Memory)
		}
		cur := Sizing{Sizes: t.Sizes, Dist: m.dist}
		out, ok, why := c.cfg.Sizing.resizeDecision(cur, target, latest(t.PlacedAt, t.ResizedAt), now)
		if !ok {
			m.decision = "kept: " + why
			continue
		}
		st, ok := c.sched.Task(r.id())
		if !ok {
			continue
		}
		st.Request = scheduler.Resources{out.CPURequest, float64(out.MemoryRequest)}
		st.Limit = scheduler.Resources{out.CPULimit, float64(out.MemoryLimit)}
		st.Usage = out.Dist
		if st.Validate() != nil {
			st.Usage = [scheduler.NumResources]scheduler.Dist{}
		}
		wants = append(wants, want{r, out, why})
		reqs = append(reqs, scheduler.ResizeRequest{Task: st, Node: t.Node, Since: t.PlacedAt})
	}
	if len(reqs) == 0 {
		return nil
	}
	res, err := c.sched.Resize(reqs, now, c.moveOpts())
	if err != nil {
		c.out.logf("resize refused: %v", err)
		return nil
	}
	var room []scheduler.Task
	for i, rz := range res {
		w := wants[i]
		t := w.r.task()
		m := w.r.meta()
		switch {
		case rz.InPlace:
			if w.z.CPURequest != t.CPURequest || w.z.CPULimit != t.CPULimit {
				c.out.stats.add(&c.out.stats.ResizedBy, "cpu")
			}
			if w.z.MemoryRequest != t.MemoryRequest || w.z.MemoryLimit != t.MemoryLimit {
				c.out.stats.add(&c.out.stats.ResizedBy, "memory")
			}
			sizesChanged := w.z.Sizes != t.Sizes
			t.Sizes, m.dist, m.wait = w.z.Sizes, w.z.Dist, ""
			m.decision = "resized: " + w.why
			if !sizesChanged {
				continue // only the predicted distribution moved: nothing for the agent
			}
			t.Generation++
			t.ResizedAt, t.UpdatedAt = now, now
			t.Reason = fmt.Sprintf("resized in place (generation %d): %s", t.Generation, w.why)
			c.markTask(w.r)
			c.markAssign(t.Node, w.r)
			c.out.stats.Resized++
		case rz.Moved:
			c.placeOn(w.r, rz.Placement.Node, rz.Placement.Ports, w.z, true, fmt.Sprintf("moved from %s (sizes %s: %s); placed on %s (score %.1f): %s",
				rz.Node, w.why, rz.Reason, rz.Placement.Node, rz.Placement.Score, rz.Placement.Why), now)
			t.ResizedAt = now
			m.decision = "moved: " + w.why
			c.out.stats.Moved++
			c.out.stats.add(&c.out.stats.MovedBy, "resize")
		default:
			m.wait = fmt.Sprintf("recommended %s: %s", w.why, rz.Reason)
			m.decision = "kept: " + rz.Reason
			if rz.NoRoom {
				room = append(room, reqs[i].Task)
			}
		}
	}
	return room
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// consolidate drains under-used nodes whose tasks fit elsewhere: each task
// moves (its copy keeps running until the new one runs).
func (c *Controller) consolidate(now time.Time, placedOn map[string]bool) {
	since := func(id string) time.Time {
		if r, ok := c.lookup(id); ok {
			return r.task().PlacedAt
		}
		return now
	}
	opts := scheduler.ConsolidateOptions{MoveOptions: c.moveOpts(), Below: c.cfg.ConsolidateBelow, Budget: c.cfg.DrainBudget}
	drains, places, err := c.sched.Consolidate(since, placedOn, now, opts)
	if err != nil {
		c.out.logf("consolidation refused: %v", err)
		return
	}
	why := map[string]string{}
	for _, d := range drains {
		for _, id := range d.Tasks {
			why[id] = "consolidation drains " + d.Node + ": " + d.Reason
		}
		c.out.logf("consolidating: draining node %s (%d tasks): %s", d.Node, len(d.Tasks), d.Reason)
	}
	for _, pl := range places {
		r, ok := c.lookup(pl.TaskID)
		if !ok {
			continue
		}
		t := r.task()
		c.placeOn(r, pl.Node, pl.Ports, Sizing{Sizes: t.Sizes, Dist: r.meta().dist}, true,
			fmt.Sprintf("moved from %s (%s); placed on %s (score %.1f): %s", t.Node, why[pl.TaskID], pl.Node, pl.Score, pl.Why), now)
		c.out.stats.Moved++
		c.out.stats.add(&c.out.stats.MovedBy, "consolidation")
	}
}
