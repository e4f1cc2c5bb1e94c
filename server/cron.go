package server

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// Cron jobs: nothing is placed until the schedule fires. Each firing starts a
// run: every task slot goes (back) to pending and is placed like any other
// task, keeping its task id (generation + 1). A firing while the previous run
// still has active tasks is skipped (no overlapping runs). A cron job never
// finishes by itself; it ends with `fathom job stop`.

func isCron(j *fathomv1.Job) bool { return j.GetSpec().GetType() == "cron" }

// nextRun is when the cron job's next run is due (zero for non-cron jobs or
// a schedule that does not parse, which validation prevents).
func nextRun(j *fathomv1.Job) time.Time {
	if !isCron(j) {
		return time.Time{}
	}
	sched, err := cron.ParseStandard(j.GetSpec().GetSchedule())
	if err != nil {
		return time.Time{}
	}
	from := j.GetCreatedAt().AsTime()
	if j.GetLastRunAt() != nil {
		from = j.GetLastRunAt().AsTime()
	}
	return sched.Next(from)
}

func (s *Server) cronLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := s.startDueRuns(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.log.Warn("cron: starting runs failed", "err", err)
		}
	}
}

// startDueRuns starts a run of every cron job whose schedule fired by now.
func (s *Server) startDueRuns(ctx context.Context, now time.Time) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	b := &batch{}
	var started []*jobEntry
	for _, e := range s.jobs {
		j := e.job
		if !isCron(j) || j.GetStopRequested() {
			continue
		}
		next := nextRun(j)
		if next.IsZero() || next.After(now) {
			continue
		}
		busy := false
		for _, t := range e.tasks {
			if j.GetLastRunAt() != nil && (t == nil || !terminal(t.GetState())) {
				busy = true
				break
			}
		}
		nj := proto.Clone(j).(*fathomv1.Job)
		nj.LastRunAt = timestamppb.New(now)
		if busy {
			// Skip this firing; the next one is computed from now.
			s.log.Info("cron: previous run still active, skipping", "job", j.GetId(), "due", next)
			b.jobs = append(b.jobs, nj)
			continue
		}
		nj.Runs++
		b.jobs = append(b.jobs, nj)
		for i := range e.tasks {
			t := e.tasks[i]
			if t == nil {
				continue // never placed: pending by construction
			}
			c := proto.Clone(t).(*fathomv1.Task)
			c.State = fathomv1.TaskState_TASK_STATE_PENDING
			c.Node = ""
			c.DesiredState = fathomv1.DesiredState_DESIRED_STATE_RUN
			c.Pid, c.ExitCode, c.OomKilled, c.Evicted, c.StartedAt, c.FinishedAt = 0, 0, false, false, nil, nil
			withHistory(c, now, fmt.Sprintf("cron run %d started by schedule %q", nj.GetRuns(), j.GetSpec().GetSchedule()))
			b.tasks = append(b.tasks, c)
		}
		started = append(started, e)
	}
	s.mu.RUnlock()
	if b.empty() {
		return nil
	}
	if err := s.commit(ctx, b); err != nil {
		return err
	}
	if len(started) > 0 {
		s.Kick()
	}
	return nil
}
