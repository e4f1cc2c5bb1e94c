package controller

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Versions: a job's spec changes by updates (Update, Scale, a rollback),
// each a new version; the caller keeps the versions Ready.Versions names
// (the job's history). Which tasks change is in rollout.go.

// Update moves a job to spec as a new version, like `nomad job run` of a
// job that exists: a spec identical to the current one changes nothing
// (changed false). The name, namespace and type cannot change. Services
// whose tasks run something new get a rollout; a change of replicas adds
// or stops tasks (the highest indexes go first). reason says why the
// version exists ("submitted", "reverted to version 2").
func (c *Controller) Update(jobID string, spec Spec, reason string, now time.Time) (version int64, changed bool, err error) {
	now = c.advance(now)
	e := c.jobs[jobID]
	if e == nil {
		return 0, false, fmt.Errorf("%w: job %q; list jobs with 'fathom job list'", ErrJobNotFound, jobID)
	}
	return c.update(e, spec, reason, false, now)
}

// Scale sets a job's number of tasks: a new version (as in Nomad, whose
// scale registers the job again), never a rollout.
func (c *Controller) Scale(jobID string, replicas int32, now time.Time) (version int64, changed bool, err error) {
	now = c.advance(now)
	e := c.jobs[jobID]
	if e == nil {
		return 0, false, fmt.Errorf("%w: job %q; list jobs with 'fathom job list'", ErrJobNotFound, jobID)
	}
	spec := e.job.Spec.clone()
	spec.Replicas = replicas
	return c.update(e, spec, fmt.Sprintf("scaled from %d to %d", e.job.Spec.Replicas, replicas), false, now)
}

func (c *Controller) update(e *jobEntry, spec Spec, reason string, revert bool, now time.Time) (int64, bool, error) {
	j := &e.job
	switch {
	case j.StopRequested:
		return j.Version, false, fmt.Errorf("%w: job %s (%s) is stopped; submit the spec again (fathom job run) to start a new job", ErrConflict, j.Spec.Name, j.ID)
	case spec.Namespace != j.Spec.Namespace:
		return j.Version, false, fmt.Errorf("%w: an update cannot move a job to another namespace (%q to %q); stop it and submit it in the new namespace", ErrInvalid, j.Spec.Namespace, spec.Namespace)
	case spec.Name != j.Spec.Name:
		return j.Version, false, fmt.Errorf("%w: an update cannot rename a job (%q to %q); submit the new name as a new job", ErrInvalid, j.Spec.Name, spec.Name)
	case spec.Type != j.Spec.Type:
		return j.Version, false, fmt.Errorf("%w: an update cannot change the job type (%s to %s); stop job %s and submit the new spec", ErrInvalid, j.Spec.Type, spec.Type, j.Spec.Name)
	case spec.Replicas < 0:
		return j.Version, false, fmt.Errorf("%w: replicas %d must be ≥ 0", ErrInvalid, spec.Replicas)
	case !e.nameHeld && !e.isCron():
		return j.Version, false, fmt.Errorf("%w: job %s (%s) has finished; submit the spec again (fathom job run) to start a new job", ErrConflict, j.Spec.Name, j.ID)
	}
	if specEqual(&spec, &j.Spec) {
		return j.Version, false, nil
	}
	prev := j.Spec
	if d := j.Deployment; d.Active() {
		d.Status, d.Message, d.UpdatedAt = DeployCancelled, fmt.Sprintf("replaced by version %d", j.Version+1), now
		c.emitVersion(e)
		c.out.logf("job %s: rollout of version %d cancelled: a newer version was submitted", j.ID, d.Version)
	}
	if !slices.ContainsFunc(j.Previous, func(p VersionedSpec) bool { return p.Version == j.Version }) {
		j.Previous = append(j.Previous, VersionedSpec{Version: j.Version, Spec: prev})
	}
	j.Spec = spec.clone()
	j.Version++
	j.VersionAt, j.VersionReason = now, reason
	c.markJob(e)
	c.scaleTo(e, spec.Replicas, now)

	// Tasks whose version runs the same thing take the new version at
	// once; the others are replaced by the rollout (services) or when they
	// next start (batch, cron).
	replace := 0
	for i := range e.tasks {
		r := ref{e, int32(i)}
		t := r.task()
		if t.Version == j.Version {
			continue
		}
		switch {
		case i >= int(spec.Replicas): // stopping (scaled down)
			continue
		case sameTask(c.specOf(r), &j.Spec):
		case live(t) || t.State == Lost:
			// Services: replaced by the rollout; batch and cron: they
			// finish on their version.
			if j.Spec.Type == TypeService {
				replace++
			}
			continue
		case j.Spec.Type == TypeService && t.State.Terminal():
			// A service task that failed (rejected by its node) is tried
			// again with the new version.
			t.Version, t.VersionAt = j.Version, now
			t.State, t.Desired, t.Node = Pending, DesiredRun, ""
			c.resetHealth(r)
			withHistory(t, now, fmt.Sprintf("version %d: waiting for a node", j.Version))
			c.markTask(r)
			c.enqueue(r)
			continue
		}
		t.Version, t.VersionAt = j.Version, now
		c.markTask(r)
	}
	j.Deployment = nil
	delete(c.deploying, j.ID)
	if j.Spec.Type == TypeService {
		j.Deployment = &Deployment{Version: j.Version, FromVersion: j.Version - 1, Status: DeployRunning, StartedAt: now, UpdatedAt: now,
			Revert: revert, Desired: spec.Replicas}
		if replace == 0 {
			j.Deployment.Status, j.Deployment.Message = DeploySuccessful, "no task runs anything new"
			j.StableVersion = j.Version
		} else {
			j.Deployment.Message = fmt.Sprintf("replacing %d tasks", replace)
			c.deploying[j.ID] = e
		}
	}
	c.prunePrevious(e)
	c.emitVersion(e)
	c.out.logf("job %s: version %d (%s)", j.ID, j.Version, reason)
	return j.Version, true, nil
}

