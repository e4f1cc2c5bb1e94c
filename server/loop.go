package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/store"
)

// The control loop. Every change of state is an op: a function applied to
// the controller by one goroutine, the loop. The loop takes the ops that
// are waiting (a batch), applies them, runs a controller round when one is
// due, and commits what the controller says changed (Ready) to etcd in as
// few transactions as the limits allow; only then does it answer the ops,
// send the assignment changes to the agents and publish the events. A batch
// that fails to commit is answered UNAVAILABLE and the controller is rebuilt
// from the store, so nothing unacknowledged survives in memory either.

// op is one request of the loop.
type op struct {
	fn   func(c *controller.Controller, now time.Time) error
	done chan error
}

// maxBatch bounds the ops applied together: with a round, what one step
// holds the state for (readers wait for it).
const maxBatch = 1024

// placePerRound is the server's MaxPlacePerRound (unless configured): a
// round's placements are committed before readers see them, so a round of
// 2,000 keeps a step to about 100 ms of work; the loop runs the next round
// at once when tasks were left waiting (Stats.Deferred).
const placePerRound = 2000

// do runs fn in the loop and waits until what it changed is committed. An
// error fn returns is the request's answer (nothing it changed is kept...
// fn must not change anything before failing); a failed commit is
// UNAVAILABLE.
func (s *Server) do(ctx context.Context, fn func(c *controller.Controller, now time.Time) error) error {
	o := &op{fn: fn, done: make(chan error, 1)}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// roundPeriod is how often the loop runs a controller round without being
// asked: a tenth of the heartbeat timeout, between 100 ms and 1 s, so that a
// lapsed node is noticed promptly.
func (s *Server) roundPeriod() time.Duration {
	return min(max(s.o.Controller.HeartbeatTimeout/10, 100*time.Millisecond), time.Second)
}

// slowStep: a step that holds the state longer is logged (readers and
// every queued request wait for it).
const slowStep = 500 * time.Millisecond

// minRoundGap coalesces bursts (a job submitted, many reports) into one
// round.
const minRoundGap = 20 * time.Millisecond

func (s *Server) loop(ctx context.Context) {
	tick := time.NewTicker(s.roundPeriod())
	defer tick.Stop()
	var soon <-chan time.Time
	var lastRound time.Time
	batch := make([]*op, 0, 64)
	for {
		round := false
		select {
		case <-ctx.Done():
			s.drain(ctx.Err())
			return
		case o := <-s.ops:
			batch = append(batch, o)
		case <-tick.C:
			round = true
		case <-s.kick:
			if time.Since(lastRound) >= minRoundGap {
				round = true
			} else if soon == nil {
				soon = time.After(minRoundGap - time.Since(lastRound))
			}
		case <-soon:
			soon, round = nil, true
		}
	more:
		for len(batch) < maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break more
			}
		}
		if round {
			lastRound = time.Now()
		}
		s.step(ctx, batch, round)
		clear(batch)
		batch = batch[:0]
	}
}

// drain answers the ops still queued when the loop ends.
func (s *Server) drain(err error) {
	for {
		select {
		case o := <-s.ops:
			o.done <- status.Errorf(codes.Unavailable, "server shutting down: %v", err)
		default:
			return
		}
	}
}

