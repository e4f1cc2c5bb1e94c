package controller

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fathom-scheduler/fathom/internal/logtail"
)

// Restart policies (Nomad's restart stanza). A task's process that ends on
// its own — any exit of a service task, a non-zero exit of a batch or cron
// task — is restarted on its node after Delay, at most Attempts times within
// Interval (the interval begins when the task is first placed and starts
// again once it has passed). Past that, ModeFail ends the task as failed,
// with its exit code and the last lines of its output in the reason;
// ModeDelay waits until the interval is over and starts counting again.
//
// Not counted: OOM kills (the controller raises the memory limit and
// restarts the task; its sizes are Fathom's doing), evictions, lost nodes,
// preemption and moves. A rejection by the node fails the task at once.
//
// The controller decides and times the restart (the agent never restarts a
// process on its own): while the control plane is unreachable, a task that
// exits stays down until it is back.

// Restart modes.
const (
	RestartModeFail  = "fail"
	RestartModeDelay = "delay"
)

// RestartPolicy says how often and how soon a task that ends on its own is
// started again.
type RestartPolicy struct {
	Attempts int32
	Interval time.Duration
	Delay    time.Duration
	Mode     string // RestartModeFail | RestartModeDelay
}

// DefaultRestartPolicy is the policy of a job type when its spec has none
// (Nomad's defaults): batch and cron 3 attempts in 24 h, service 2 in 30
// min; 15 s between attempts; mode fail.
func DefaultRestartPolicy(jobType string) RestartPolicy {
	if jobType == TypeService {
		return RestartPolicy{Attempts: 2, Interval: 30 * time.Minute, Delay: 15 * time.Second, Mode: RestartModeFail}
	}
	return RestartPolicy{Attempts: 3, Interval: 24 * time.Hour, Delay: 15 * time.Second, Mode: RestartModeFail}
}

func (p RestartPolicy) String() string {
	return fmt.Sprintf("%d attempts in %s, delay %s, mode %s", p.Attempts, p.Interval, p.Delay, p.Mode)
}

// restartPolicy is the policy in effect for a job.
func (s *Spec) restartPolicy() RestartPolicy {
	if s.Restart != nil {
		return *s.Restart
	}
	return DefaultRestartPolicy(s.Type)
}

// restartState is a task's restart bookkeeping (persisted in its record).
type restartState struct {
	Attempts    int32     // restarts counted in the current interval
	WindowStart time.Time // when the current interval began
}

// RestartDecision is what to do with a task whose process ended on its own.
type RestartDecision struct {
	Restart bool
	// At is when to start it again (now + Delay; in mode delay past the
	// attempts, the end of the interval).
	At time.Time
	// Next is the bookkeeping after this decision.
	Next restartState
	// Why says it for a person: "restart 1 of 2 in 24h0m0s" or
	// "all 2 restart(s) in 24h0m0s used up (mode fail)".
	Why string
}

// decideRestart applies policy p to an exit at now, given the bookkeeping
// so far; placedAt begins the first interval. Pure.
func decideRestart(p RestartPolicy, st restartState, placedAt, now time.Time) RestartDecision {
	if st.WindowStart.IsZero() {
		st.WindowStart = placedAt
		if st.WindowStart.IsZero() || st.WindowStart.After(now) {
			st.WindowStart = now
		}
	}
	if p.Attempts <= 0 {
		return RestartDecision{Next: st, Why: "the restart policy allows no restarts (attempts 0)"}
	}
	end := st.WindowStart.Add(p.Interval)
	if !now.Before(end) {
		st = restartState{WindowStart: now}
		end = now.Add(p.Interval)
	}
	if st.Attempts >= p.Attempts {
		if p.Mode == RestartModeDelay {
			// Wait for the interval to end; the next one starts then.
			at := end
			if d := now.Add(p.Delay); d.After(at) {
				at = d
			}
			return RestartDecision{Restart: true, At: at, Next: restartState{Attempts: 0, WindowStart: at},
				Why: fmt.Sprintf("all %d restart(s) in %s used up; mode delay: restarting when the interval ends", p.Attempts, p.Interval)}
		}
		return RestartDecision{Next: st, Why: fmt.Sprintf("all %d restart(s) in %s used up (mode fail)", p.Attempts, p.Interval)}
	}
	st.Attempts++
	return RestartDecision{Restart: true, At: now.Add(p.Delay), Next: st,
		Why: fmt.Sprintf("restart %d of %d in %s", st.Attempts, p.Attempts, p.Interval)}
}