// scaleTo sets the job's number of tasks: new ones wait for a node; the
// ones past n are stopped and, once ended, forgotten (trimTasks).
func (c *Controller) scaleTo(e *jobEntry, n int32, now time.Time) {
	j := &e.job
	for i := range e.tasks {
		r := ref{e, int32(i)}
		t := r.task()
		switch {
		case int32(i) >= n && !t.State.Terminal():
			why := fmt.Sprintf("scaled down to %d tasks", n)
			c.stopTask(r, now, why, why)
			c.trimming[j.ID] = e
		case int32(i) < n && t.State == Stopped && !j.StopRequested && !e.isCron():
			// Stopped by an earlier scale-down: it runs again.
			t.State, t.Desired, t.Node = Pending, DesiredRun, ""
			t.Version, t.VersionAt = j.Version, now
			c.resetHealth(r)
			withHistory(t, now, fmt.Sprintf("scaled up to %d tasks; waiting for a node", n))
			c.markTask(r)
			c.enqueue(r)
		}
	}
	for i := int32(len(e.tasks)); i < n; i++ {
		t := &Task{JobID: j.ID, Index: i, State: Pending, Desired: DesiredRun, UpdatedAt: now, Version: j.Version, VersionAt: now,
			Reason: "waiting for a node"}
		if e.isCron() && !c.cronRunActive(e) {
			t.State, t.Reason = Stopped, "waiting for the next run"
		}
		e.tasks = append(e.tasks, t)
		e.meta = append(e.meta, taskMeta{})
		e.stored = append(e.stored, false)
		r := ref{e, i}
		c.resetHealth(r)
		c.markTask(r)
		if c.waiting(r) {
			c.enqueue(r)
		}
	}
}

// cronRunActive reports whether a cron job's current run has active tasks.
func (c *Controller) cronRunActive(e *jobEntry) bool {
	for _, t := range e.tasks {
		if !t.State.Terminal() {
			return true
		}
	}
	return false
}

