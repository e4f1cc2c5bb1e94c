package controller

import (
	"fmt"
	"time"

	"github.com/fathom-scheduler/fathom/scheduler"
)

// Report applies what an agent observed of tasks on its node. A report is
// also proof of life (a node that was down is up again). Reports about
// tasks the node does not hold are ignored (the agent stops them: they are
// not in its set), except from a copy the node keeps (a ghost): a lost task
// found running there is adopted, and a batch task that finished there is
// done (it is not run again). Unchanged reports change nothing.
func (c *Controller) Report(node string, sts []Status, now time.Time) error {
	now = c.advance(now)
	ne := c.nodes[node]
	if ne == nil {
		return fmt.Errorf("%w: node %q is not registered; register first", ErrNodeNotFound, node)
	}
	ne.lastSeen, ne.restored = now, false
	if !ne.node.Up {
		c.nodeUp(ne)
	}
	for _, st := range sts {
		r, ok := c.lookup(st.TaskID)
		if !ok {
			continue
		}
		t := r.task()
		switch {
		case t.Node == node && (t.State == Placed || t.State == Running):
			if st.Generation != 0 && st.Generation < t.StartGeneration && st.State != ReportedRunning {
				continue // about a run before the current one
			}
			c.applyReport(r, st, node, now)
		case c.ghosts[st.TaskID][node] != nil:
			c.ghostReport(r, c.ghosts[st.TaskID][node], st, now)
		}
	}
	return nil
}

// applyReport applies one report about a task's current placement.
//
// A task whose process ended on its own — a service task with any exit
// code, a batch or cron task with a non-zero one — goes to its restart
// policy (restart.go): it stays placed on its node and is started again
// after the delay, or it fails once the policy's attempts are used up. An
// OOM kill raises the memory limit and restarts the task without counting
// against the policy. A rejection fails the task at once.
func (c *Controller) applyReport(r ref, st Status, node string, now time.Time) {
	t := r.task()
	prev := t.clone()
	e := r.job
	service := e.job.Spec.Type == TypeService
	stopping := t.Desired == DesiredStop || e.job.StopRequested
	ended := st.State == ReportedFailed || st.State == ReportedSucceeded
	if ended && !t.RestartAt.IsZero() {
		return // this exit was decided on: the restart waits for its delay
	}
	if !stopping && st.State == ReportedFailed && st.Evicted {
		// The agent evicted it under memory pressure (it says FAILED,
		// evicted): not the task's failure, and not a restart attempt.
		c.stoppedUnasked(r, st, node, now)
		return
	}
	msg := st.Reason
	switch st.State {
	case ReportedRunning:
		t.State = Running
		if msg == "" {
			msg = "running on " + node
		}
	case ReportedSucceeded:
		t.State = Succeeded
		if msg == "" {
			msg = "exited 0 on " + node
		}
	case ReportedFailed:
		t.State = Failed
		if msg == "" {
			msg = fmt.Sprintf("exited %d on %s", st.ExitCode, node)
			if st.OOMKilled {
				msg = "OOM-killed on " + node
			}
		}
	case ReportedRejected:
		t.State = Failed
		msg = "rejected by node " + node + ": " + msg
	case ReportedStopped:
		if stopping {
			t.State = Stopped
			if msg == "" {
				msg = "stopped on " + node
			}
		} else {
			c.stoppedUnasked(r, st, node, now)
			return
		}
	default:
		return
	}
	t.PID, t.ExitCode, t.OOMKilled, t.Evicted, t.Restarts = st.PID, st.ExitCode, st.OOMKilled, st.Evicted, st.Restarts
	if !st.StartedAt.IsZero() {
		t.StartedAt = st.StartedAt
	}
	if !st.FinishedAt.IsZero() {
		t.FinishedAt = st.FinishedAt
	} else if t.State.Terminal() && t.FinishedAt.IsZero() {
		t.FinishedAt = now
	}
	if !stopping && st.OOMKilled && (st.State == ReportedFailed || st.State == ReportedSucceeded) {
		c.oomKilled(r, prev, node, now)
		return
	}
	if !stopping && (st.State == ReportedFailed || (service && st.State == ReportedSucceeded)) {
		// Ended on its own: the restart policy decides (restart.go).
		*t = prev
		c.exitedOnItsOwn(r, st, node, now)
		return
	}
	health := c.noteHealth(r, st, prev.State == Running && prev.PID == t.PID, now)
	if t.State == prev.State && t.PID == prev.PID && t.Restarts == prev.Restarts && t.ExitCode == prev.ExitCode && t.OOMKilled == prev.OOMKilled {
		if health {
			t.UpdatedAt = now
			c.markTask(r)
		}
		return
	}
	if t.State != prev.State {
		withHistory(t, now, msg)
	} else {
		t.UpdatedAt, t.Reason = now, msg
	}
	c.markTask(r)
	switch {
	case t.State == Running:
		c.retireGhosts(r, "the task runs on "+node)
	case t.State.Terminal():
		c.unplace(r)
		c.retireGhosts(r, "the task ended")
		c.maybeFinished(e)
	}
}