// exitedOnItsOwn applies the restart policy to a task whose process ended
// on its own on node (not OOM-killed, not stopped or evicted): restart it
// there after the delay, or end it as failed. A batch or cron task that
// exited 0 has succeeded and never comes here.
func (c *Controller) exitedOnItsOwn(r ref, st Status, node string, now time.Time) {
	t := r.task()
	e := r.job
	p := e.job.Spec.restartPolicy()
	d := decideRestart(p, restartState{t.RestartAttempts, t.RestartWindow}, t.PlacedAt, now)
	t.RestartAttempts, t.RestartWindow = d.Next.Attempts, d.Next.WindowStart
	t.PID, t.ExitCode, t.OOMKilled, t.Evicted, t.Restarts = 0, st.ExitCode, st.OOMKilled, false, st.Restarts
	t.FinishedAt = st.FinishedAt
	if t.FinishedAt.IsZero() {
		t.FinishedAt = now
	}
	exit := fmt.Sprintf("exited %d on %s", st.ExitCode, node)
	if d.Restart {
		t.State = Placed
		t.RestartAt = d.At
		c.restarting[r] = struct{}{}
		withHistory(t, now, fmt.Sprintf("%s; %s: restarting at %s (in %s)", exit, d.Why, d.At.UTC().Format(time.RFC3339), d.At.Sub(now).Round(time.Millisecond)))
		c.markTask(r)
		return
	}
	t.State = Failed
	t.RestartAt = time.Time{}
	msg := fmt.Sprintf("%s; %s", exit, d.Why)
	if tail := logtail.Bound(st.LogTail); tail != "" {
		msg += "; last output:\n" + tail
	}
	withHistory(t, now, msg)
	c.markTask(r)
	c.unplace(r)
	c.retireGhosts(r, "the task ended")
	c.maybeFinished(e)
}

// dueRestarts starts again, on their nodes, the tasks whose restart delay is
// over: a new generation of the same assignment (the agent starts it). A
// task that left its node meanwhile (lost, stopped) is dropped from the
// list.
func (c *Controller) dueRestarts(now time.Time) {
	if len(c.restarting) == 0 {
		return
	}
	var due []ref
	for r := range c.restarting {
		t := r.task()
		if c.jobs[r.job.job.ID] != r.job || t.RestartAt.IsZero() || t.State != Placed || t.Desired != DesiredRun || r.job.job.StopRequested {
			delete(c.restarting, r)
			continue
		}
		if !now.Before(t.RestartAt) {
			due = append(due, r)
		}
	}
	slices.SortFunc(due, func(a, b ref) int { return strings.Compare(a.id(), b.id()) })
	for _, r := range due {
		delete(c.restarting, r)
		t := r.task()
		ne := c.nodes[t.Node]
		if ne == nil || !ne.node.Up {
			continue // liveness makes it lost; it is placed again
		}
		t.RestartAt = time.Time{}
		t.Generation++
		t.StartGeneration = t.Generation
		t.ExitCode, t.FinishedAt = 0, time.Time{}
		what := fmt.Sprintf("restart %d of %d", t.RestartAttempts, r.job.job.Spec.restartPolicy().Attempts)
		if t.RestartAttempts == 0 {
			what = "a new restart interval begins"
		}
		withHistory(t, now, fmt.Sprintf("restarting on %s (generation %d; %s)", t.Node, t.Generation, what))
		c.markTask(r)
		c.markAssign(t.Node, r)
		c.out.stats.Restarted++
	}
}