// stopTask stops one task: told to stop where it runs (Stopped when its
// agent confirms), stopped at once otherwise. Its copies elsewhere go too.
// asking is the task's reason while its node stops it, done when it is
// stopped at once.
func (c *Controller) stopTask(r ref, now time.Time, asking, done string) {
	t := r.task()
	ne := c.nodes[t.Node]
	// A task whose restart waits for its delay has no process: it stops at
	// once.
	if t.Node != "" && ne != nil && ne.node.Up && (t.State == Placed || t.State == Running) && t.RestartAt.IsZero() {
		t.Desired = DesiredStop
		t.Generation++
		withHistory(t, now, asking+"; waiting for node "+t.Node+" to stop the process")
		c.markAssign(t.Node, r)
	} else {
		if t.Node != "" {
			c.unplace(r)
		}
		t.State, t.Desired = Stopped, DesiredStop
		t.RestartAt = time.Time{}
		t.FinishedAt = now
		withHistory(t, now, done)
	}
	c.markTask(r)
	for node := range c.ghosts[r.id()] {
		c.dropGhost(r, node)
	}
}

// trimTasks forgets the ended tasks past a job's replicas (after a
// scale-down): their records are deleted.
func (c *Controller) trimTasks(e *jobEntry) {
	for len(e.tasks) > int(e.job.Spec.Replicas) {
		i := len(e.tasks) - 1
		r := ref{e, int32(i)}
		t, m := e.tasks[i], &e.meta[i]
		if !t.State.Terminal() || m.queued || m.blocked || len(c.ghosts[r.id()]) > 0 {
			return
		}
		delete(c.observed, r)
		delete(c.restarting, r)
		delete(c.out.tasks, r)
		c.out.deletedTasks = append(c.out.deletedTasks, r.id())
		e.tasks[i] = nil
		e.tasks, e.meta, e.stored = e.tasks[:i], e.meta[:i], e.stored[:i]
	}
}

// trimAll trims every job scaled down (Tick).
func (c *Controller) trimAll() {
	if len(c.trimming) == 0 {
		return
	}
	for id, e := range c.trimming {
		if c.jobs[id] == e {
			c.trimTasks(e)
		}
		if c.jobs[id] != e || len(e.tasks) <= int(e.job.Spec.Replicas) {
			delete(c.trimming, id)
		}
	}
}

// sameTask reports whether two specs run the same tasks: everything but
// the replicas and the update policy is equal.
func sameTask(a, b *Spec) bool {
	x, y := a.clone(), b.clone()
	x.Replicas, y.Replicas = 0, 0
	x.Update, y.Update = nil, nil
	return specEqual(&x, &y)
}

// specEqual reports whether two specs are the same (an empty env is no env).
func specEqual(a, b *Spec) bool {
	x, y := a.clone(), b.clone()
	if len(x.Env) == 0 {
		x.Env = nil
	}
	if len(y.Env) == 0 {
		y.Env = nil
	}
	if x.Update != nil && *x.Update == DefaultUpdate {
		x.Update = nil
	}
	if y.Update != nil && *y.Update == DefaultUpdate {
		y.Update = nil
	}
	return reflect.DeepEqual(x, y)
}

// FieldChange is one difference between two specs, as job spec fields.
type FieldChange struct{ Field, Old, New string }

// DiffSpecs lists the fields that differ from a to b.
func DiffSpecs(a, b *Spec) []FieldChange {
	var out []FieldChange
	add := func(field, x, y string) {
		if x != y {
			out = append(out, FieldChange{field, x, y})
		}
	}
	add("type", a.Type, b.Type)
	add("priority", a.Priority, b.Priority)
	add("replicas", strconv.Itoa(int(a.Replicas)), strconv.Itoa(int(b.Replicas)))
	add("schedule", a.Schedule, b.Schedule)
	add("task.command", quoteList(a.Command), quoteList(b.Command))
	for _, k := range slices.Sorted(maps.Keys(mergeKeys(a.Env, b.Env))) {
		x, okx := a.Env[k]
		y, oky := b.Env[k]
		if okx != oky || x != y {
			out = append(out, FieldChange{"task.env." + k, envText(x, okx), envText(y, oky)})
		}
	}
	add("task.user", a.User, b.User)
	add("task.resources.cpu", a.CPUText, b.CPUText)
	add("task.resources.memory", a.MemoryText, b.MemoryText)
	add("task.health_check", a.HealthCheck.String(), b.HealthCheck.String())
	pa, pb := a.policy(), b.policy()
	if a.Type == TypeService || b.Type == TypeService {
		add("update", pa.String(), pb.String())
	}
	return out
}

func mergeKeys(a, b map[string]string) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

