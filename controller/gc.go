package controller

import (
	"cmp"
	"slices"
	"time"
)

// Job garbage collection: finished jobs are deleted with their tasks once
// they are older than Config.JobRetention, and the longest finished first
// whenever more than Config.MaxFinishedJobs are kept (Nomad's job GC). The
// predictor's history is keyed by job name, not id, so a job submitted
// again under the same name still starts from what the deleted one taught.
const (
	// gcInterval is the least time between two collection passes.
	gcInterval = time.Minute
	// gcMinAge: a job is kept at least this long after it finished, so
	// the Ready that ended its last task (assignment removals, watch
	// events) goes out before the job disappears.
	gcMinAge = time.Minute
	// gcPerRound bounds the deletions of one round (each is a transaction
	// of its own in etcd); the rest go in the following rounds.
	gcPerRound = 200
)

// finishedAt reports whether job e has finished and when: every task ended
// with no copy kept anywhere, and its name released (a cron job only ever
// finishes by being stopped). An ended task is off its node's assignments.
func (c *Controller) finishedAt(e *jobEntry) (time.Time, bool) {
	if e.nameHeld || (e.isCron() && !e.job.StopRequested) {
		return time.Time{}, false
	}
	at := e.job.StoppedAt
	for i, t := range e.tasks {
		if !t.State.Terminal() || len(c.ghosts[TaskID(e.job.ID, int32(i))]) > 0 {
			return time.Time{}, false
		}
		at = latest(at, t.FinishedAt)
	}
	if at.IsZero() {
		at = e.job.CreatedAt
	}
	return at, true
}

// collect deletes the finished jobs past their retention or beyond the
// cap, at most gcPerRound per call; it runs at most every gcInterval
// unless the previous pass left work.
func (c *Controller) collect(now time.Time) {
	if now.Before(c.gcNext) {
		return
	}
	c.gcNext = now.Add(gcInterval)
	type done struct {
		e  *jobEntry
		at time.Time
	}
	var finished []done
	for _, e := range c.jobs {
		if at, ok := c.finishedAt(e); ok {
			finished = append(finished, done{e, at})
		}
	}
	slices.SortFunc(finished, func(a, b done) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.e.job.ID, b.e.job.ID))
	})
	over := len(finished) - c.cfg.MaxFinishedJobs
	deleted := 0
	for i, f := range finished {
		old := c.cfg.JobRetention >= 0 && !now.Before(f.at.Add(c.cfg.JobRetention))
		if !old && i >= over {
			break // sorted by finish: the rest are younger and within the cap
		}
		if now.Before(f.at.Add(gcMinAge)) {
			break
		}
		if deleted == gcPerRound {
			c.gcNext = now // more to do: the next round goes on
			break
		}
		c.deleteJob(f.e)
		deleted++
	}
	if deleted > 0 {
		c.out.stats.JobsDeleted += deleted
		c.out.logf("deleted %d finished job(s): past their retention of %s or beyond %d finished jobs kept", deleted, c.cfg.JobRetention, c.cfg.MaxFinishedJobs)
	}
}

// deleteJob forgets a finished job and its tasks; Ready's DeletedJobs tells
// the caller to delete their records.
func (c *Controller) deleteJob(e *jobEntry) {
	delete(c.jobs, e.job.ID)
	delete(c.crons, e.job.ID)
	delete(c.out.jobs, e)
	for r := range c.observed {
		if r.job == e {
			delete(c.observed, r)
		}
	}
	c.out.deleted = append(c.out.deleted, e.job.clone())
}