// step applies a batch of ops (and a round when due), commits, and answers.
func (s *Server) step(ctx context.Context, batch []*op, round bool) {
	now := s.now()
	errs := make([]error, len(batch))
	t0 := time.Now()
	s.mu.Lock()
	if s.stale {
		if err := s.restore(ctx); err != nil {
			s.mu.Unlock()
			for i, o := range batch {
				errs[i] = status.Errorf(codes.Unavailable, "state not loaded from etcd: %v", err)
				o.done <- errs[i]
			}
			return
		}
		s.streams.resyncAll()
	}
	for node, b := range s.beats.take() {
		s.c.Heartbeat(node, b.u, b.at)
	}
	for i, o := range batch {
		errs[i] = o.fn(s.c, now)
	}
	var took time.Duration
	if round {
		start := time.Now()
		s.c.Tick(now)
		took = time.Since(start)
	}
	rd := s.c.Ready()
	t1 := time.Now()
	var err error
	if !rd.Empty() {
		err = s.persist(ctx, &rd)
	}
	if held := time.Since(t0); held > slowStep {
		s.log.Warn("slow control-loop step", "held", held.Round(time.Millisecond), "ops", len(batch), "round", round,
			"tick", took.Round(time.Millisecond), "apply", (t1.Sub(t0) - took).Round(time.Millisecond),
			"commit", time.Since(t1).Round(time.Millisecond), "tasks", len(rd.Tasks), "jobs", len(rd.Jobs), "nodes", len(rd.Nodes))
	}
	var events []event
	if err != nil {
		s.log.Warn("commit failed; rebuilding the control loop's state from etcd", "err", err)
		for i := range errs {
			if errs[i] == nil {
				errs[i] = status.Errorf(codes.Unavailable, "not stored: %v", err)
			}
		}
		s.stale = true
		if rerr := s.restore(ctx); rerr != nil {
			s.log.Warn("state not reloaded; retrying with the next request", "err", rerr)
		}
		s.streams.resyncAll()
	} else {
		s.streams.deliver(rd.Assign)
		if s.hub.active() {
			events = s.eventsLocked(&rd)
		}
	}
	s.mu.Unlock()
	if err == nil && rd.Provider != nil {
		// Started before the ops are answered: whoever waits on an op
		// that led to a call sees the call under way.
		s.callProvider(ctx, rd.Provider)
	}
	for i, o := range batch {
		o.done <- errs[i]
	}
	if err != nil {
		return
	}
	s.beats.remove(rd.RemovedNodes)
	s.hub.publish(events...)
	s.observe(&rd, round, took)
	if rd.Stats.Deferred > 0 {
		s.Kick() // the round left waiting tasks for the next
	}
}

// MaxVersions is how many versions of a job's spec are kept in etcd (the
// newest; `fathom job history`, `fathom job revert`).
const MaxVersions = 10

// persist commits a Ready to etcd: every record it names, in order.
func (s *Server) persist(ctx context.Context, rd *controller.Ready) error {
	ops := make([]store.Op, 0, len(rd.Jobs)+len(rd.Tasks)+len(rd.Nodes)+len(rd.GhostPuts)+len(rd.GhostDeletes)+len(rd.Names)+2*len(rd.DeletedJobs))
	specs := map[string]*controller.Spec{}
	for i := range rd.Jobs {
		j := &rd.Jobs[i]
		ops = append(ops, store.PutJob(jobRecord(j)))
		specs[j.ID] = &j.Spec
	}
	for i := range rd.Tasks {
		t := &rd.Tasks[i]
		spec := specs[t.JobID]
		if spec == nil {
			v, ok := s.c.Job(t.JobID)
			if !ok {
				continue
			}
			spec = &v.Job.Spec
			specs[t.JobID] = spec
		}
		ops = append(ops, store.PutTask(taskProto(t, spec)))
	}
	for i := range rd.Nodes {
		ops = append(ops, store.PutNode(nodeRecord(&rd.Nodes[i])))
	}
	for _, n := range rd.RemovedNodes {
		ops = append(ops, store.Delete(store.NodeKey(n)))
	}
	for i := range rd.GhostPuts {
		ops = append(ops, store.PutCopy(copyRecord(&rd.GhostPuts[i])))
	}
	for _, k := range rd.GhostDeletes {
		ops = append(ops, store.Delete(store.CopyKey(k.TaskID, k.Node)))
	}
	for _, nc := range rd.Names {
		k := store.JobNameKey(nc.Namespace, nc.Name)
		if nc.JobID == "" {
			ops = append(ops, store.Delete(k))
		} else {
			ops = append(ops, store.Op{Key: k, Value: []byte(nc.JobID)})
		}
	}
	for _, id := range rd.DeletedTasks {
		if jobID, idx, ok := controller.SplitTaskID(id); ok {
			ops = append(ops, store.Delete(store.TaskKey(jobID, idx)))
		}
	}
	for i := range rd.Versions {
		v := &rd.Versions[i]
		ops = append(ops, store.Put(store.VersionKey(v.JobID, v.Version), versionProto(v)))
		if old := v.Version - MaxVersions; old > 0 {
			ops = append(ops, store.Delete(store.VersionKey(v.JobID, old)))
		}
	}
	for _, j := range rd.DeletedJobs {
		ops = append(ops, store.Delete(store.JobKey(j.Spec.Namespace, j.ID)), store.DeletePrefix(store.TasksOfJob(j.ID)),
			store.DeletePrefix(store.VersionsOfJob(j.ID)))
	}
	if len(ops) == 0 {
		return nil
	}
	_, err := s.st.Commit(ctx, ops...)
	return err
}

