package controller

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Rollouts: how a service moves from one version of its spec to the next.
//
// Every task runs one version of its job's spec (Task.Version). When an
// update changes what a service's tasks run, the job gets a Deployment and
// each round (Tick) the rollout below replaces old-version tasks in place —
// the task keeps its id and node, its generation bumps and the agent
// restarts it with the new spec (or, when the new sizes no longer fit
// there, it is placed again) — at most MaxParallel at a time. A replaced
// task counts once it has been healthy for MinHealthyTime: its health check
// passing (the agent runs it), or, without a check, running. A replaced
// task that does not count within HealthyDeadline of taking the new
// version, or that fails outright (rejected by its node), fails the
// rollout; with AutoRevert the job is then updated back to its stable
// version (the last whose rollout succeeded) as a new version, rolled out
// the same way (a revert is never reverted again). With Canary N, the first
// N tasks are replaced and the rollout pauses once they count, until
// Promote. Since at most MaxParallel tasks are taken down at once and a
// task that counts is taken down only while fewer than MaxParallel tasks of
// the job do not count, the number of tasks that count never falls below
// replicas − MaxParallel because of a rollout (TestRolloutKeepsHealthy).
//
// Batch and cron jobs have no rollout: tasks that have not started take
// the new version at once, running ones finish on theirs, and cron runs
// start on the version current when they fire.

// UpdatePolicy is a service's `update:`: how a new version replaces the
// running one.
type UpdatePolicy struct {
	MaxParallel     int32
	MinHealthyTime  time.Duration
	HealthyDeadline time.Duration
	AutoRevert      bool
	Canary          int32
}

// DefaultUpdate is the update policy of a service whose spec gives none
// (Nomad's defaults).
var DefaultUpdate = UpdatePolicy{MaxParallel: 1, MinHealthyTime: 10 * time.Second, HealthyDeadline: 5 * time.Minute}

// policy is the spec's update policy with defaults filled.
func (s *Spec) policy() UpdatePolicy {
	p := DefaultUpdate
	if s.Update != nil {
		p = *s.Update
	}
	if p.MaxParallel <= 0 {
		p.MaxParallel = 1
	}
	if p.HealthyDeadline <= 0 {
		p.HealthyDeadline = DefaultUpdate.HealthyDeadline
	}
	return p
}

// HealthCheck is a task's `health_check:`, run by the agent while the task
// runs: a command (exit 0 = healthy), an HTTP GET (2xx/3xx) or a TCP
// connect, every Interval, each within Timeout.
type HealthCheck struct {
	Command           []string
	HTTPPort          int32
	HTTPPath          string
	TCPPort           int32
	Interval, Timeout time.Duration
}

// Health is a health check's last result.
type Health uint8

// Health values.
const (
	HealthNone    Health = iota // the task has no health check
	HealthUnknown               // not checked yet in this run
	Healthy
	Unhealthy
)

func (h Health) String() string {
	switch h {
	case HealthUnknown:
		return "unknown"
	case Healthy:
		return "healthy"
	case Unhealthy:
		return "unhealthy"
	}
	return ""
}

// Deployment statuses.
const (
	DeployRunning    = "running"
	DeployPaused     = "paused" // canaries wait for Promote
	DeploySuccessful = "successful"
	DeployFailed     = "failed"
	DeployCancelled  = "cancelled" // a newer version replaced it, or the job was stopped
)

// Deployment is a job's rollout of one version.
type Deployment struct {
	Version, FromVersion int64
	Status               string
	Message              string
	StartedAt, UpdatedAt time.Time
	Promoted             bool
	// Revert: a rollback; it is never reverted itself.
	Revert bool
	// Placed tasks run the new version; Healthy of them count; Desired is
	// the job's replicas.
	Placed, Healthy, Desired int32
}

// Active reports whether the rollout is under way (running or paused).
func (d *Deployment) Active() bool {
	return d != nil && (d.Status == DeployRunning || d.Status == DeployPaused)
}

// VersionedSpec is the spec of one version of a job.
type VersionedSpec struct {
	Version int64
	Spec    Spec
}

