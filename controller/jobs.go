package controller

import (
	"fmt"
	"time"
)

// Submit adds a job. The caller validated and normalized the spec and chose
// the id (ids are random, and the controller uses no randomness). It returns
// ErrNameTaken while an unfinished job holds the name in the namespace.
// The job's tasks wait for a node from the next Tick (cron jobs: from their
// first scheduled run).
func (c *Controller) Submit(j Job, now time.Time) error {
	now = c.advance(now)
	if j.ID == "" || j.Spec.Name == "" || j.Spec.Namespace == "" {
		return fmt.Errorf("%w: a job needs an id, a name and a namespace", ErrInvalid)
	}
	if j.Spec.Replicas < 0 {
		return fmt.Errorf("%w: replicas %d must be ≥ 0", ErrInvalid, j.Spec.Replicas)
	}
	if _, ok := c.jobs[j.ID]; ok {
		return fmt.Errorf("%w: %s", ErrIDTaken, j.ID)
	}
	key := j.Spec.Namespace + "/" + j.Spec.Name
	if _, ok := c.names[key]; ok {
		return fmt.Errorf("%w: job %q already exists in namespace %q and is not finished; stop it first (fathom job stop) or choose another name",
			ErrNameTaken, j.Spec.Name, j.Spec.Namespace)
	}
	j = j.clone()
	if j.CreatedAt.IsZero() {
		j.CreatedAt = now
	}
	j.StopRequested, j.StoppedAt, j.LastRunAt, j.Runs = false, time.Time{}, time.Time{}, 0
	j.Version, j.StableVersion, j.Deployment, j.Previous = 1, 1, nil, nil
	j.VersionAt, j.VersionReason = now, "submitted"
	e := newJobEntry(j)
	e.nameHeld = true
	c.addJob(e)
	c.names[key] = j.ID
	c.out.names = append(c.out.names, NameChange{Namespace: j.Spec.Namespace, Name: j.Spec.Name, JobID: j.ID})
	c.out.created = append(c.out.created, j.ID)
	c.markJob(e)
	c.emitVersion(e)
	for i := range e.tasks {
		c.resetHealth(ref{e, int32(i)})
	}
	if e.isCron() {
		for i := range e.tasks {
			e.tasks[i].Reason = "waiting for the schedule: first run at " + nextRun(&e.job).UTC().Format(time.RFC3339)
		}
	}
	for i := range e.tasks {
		if r := (ref{e, int32(i)}); c.waiting(r) {
			c.enqueue(r)
		}
	}
	return nil
}

// Stop stops every task of a job: running ones are told to stop (they
// become Stopped when their agent confirms), the others stop at once. The
// job's name is free again. Idempotent.
func (c *Controller) Stop(jobID string, now time.Time) error {
	now = c.advance(now)
	e := c.jobs[jobID]
	if e == nil {
		return fmt.Errorf("%w: job %q; list jobs with 'fathom job list'", ErrJobNotFound, jobID)
	}
	if e.job.StopRequested {
		return nil
	}
	e.job.StopRequested = true
	e.job.StoppedAt = now
	c.markJob(e)
	for i := range e.tasks {
		r := ref{e, int32(i)}
		if !r.task().State.Terminal() {
			c.stopTask(r, now, "stop requested", "job stopped")
		}
	}
	c.releaseName(e)
	return nil
}

// releaseName gives the job's name back.
func (c *Controller) releaseName(e *jobEntry) {
	if !e.nameHeld {
		return
	}
	e.nameHeld = false
	key := e.job.Spec.Namespace + "/" + e.job.Spec.Name
	if c.names[key] == e.job.ID {
		delete(c.names, key)
		c.out.names = append(c.out.names, NameChange{Namespace: e.job.Spec.Namespace, Name: e.job.Spec.Name})
	}
}

// maybeFinished releases the name of a job whose every task has ended
// (cron jobs end only when stopped; a service of zero replicas never ends).
func (c *Controller) maybeFinished(e *jobEntry) {
	if !e.nameHeld || e.isCron() {
		return
	}
	// Tasks past the replicas are being scaled down.
	tasks := e.tasks[:min(len(e.tasks), int(e.job.Spec.Replicas))]
	if len(tasks) == 0 && e.job.Spec.Type == TypeService {
		return
	}
	for _, t := range tasks {
		if !t.State.Terminal() {
			return
		}
	}
	c.releaseName(e)
}

// jobState derives a job's state and its task counts by state name.
func (c *Controller) jobState(e *jobEntry) (JobState, map[string]int32) {
	counts := map[string]int32{}
	var active, failed, done int
	for _, t := range e.tasks {
		counts[t.State.String()]++
		switch t.State {
		case Placed, Running, Lost:
			active++
		case Failed:
			failed++
			done++
		case Succeeded, Stopped:
			done++
		}
	}
	switch {
	case e.job.StopRequested:
		return JobStopped, counts
	case e.isCron() && active == 0:
		return JobPending, counts // between runs a cron job waits for its schedule
	case e.job.Spec.Type == TypeBatch && failed > 0:
		// A batch task that failed for good (its restart policy used up, or
		// rejected) fails the job; its other tasks run to their end.
		return JobFailed, counts
	case len(e.tasks) > 0 && done == len(e.tasks) && failed > 0:
		// A service whose every replica failed (or ended, at least one failed).
		return JobFailed, counts
	case len(e.tasks) > 0 && done == len(e.tasks):
		return JobSucceeded, counts
	case active > 0:
		return JobRunning, counts
	}
	return JobPending, counts
}