// oomKilled raises an OOM-killed task's memory and restarts it: in place
// when the node passes the scheduler's filters with the new sizes (Σ prod
// limits included), elsewhere when another node does, or it waits for room.
func (c *Controller) oomKilled(r ref, prev Task, node string, now time.Time) {
	t := r.task()
	at := float64(prev.MemoryLimit)
	if at <= 0 {
		at = float64(prev.MemoryRequest)
	}
	next := c.oomRaise(r, at, now)
	z := Sizing{Sizes: t.Sizes, Dist: r.meta().dist}
	z.MemoryLimit = next
	z.MemoryRequest = max(z.MemoryRequest, min(next, roundMiB(int64(float64(z.MemoryRequest)*1.2))))
	r.meta().floor = atLeast(r.meta().floor, z.Sizes)
	c.out.stats.Evictions = append(c.out.stats.Evictions, Eviction{r.job.job.Spec.Namespace, r.job.job.Spec.Name, "oom"})
	what := fmt.Sprintf("OOM-killed on %s at its %d MiB limit; memory limit raised to %d MiB", node, prev.MemoryLimit>>20, next>>20)
	c.restart(r, z, node, what, now)
}

// restart starts a task that is not running again with sizes z: on node
// when it passes the filters there, otherwise placed like a new task (it
// waits in the queue with the new sizes; its floor keeps them).
func (c *Controller) restart(r ref, z Sizing, node, what string, now time.Time) {
	t := r.task()
	if c.cfg.Sizing.PackOnLimit {
		z = packOnLimit(z) // a raised limit raises the request with it
	}
	c.sched.Remove(r.id())
	st := c.schedTask(r, z.Sizes, z.Dist)
	if why, err := c.sched.Fits(st, node, c.placeOpts()); err == nil && why == scheduler.ReasonNone && c.nodes[node] != nil && c.nodes[node].node.Up {
		_ = c.sched.Assign(st, node)
		t.Sizes = z.Sizes
		r.meta().dist = z.Dist
		t.State = Placed
		t.Generation++
		t.StartGeneration = t.Generation
		t.FinishedAt = time.Time{}
		t.ResizedAt = now
		withHistory(t, now, fmt.Sprintf("%s; restarting on %s (generation %d)", what, node, t.Generation))
		c.markTask(r)
		c.markAssign(node, r)
		return
	} else if err == nil && why != scheduler.ReasonNone {
		what += fmt.Sprintf("; %s does not pass the %s check with the new sizes", node, why)
	}
	c.unplace(r)
	t.Sizes = z.Sizes
	t.State = Pending
	t.Node = ""
	withHistory(t, now, what+"; placing it again")
	c.markTask(r)
	c.enqueue(r)
}