// JobVersion is one version of a job's spec, for the caller to keep as the
// job's history (Ready.Versions; put again when its rollout's status
// changes).
type JobVersion struct {
	JobID         string
	Version       int64
	Spec          Spec
	SubmittedAt   time.Time
	Reason        string
	Status        string
	StatusMessage string
}

// specOf is the spec task r runs (its version's).
func (c *Controller) specOf(r ref) *Spec {
	e := r.job
	v := r.task().Version
	if v == 0 || v == e.job.Version {
		return &e.job.Spec
	}
	for i := range e.job.Previous {
		if e.job.Previous[i].Version == v {
			return &e.job.Previous[i].Spec
		}
	}
	return &e.job.Spec
}

// versionSpec is the spec of version v of the job (false: not kept).
func versionSpec(j *Job, v int64) (Spec, bool) {
	if v == j.Version {
		return j.Spec, true
	}
	for _, p := range j.Previous {
		if p.Version == v {
			return p.Spec, true
		}
	}
	return Spec{}, false
}

// resetHealth starts a task's health over (a new run).
func (c *Controller) resetHealth(r ref) {
	t := r.task()
	t.Health, t.HealthMessage, t.HealthySince = HealthNone, "", time.Time{}
	if c.specOf(r).HealthCheck != nil {
		t.Health = HealthUnknown
	}
}

// noteHealth applies a report's health to the task's current run; it
// reports whether anything changed.
func (c *Controller) noteHealth(r ref, st Status, wasRunning bool, now time.Time) bool {
	t := r.task()
	h, msg, since := t.Health, t.HealthMessage, t.HealthySince
	switch {
	case t.State != Running:
		since = time.Time{}
		if c.specOf(r).HealthCheck != nil {
			h, msg = HealthUnknown, ""
		}
	case c.specOf(r).HealthCheck == nil:
		h, msg = HealthNone, ""
		if since.IsZero() || !wasRunning {
			since = now
		}
	default:
		h, msg = st.Health, st.HealthMessage
		if h == HealthNone {
			h = HealthUnknown // an agent that does not run checks
		}
		if h != Healthy {
			since = time.Time{}
		} else if since.IsZero() {
			since = now
		}
	}
	if h == t.Health && msg == t.HealthMessage && since.Equal(t.HealthySince) {
		return false
	}
	t.Health, t.HealthMessage, t.HealthySince = h, msg, since
	return true
}

// counts reports whether a task counts as healthy for a rollout at now.
func counts(t *Task, p UpdatePolicy, now time.Time) bool {
	return t.State == Running && t.Desired == DesiredRun && !t.HealthySince.IsZero() && now.Sub(t.HealthySince) >= p.MinHealthyTime
}