// eventsLocked builds the watch events of a committed Ready. Caller holds mu.
func (s *Server) eventsLocked(rd *controller.Ready) []event {
	var evs []event
	created := map[string]bool{}
	for _, id := range rd.Created {
		created[id] = true
	}
	jobs := map[string]bool{}
	for i := range rd.Jobs {
		jobs[rd.Jobs[i].ID] = true
	}
	for i := range rd.Tasks {
		jobs[rd.Tasks[i].JobID] = true
	}
	for id := range jobs {
		v, ok := s.c.Job(id)
		if !ok {
			continue
		}
		typ := fathomv1.EventType_EVENT_TYPE_UPDATED
		if created[id] {
			typ = fathomv1.EventType_EVENT_TYPE_CREATED
		}
		evs = append(evs, event{job: &fathomv1.JobEvent{Type: typ, Job: jobView(&v)}})
	}
	for id := range created {
		v, ok := s.c.Job(id)
		if !ok {
			continue
		}
		ts, _ := s.c.JobTasks(id)
		for i := range ts {
			evs = append(evs, event{task: &fathomv1.TaskEvent{Type: fathomv1.EventType_EVENT_TYPE_CREATED, Task: taskProto(&ts[i], &v.Job.Spec)}})
		}
	}
	for i := range rd.DeletedJobs {
		evs = append(evs, event{job: &fathomv1.JobEvent{Type: fathomv1.EventType_EVENT_TYPE_DELETED, Job: jobRecord(&rd.DeletedJobs[i])}})
	}
	for i := range rd.Tasks {
		t := &rd.Tasks[i]
		if created[t.JobID] {
			continue
		}
		v, ok := s.c.Job(t.JobID)
		if !ok {
			continue
		}
		tv, _ := s.c.Task(t.ID())
		evs = append(evs, event{task: &fathomv1.TaskEvent{Type: fathomv1.EventType_EVENT_TYPE_UPDATED, Task: taskProto(&tv, &v.Job.Spec)}})
	}
	return evs
}

// observe records a committed Ready's decisions as metrics and log lines.
func (s *Server) observe(rd *controller.Ready, round bool, took time.Duration) {
	m := s.metrics
	st := &rd.Stats
	if round {
		m.sched.PlacementDuration.Observe(took.Seconds())
	}
	m.placements.Add(float64(st.Placed))
	m.sched.Placements.WithLabelValues("placed").Add(float64(st.Placed))
	m.sched.Placements.WithLabelValues("unschedulable").Add(float64(st.Unschedulable))
	if st.Rescheduled > 0 {
		m.sched.Reschedules.WithLabelValues("node_failed").Add(float64(st.Rescheduled))
	}
	for why, n := range st.MovedBy {
		m.sched.Reschedules.WithLabelValues(why).Add(float64(n))
	}
	for p, n := range st.PreemptedBy {
		m.sched.Preemptions.WithLabelValues(p).Add(float64(n))
	}
	for r, n := range st.ResizedBy {
		m.sched.Resizes.WithLabelValues(r).Add(float64(n))
	}
	m.nodesDown.Add(float64(st.NodesDown))
	for _, e := range st.Evictions {
		m.sched.Evictions.WithLabelValues(e.Namespace, e.JobName, e.Reason).Inc()
	}
	for _, l := range rd.Log {
		s.log.Info(l)
	}
	if st.Placed+st.Preempted+st.Moved+st.Resized+st.StaleStopped+st.NodesDown > 0 {
		s.log.Info("reconciled", "placed", st.Placed, "rescheduled", st.Rescheduled, "preempted", st.Preempted, "moved", st.Moved,
			"resized", st.Resized, "stale_stopped", st.StaleStopped, "waiting", st.Unschedulable, "nodes_down", st.NodesDown)
	}
}

// controllerErr maps the controller's refusals to gRPC statuses.
func controllerErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, controller.ErrNameTaken):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, controller.ErrJobNotFound), errors.Is(err, controller.ErrNodeNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, controller.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, controller.ErrConflict):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, fmt.Sprint(err))
}