// stoppedUnasked handles a task that stopped without a stop request: evicted
// under memory pressure, or the agent lost its process. It is placed again;
// an eviction raises its learned request to what it used and keeps it off
// the node that evicted it until that node has room (with a back-off that
// doubles for every further eviction).
func (c *Controller) stoppedUnasked(r ref, st Status, node string, now time.Time) {
	t := r.task()
	what := "stopped on " + node + " without a stop request"
	if st.Evicted {
		used := float64(st.MemoryUsed)
		if used <= 0 {
			used = float64(max(t.MemoryRequest, t.MemoryLimit))
		}
		next := c.oomRaise(r, used, now)
		z := t.Sizes
		z.MemoryRequest = max(z.MemoryRequest, roundMiB(int64(used)))
		if z.MemoryLimit > 0 {
			z.MemoryLimit = max(z.MemoryLimit, next, z.MemoryRequest)
		}
		r.meta().floor = atLeast(r.meta().floor, z)
		t.Sizes = z
		t.Evictions++
		backoff := c.cfg.Sizing.EvictionBackoff << min(t.Evictions-1, 4)
		t.AvoidNode, t.AvoidUntil = node, now.Add(backoff)
		c.out.stats.Evictions = append(c.out.stats.Evictions, Eviction{r.job.job.Spec.Namespace, r.job.job.Spec.Name, "memory_pressure"})
		what = fmt.Sprintf("evicted from %s under memory pressure using %d MiB; memory request raised to %d MiB; kept off %s for at least %s and until it has room",
			node, int64(used)>>20, z.MemoryRequest>>20, node, backoff)
	}
	if st.Reason != "" {
		what += ": " + st.Reason
	}
	c.unplace(r)
	t.State = Pending
	t.Node = ""
	t.PID = 0
	t.Evicted = st.Evicted
	withHistory(t, now, what+"; placing it again")
	c.markTask(r)
	c.enqueue(r)
}

// ghostReport applies a report from a node about the copy of a task it
// keeps (the task was lost or moved).
func (c *Controller) ghostReport(r ref, g *Ghost, st Status, now time.Time) {
	t := r.task()
	node := g.Node
	switch st.State {
	case ReportedRunning:
		if t.State != Lost || (st.Generation != 0 && st.Generation != g.Generation) {
			return // its replacement is placed: keep serving until it runs
		}
		// The node is back with the lost task still running: adopt it
		// instead of starting a second copy.
		t.State = Running
		t.Generation, t.StartGeneration, t.Sizes = g.Generation, g.Generation, g.Sizes
		t.PID, t.Restarts = st.PID, st.Restarts
		if !st.StartedAt.IsZero() {
			t.StartedAt = st.StartedAt
		}
		c.setNode(r, node)
		c.dropGhost(r, node)
		_ = c.sched.Assign(c.schedTask(r, t.Sizes, r.meta().dist), node)
		withHistory(t, now, "node "+node+" is back with the task still running: adopted (no second copy started)")
		c.markTask(r)
		c.out.logf("task %s adopted on %s", r.id(), node)
		c.retireGhosts(r, "the task runs on "+node)
	case ReportedSucceeded:
		if r.job.job.Spec.Type == TypeService || t.State.Terminal() || t.State == Running {
			c.dropGhost(r, node)
			return
		}
		// A batch task that finished on a node cut off from the control
		// plane is done: it is not run again.
		if t.Node != "" {
			c.unplace(r)
		}
		t.State, t.Node = Succeeded, ""
		t.ExitCode, t.PID = st.ExitCode, 0
		t.FinishedAt = st.FinishedAt
		if t.FinishedAt.IsZero() {
			t.FinishedAt = now
		}
		withHistory(t, now, "finished (exit 0) on "+node+", which had kept running it while it was cut off; not run again")
		c.markTask(r)
		c.dropGhost(r, node)
		c.retireGhosts(r, "the task ended")
		c.maybeFinished(r.job)
	default:
		c.dropGhost(r, node) // the copy is gone
	}
}

// Observed says that new usage of these tasks was fed to the predictor:
// they are sized again at the next Tick.
func (c *Controller) Observed(taskIDs []string) {
	for _, id := range taskIDs {
		if r, ok := c.lookup(id); ok {
			c.observed[r] = struct{}{}
		}
	}
}
