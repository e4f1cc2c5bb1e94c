package controller

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
)

// Cron jobs: nothing is placed until the schedule fires. Each firing starts
// a run: every task goes (back) to pending and is placed like any other
// task, keeping its id. A firing while the previous run still has active
// tasks is skipped (no overlapping runs). A cron job never finishes by
// itself; it ends when stopped.

// nextRun is when a cron job's next run is due (zero for other jobs or a
// schedule that does not parse, which validation prevents).
func nextRun(j *Job) time.Time {
	if j.Spec.Type != TypeCron {
		return time.Time{}
	}
	sched, err := cron.ParseStandard(j.Spec.Schedule)
	if err != nil {
		return time.Time{}
	}
	from := j.CreatedAt
	if !j.LastRunAt.IsZero() {
		from = j.LastRunAt
	}
	return sched.Next(from)
}

// NextRun is when a cron job's next run is due (zero for other jobs).
func NextRun(j *Job) time.Time { return nextRun(j) }

// startDueRuns starts a run of every cron job whose schedule fired by now.
func (c *Controller) startDueRuns(now time.Time) {
	for _, e := range sortJobs(slices.Collect(maps.Values(c.crons))) {
		j := &e.job
		if j.StopRequested {
			continue
		}
		next := nextRun(j)
		if next.IsZero() || next.After(now) {
			continue
		}
		busy := false
		if !j.LastRunAt.IsZero() {
			for _, t := range e.tasks {
				if !t.State.Terminal() {
					busy = true
					break
				}
			}
		}
		j.LastRunAt = now
		c.markJob(e)
		if busy {
			// Skip this firing; the next one is computed from now.
			c.out.logf("cron job %s: previous run still active; skipping the run due at %s", j.ID, next.UTC().Format(time.RFC3339))
			continue
		}
		j.Runs++
		for i := range e.tasks {
			r := ref{e, int32(i)}
			t := r.task()
			t.State, t.Node, t.Desired = Pending, "", DesiredRun
			if t.Version != j.Version {
				t.Version, t.VersionAt = j.Version, now
			}
			c.resetHealth(r)
			t.PID, t.ExitCode, t.OOMKilled, t.Evicted, t.StartedAt, t.FinishedAt = 0, 0, false, false, time.Time{}, time.Time{}
			t.RestartAttempts, t.RestartWindow, t.RestartAt = 0, time.Time{}, time.Time{} // each run has the whole restart policy
			withHistory(t, now, fmt.Sprintf("cron run %d started by schedule %q", j.Runs, j.Spec.Schedule))
			c.markTask(r)
			c.enqueue(r)
		}
	}
}