func envText(v string, ok bool) string {
	if !ok {
		return "(unset)"
	}
	return strconv.Quote(v)
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// String is the check as a person reads it ("" for none).
func (h *HealthCheck) String() string {
	if h == nil {
		return ""
	}
	var what string
	switch {
	case len(h.Command) > 0:
		what = "command " + quoteList(h.Command)
	case h.HTTPPort > 0:
		what = fmt.Sprintf("http :%d%s", h.HTTPPort, h.HTTPPath)
	case h.TCPPort > 0:
		what = fmt.Sprintf("tcp :%d", h.TCPPort)
	}
	return fmt.Sprintf("%s every %s (timeout %s)", what, h.Interval, h.Timeout)
}

// String is the policy as a person reads it.
func (p UpdatePolicy) String() string {
	return fmt.Sprintf("max_parallel %d, min_healthy_time %s, healthy_deadline %s, auto_revert %v, canary %d",
		p.MaxParallel, p.MinHealthyTime, p.HealthyDeadline, p.AutoRevert, p.Canary)
}

// PlanResult is what an update of a job to a spec would do.
type PlanResult struct {
	// Action: update (tasks are replaced), scale (only the number of
	// tasks changes), none (identical), or in-place (the update policy
	// changed, nothing runs differently).
	Action             string
	Version, Next      int64
	Changes            []FieldChange
	Replace, Add, Stop int32
	Message            string
}

// Plan says what Update(jobID, spec) would do, changing nothing. An error
// is what Update would refuse.
func (c *Controller) Plan(jobID string, spec Spec) (PlanResult, error) {
	e := c.jobs[jobID]
	if e == nil {
		return PlanResult{}, fmt.Errorf("%w: job %q", ErrJobNotFound, jobID)
	}
	j := &e.job
	switch {
	case spec.Namespace != j.Spec.Namespace || spec.Name != j.Spec.Name:
		return PlanResult{}, fmt.Errorf("%w: an update cannot change a job's name or namespace", ErrInvalid)
	case spec.Type != j.Spec.Type:
		return PlanResult{}, fmt.Errorf("%w: an update cannot change the job type (%s to %s); stop job %s and submit the new spec", ErrInvalid, j.Spec.Type, spec.Type, j.Spec.Name)
	}
	res := PlanResult{Version: j.Version, Next: j.Version, Changes: DiffSpecs(&j.Spec, &spec)}
	if specEqual(&j.Spec, &spec) {
		res.Action, res.Message = "none", "the spec is the current one (version "+strconv.FormatInt(j.Version, 10)+"): nothing changes"
		return res, nil
	}
	res.Next = j.Version + 1
	live := int32(0)
	for i, t := range e.tasks {
		if int32(i) >= spec.Replicas {
			if !t.State.Terminal() {
				res.Stop++
			}
			continue
		}
		live++
		r := ref{e, int32(i)}
		if j.Spec.Type == TypeService && !sameTask(c.specOf(r), &spec) && (t.State == Placed || t.State == Running || t.State == Lost) {
			res.Replace++
		}
	}
	res.Add = max(0, spec.Replicas-int32(len(e.tasks)))
	p := spec.policy()
	switch {
	case res.Replace > 0:
		res.Action = "update"
		res.Message = fmt.Sprintf("rolling update to version %d: %d tasks replaced, at most %d at a time", res.Next, res.Replace, p.MaxParallel)
		if p.Canary > 0 {
			res.Message += fmt.Sprintf(", %d canaries first (then fathom job promote %s)", p.Canary, spec.Name)
		}
	case !sameTask(&j.Spec, &spec):
		res.Action = "update"
		res.Message = fmt.Sprintf("version %d: tasks that start from now on run the new spec", res.Next)
	case res.Add > 0 || res.Stop > 0:
		res.Action = "scale"
		res.Message = fmt.Sprintf("version %d: %d tasks added, %d stopped; nothing replaced", res.Next, res.Add, res.Stop)
	default:
		res.Action = "in-place"
		res.Message = fmt.Sprintf("version %d: nothing runs differently", res.Next)
	}
	return res, nil
}

// JobByName is the id of the job that holds the name in the namespace: an
// unfinished job (ok false: none).
func (c *Controller) JobByName(namespace, name string) (string, bool) {
	id, ok := c.names[namespace+"/"+name]
	return id, ok
}