// rollouts advances every active rollout (Tick, before placement, so that
// replaced tasks that must move are placed in the same round).
func (c *Controller) rollouts(now time.Time) {
	if len(c.deploying) == 0 {
		return
	}
	for _, e := range sortJobs(slices.Collect(mapValues(c.deploying))) {
		c.rollout(e, now)
	}
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// rollout is one step of a job's rollout.
func (c *Controller) rollout(e *jobEntry, now time.Time) {
	d := e.job.Deployment
	if c.jobs[e.job.ID] != e || !d.Active() {
		delete(c.deploying, e.job.ID)
		return
	}
	if e.job.StopRequested {
		c.endRollout(e, DeployCancelled, "the job was stopped", now)
		return
	}
	before := *d
	p := e.job.Spec.policy()
	target := e.job.Version
	n := min(int(e.job.Spec.Replicas), len(e.tasks))
	var healthy, inflight int32
	var olds []ref
	var failed string
	for i := range n {
		r := ref{e, int32(i)}
		t := r.task()
		if t.Version != target {
			olds = append(olds, r)
			continue
		}
		switch {
		case counts(t, p, now):
			healthy++
		case t.State == Failed:
			failed = fmt.Sprintf("task %s failed: %s", r.id(), t.Reason)
		default:
			inflight++
			// Late: not up by the deadline (a task healthy by then has
			// min_healthy_time more to count).
			due := t.VersionAt.Add(p.HealthyDeadline)
			if failed == "" && now.After(due) && (!up(t) || t.HealthySince.After(due)) {
				failed = fmt.Sprintf("task %s was not healthy within the healthy deadline of %s (%s)", r.id(), p.HealthyDeadline, c.unhealthyWhy(r))
			}
		}
	}
	d.Placed, d.Healthy, d.Desired = healthy+inflight, healthy, e.job.Spec.Replicas
	if failed != "" {
		c.failRollout(e, failed, now)
		return
	}
	if len(olds) == 0 && inflight == 0 {
		c.endRollout(e, DeploySuccessful, fmt.Sprintf("all %d tasks run version %d and are healthy", n, target), now)
		return
	}
	// An old task that is up (running, and healthy if it has a check) is
	// taken down only while fewer than MaxParallel tasks of the job are
	// unavailable (not up, or new and not yet counting); old tasks that
	// are not up are replaced first, since that takes nothing down. With
	// canaries, only Canary tasks run the new version until Promote.
	unavailable := int32(n) - healthy
	for _, r := range olds {
		if up(r.task()) {
			unavailable--
		}
	}
	canaries := p.Canary > 0 && !d.Promoted && int(p.Canary) < n
	slices.SortStableFunc(olds, func(a, b ref) int {
		return cmp.Or(btoi(up(a.task()))-btoi(up(b.task())), btoi(live(a.task()))-btoi(live(b.task())))
	})
	for _, r := range olds {
		if canaries && d.Placed >= p.Canary {
			break
		}
		if up(r.task()) {
			if unavailable >= p.MaxParallel {
				break
			}
			unavailable++
		}
		c.replace(r, now)
		d.Placed++
	}
	switch {
	case canaries && d.Placed >= p.Canary && healthy >= p.Canary:
		d.Status = DeployPaused
		d.Message = fmt.Sprintf("%d canaries of version %d are healthy; continue with: fathom job promote %s", healthy, target, e.job.Spec.Name)
	case canaries:
		d.Message = fmt.Sprintf("canaries: %d of %d on version %d, %d healthy", d.Placed, p.Canary, target, healthy)
	default:
		d.Message = fmt.Sprintf("%d of %d tasks on version %d, %d healthy (at most %d replaced at a time)", d.Placed, n, target, healthy, p.MaxParallel)
	}
	if *d != before {
		if d.Status != before.Status {
			c.emitVersion(e)
		}
		d.UpdatedAt = now
		c.markJob(e)
	}
}

// up reports whether a task serves: running, and healthy if it has a check.
func up(t *Task) bool {
	return t.State == Running && t.Desired == DesiredRun && !t.HealthySince.IsZero()
}

// live reports whether a task has (or is about to have) a process.
func live(t *Task) bool { return t.Node != "" && (t.State == Placed || t.State == Running) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// unhealthyWhy says why a task does not count.
func (c *Controller) unhealthyWhy(r ref) string {
	t := r.task()
	switch {
	case t.State != Running:
		return "it is " + t.State.String() + ": " + t.Reason
	case t.Health == Unhealthy && t.HealthMessage != "":
		return "health check failing: " + t.HealthMessage
	case t.Health == Unhealthy:
		return "health check failing"
	case t.Health == HealthUnknown:
		return "health check not passed yet"
	}
	return "not healthy for long enough"
}

// replace moves task r to the job's current version: in place when it has
// a process (a new generation; the agent restarts it with the new spec),
// else it waits for a node with the new spec.
func (c *Controller) replace(r ref, now time.Time) {
	t := r.task()
	e := r.job
	from := c.specOf(r)
	sameHints := from.CPUHint == e.job.Spec.CPUHint && from.MemoryHint == e.job.Spec.MemoryHint
	what := fmt.Sprintf("rolling update from version %d to %d", t.Version, e.job.Version)
	t.Version, t.VersionAt = e.job.Version, now
	// A new version starts with the whole restart policy; a restart that
	// waited is this replacement.
	t.RestartAttempts, t.RestartWindow, t.RestartAt = 0, time.Time{}, time.Time{}
	c.resetHealth(r)
	switch {
	case live(t):
		z := Sizing{Sizes: t.Sizes, Dist: r.meta().dist}
		if !sameHints || t.CPURequest == 0 {
			z = c.startSizes(r, now)
		}
		c.restart(r, z, t.Node, what, now)
	case t.State.Terminal():
		t.State, t.Desired, t.Node = Pending, DesiredRun, ""
		withHistory(t, now, what+"; waiting for a node")
		c.markTask(r)
		c.enqueue(r)
	default: // pending or lost: placed with the new spec
		withHistory(t, now, what+"; waiting for a node")
		c.markTask(r)
	}
}

// failRollout ends a rollout as failed and, with auto_revert, rolls back to
// the stable version.
func (c *Controller) failRollout(e *jobEntry, why string, now time.Time) {
	d := e.job.Deployment
	c.endRollout(e, DeployFailed, why, now)
	p := e.job.Spec.policy()
	stable := e.job.StableVersion
	if !p.AutoRevert || d.Revert || stable == 0 || stable == e.job.Version {
		return
	}
	spec, ok := versionSpec(&e.job, stable)
	if !ok {
		c.out.logf("job %s: cannot roll back: version %d is not kept", e.job.ID, stable)
		return
	}
	reason := fmt.Sprintf("auto-revert: the rollout of version %d failed (%s); rolling back to version %d", e.job.Version, why, stable)
	if _, _, err := c.update(e, spec, reason, true, now); err != nil {
		c.out.logf("job %s: rollback refused: %v", e.job.ID, err)
	}
}

// endRollout ends the job's rollout with status.
func (c *Controller) endRollout(e *jobEntry, status, msg string, now time.Time) {
	d := e.job.Deployment
	d.Status, d.Message, d.UpdatedAt = status, msg, now
	if status == DeploySuccessful {
		e.job.StableVersion = e.job.Version
	}
	delete(c.deploying, e.job.ID)
	c.prunePrevious(e)
	c.emitVersion(e)
	c.markJob(e)
	c.out.logf("job %s: rollout of version %d %s: %s", e.job.ID, d.Version, status, msg)
}

// emitVersion records the current version (its spec and rollout status) for
// the caller to keep.
func (c *Controller) emitVersion(e *jobEntry) {
	j := &e.job
	v := JobVersion{JobID: j.ID, Version: j.Version, Spec: j.Spec.clone(), SubmittedAt: j.VersionAt, Reason: j.VersionReason}
	if d := j.Deployment; d != nil && d.Version == j.Version {
		v.Status, v.StatusMessage = d.Status, d.Message
	}
	c.out.versions[versionKey{j.ID, j.Version}] = v
}

type versionKey struct {
	job     string
	version int64
}

// prunePrevious keeps in Previous only the versions tasks still run and the
// stable one.
func (c *Controller) prunePrevious(e *jobEntry) {
	if len(e.job.Previous) == 0 {
		return
	}
	used := map[int64]bool{e.job.StableVersion: true}
	for _, t := range e.tasks {
		used[t.Version] = true
	}
	kept := e.job.Previous[:0]
	for _, p := range e.job.Previous {
		if used[p.Version] && p.Version != e.job.Version {
			kept = append(kept, p)
		}
	}
	if len(kept) != len(e.job.Previous) {
		clear(e.job.Previous[len(kept):])
		e.job.Previous = kept
		c.markJob(e)
	}
}

// Promote lets a rollout paused on its canaries (or still starting them)
// replace the rest of the tasks.
func (c *Controller) Promote(jobID string, now time.Time) error {
	now = c.advance(now)
	e := c.jobs[jobID]
	if e == nil {
		return fmt.Errorf("%w: job %q; list jobs with 'fathom job list'", ErrJobNotFound, jobID)
	}
	d := e.job.Deployment
	if !d.Active() || e.job.Spec.policy().Canary == 0 {
		return fmt.Errorf("%w: job %s has no rollout waiting on canaries (see fathom job status %s)", ErrConflict, e.job.Spec.Name, jobID)
	}
	if d.Promoted {
		return nil
	}
	d.Promoted, d.Status, d.UpdatedAt = true, DeployRunning, now
	d.Message = "promoted: replacing the remaining tasks"
	c.emitVersion(e)
	c.markJob(e)
	return nil
}
