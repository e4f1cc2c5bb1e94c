package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/predictor/promhistory"
)

// RightSizingOptions configure the usage feeder.
type RightSizingOptions struct {
	// History is where usage comes from (required): PromQL over the
	// embedded store or a Prometheus, aggregated into windows of its width.
	History *promhistory.History
	// Interval between rounds (30 s when zero).
	Interval time.Duration
	// Kind is the recommender every task gets ("fathom" when empty).
	Kind string
	// Lookback bounds the history read for a task seen the first time (8 days).
	Lookback time.Duration
	// Predictor configures the predictor beyond Kind, Lookback and the
	// window (taken from History): step spread, cold start, budgets.
	Predictor predictor.Config
	Logger    *slog.Logger
}

// RightSizer is the I/O half of right-sizing: every round it reads the new
// usage windows of every running task from the metrics store (PromQL) and
// feeds them to the predictor, then tells the controller which tasks it
// observed; the controller (package controller) decides every size. It also
// keeps the last measured usage of each task for the recommendations API
// and the prediction-error metric. Safe for concurrent use.
type RightSizer struct {
	o    RightSizingOptions
	pred *predictor.Predictor
	log  *slog.Logger

	mu    sync.Mutex
	usage map[string]measured // task id -> last measured usage
}

type measured struct {
	cpu, mem float64
	ok       bool
	// request is the request the predictor served when the usage was
	// measured (for the prediction-error metric).
	cpuReq, memReq float64
	hasReq         bool
}

// NewRightSizer checks the options and returns a RightSizer.
func NewRightSizer(o RightSizingOptions) (*RightSizer, error) {
	if o.History == nil {
		return nil, errors.New("right-sizing: a usage History is required")
	}
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.Lookback <= 0 {
		o.Lookback = 8 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	pc := o.Predictor
	pc.Kind, pc.Lookback, pc.Window = o.Kind, o.Lookback, o.History.Window()
	p, err := predictor.New(pc)
	if err != nil {
		return nil, fmt.Errorf("right-sizing: %w", err)
	}
	return &RightSizer{o: o, pred: p, log: o.Logger, usage: map[string]measured{}}, nil
}

// Predictor is the live predictor (the controller sizes with it; the model
// registry retrains into it).
func (rs *RightSizer) Predictor() *predictor.Predictor { return rs.pred }

// update reads the task's usage since the last window the predictor took
// (or since now − Lookback) and feeds it: complete, well-covered windows to
// the recommender, the rest (the window still filling, windows the task ran
// only part of) as early evidence for a provisional recommendation.
func (rs *RightSizer) update(ctx context.Context, key predictor.TaskKey, now time.Time) error {
	from, ok := rs.pred.Since(key)
	if !ok {
		from = now.Add(-rs.o.Lookback)
	}
	ws, err := rs.o.History.Aggregated(ctx, key, from, now)
	if err != nil {
		return err
	}
	rs.pred.Feed(key, ws, now)
	return nil
}

// newTaskInterval is how often tasks without a recommendation are looked at
// between rounds: the agents' default push interval.
const newTaskInterval = 10 * time.Second

// rightsizeLoop runs rounds until ctx ends. Between rounds, tasks that have
// no recommendation yet are looked at every newTaskInterval, so a new task
// gets its first one soon after its first minute of usage rather than up to
// a whole Interval later.
func (s *Server) rightsizeLoop(ctx context.Context) {
	rs := s.o.RightSizer
	tick := time.NewTicker(rs.o.Interval)
	defer tick.Stop()
	var young <-chan time.Time
	if rs.o.Interval > newTaskInterval {
		t := time.NewTicker(newTaskInterval)
		defer t.Stop()
		young = t.C
	}
	for {
		onlyNew := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-young:
			onlyNew = true
		}
		if err := s.rightsizeRound(ctx, onlyNew); err != nil && ctx.Err() == nil {
			s.log.Warn("right-sizing round failed", "err", err)
		}
	}
}

// rightsizeRound feeds new usage of every running task (with onlyNew, of
// those without a recommendation yet) to the predictor and hands the
// controller the tasks it observed; the controller resizes at its next
// round.
func (s *Server) rightsizeRound(ctx context.Context, onlyNew bool) error {
	rs := s.o.RightSizer
	now := s.now()
	s.mu.RLock()
	running := s.c.Running()
	s.mu.RUnlock()
	// One look at the series index says which jobs have usage at all;
	// tasks of the others have nothing to read (100,000 tasks just
	// placed would otherwise be 100,000 queries a round).
	withUsage, known, err := rs.o.History.UsageJobs(ctx, now.Add(-rs.o.Lookback), now)
	if err != nil {
		s.log.Warn("right-sizing: listing the jobs with usage failed; querying every task", "err", err)
	}
	var firstErr error
	ids := make([]string, 0, len(running))
	live := make(map[string]bool, len(running))
	for _, rt := range running {
		live[rt.ID] = true
		if known && !withUsage[promhistory.JobName{Namespace: rt.Key.Namespace, Job: rt.Key.Job}] {
			continue
		}
		if onlyNew {
			if _, err := rs.pred.Recommend(rt.Key, now); err == nil {
				continue
			}
		}
		if err := rs.update(ctx, rt.Key, now); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		ids = append(ids, rt.ID)
		cpu, mem, uerr := rs.o.History.Usage(ctx, rt.ID, now)
		rec, rerr := rs.pred.Recommend(rt.Key, now)
		rs.mu.Lock()
		m := rs.usage[rt.ID]
		if uerr == nil {
			// Prediction error: the request served last round against the
			// usage measured since.
			if m.hasReq {
				observeError(s.metrics.pred, "cpu", m.cpuReq, cpu)
				observeError(s.metrics.pred, "memory", m.memReq, mem)
			}
			m.cpu, m.mem, m.ok = cpu, mem, true
		}
		if rerr == nil {
			m.cpuReq, m.memReq, m.hasReq = rec.Request.CPU, rec.Request.Memory, true
			s.metrics.pred.Recommendations.WithLabelValues("cpu").Inc()
			s.metrics.pred.Recommendations.WithLabelValues("memory").Inc()
		}
		rs.usage[rt.ID] = m
		rs.mu.Unlock()
	}
	if !onlyNew {
		rs.mu.Lock()
		for id := range rs.usage {
			if !live[id] {
				delete(rs.usage, id)
			}
		}
		rs.mu.Unlock()
	}
	if len(ids) > 0 {
		if err := s.do(ctx, func(c *controller.Controller, _ time.Time) error {
			c.Observed(ids)
			return nil
		}); err != nil && firstErr == nil {
			firstErr = err
		}
		s.Kick()
	}
	return firstErr
}

// measuredUsage is the last usage measured of a task (ok false: none).
func (rs *RightSizer) measuredUsage(id string) (cpu, mem float64, ok bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	m := rs.usage[id]
	return m.cpu, m.mem, m.ok
}

// recommendationService serves GET /v1/recommendations.
type recommendationService struct {
	fathomv1.UnimplementedRecommendationServiceServer
	s *Server
}

// ListRecommendations returns, per unfinished task of the matching jobs (or
// every task of one job), one recommendation per resource with the task's
// current sizes, its last measured usage and what the controller did with
// the recommendation.
func (r recommendationService) ListRecommendations(ctx context.Context, req *fathomv1.ListRecommendationsRequest) (*fathomv1.ListRecommendationsResponse, error) {
	s := r.s
	rs := s.o.RightSizer
	now := s.now()
	type row struct {
		t      controller.Task
		sizing controller.TaskSizing
		start  controller.Sizing
	}
	var rows []row
	s.mu.RLock()
	if _, ok := s.c.Job(req.GetJob()); req.GetJob() != "" && !ok {
		s.mu.RUnlock()
		return nil, status.Errorf(codes.NotFound, "job %q not found; list jobs with 'fathom job list'", req.GetJob())
	}
	for _, v := range s.c.Jobs(func(j *controller.Job) bool {
		return (req.GetJob() == "" || j.ID == req.GetJob()) && (req.GetNamespace() == "" || j.Spec.Namespace == req.GetNamespace()) &&
			(req.GetJobName() == "" || j.Spec.Name == req.GetJobName())
	}) {
		ts, _ := s.c.JobTasks(v.Job.ID)
		for _, t := range ts {
			if t.State.Terminal() && req.GetJob() == "" {
				continue
			}
			sz, _ := s.c.Sizing(t.ID())
			start, _ := s.c.StartSizes(t.ID(), now)
			rows = append(rows, row{t: t, sizing: sz, start: start})
		}
	}
	s.mu.RUnlock()
	resp := &fathomv1.ListRecommendationsResponse{}
	for _, rw := range rows {
		t, sz := &rw.t, &rw.sizing
		ucpu, umem, _ := rs.measuredUsage(t.ID())
		base := func(res string, usage, req, lim float64) *fathomv1.Recommendation {
			return &fathomv1.Recommendation{Namespace: sz.Spec.Namespace, JobName: sz.Spec.Name, JobId: t.JobID, Task: t.ID(), Resource: res,
				Usage: usage, CurrentRequest: req, CurrentLimit: lim, GeneratedAt: timestamppb.New(now), Explanation: sz.Decision}
		}
		cpu := base("cpu", ucpu, t.CPURequest, t.CPULimit)
		mem := base("memory", umem, float64(t.MemoryRequest), float64(t.MemoryLimit))
		rec, err := rs.pred.Recommend(sz.Key, now)
		if err != nil {
			// No usage yet: what it starts (or started) with, and from where.
			st := rw.start
			cpu.Request, cpu.Limit, cpu.Model = st.CPURequest, st.CPULimit, "none"
			mem.Request, mem.Limit, mem.Model = float64(st.MemoryRequest), float64(st.MemoryLimit), "none"
			if strings.HasPrefix(st.Source, "cold-start model") {
				cpu.Model, mem.Model = "coldstart", "coldstart"
			}
			cpu.Why = "no usage history for " + sz.Key.String() + " yet (" + strings.TrimPrefix(err.Error(), predictor.ErrNoHistory.Error()+" "+sz.Key.String()+": ") + "); sized by " + st.Source
			mem.Why = cpu.Why
		} else {
			z := controller.SizingOf(s.o.Controller.Sizing, rec)
			cpu.Request, cpu.Limit, cpu.Uncertainty = z.CPURequest, z.CPULimit, rec.CPU.StdDev
			mem.Request, mem.Limit, mem.Uncertainty = float64(z.MemoryRequest), float64(z.MemoryLimit), rec.Memory.StdDev
			cpu.Model, mem.Model = rec.Model, rec.Model
			cpu.Confidence, mem.Confidence = rec.Confidence, rec.Confidence
			cpu.Why, mem.Why = rec.Why, rec.Why
			cpu.GeneratedAt, mem.GeneratedAt = timestamppb.New(rec.At), timestamppb.New(rec.At)
			for _, q := range rec.CPU.Quantiles {
				cpu.Quantiles = append(cpu.Quantiles, &fathomv1.Quantile{P: q.P, Value: q.Value})
			}
			for _, q := range rec.Memory.Quantiles {
				mem.Quantiles = append(mem.Quantiles, &fathomv1.Quantile{P: q.P, Value: q.Value})
			}
		}
		resp.Recommendations = append(resp.Recommendations, cpu, mem)
	}
	return resp, nil
}

// wireRightSizer installs the recommendation and model services (unless
// Options set others) and restores the stored model states. Called by New.
func (s *Server) wireRightSizer(ctx context.Context) {
	if s.o.Recommendations == nil {
		s.o.Recommendations = recommendationService{s: s}
	}
	if s.o.Models == nil {
		s.o.Models = modelService{s: s}
	}
	n, err := s.restoreModels(ctx)
	if err != nil {
		s.log.Warn("stored models not restored", "err", err)
		return
	}
	if n > 0 {
		s.log.Info("model states restored from the registry", "tasks", n)
	}
}

// observeError records |predicted − observed| / observed of a matured
// recommendation; windows with no measured usage carry no information.
func observeError(m *metrics.PredictorMetrics, resource string, predicted, observed float64) {
	if observed <= 0 {
		return
	}
	m.Error.WithLabelValues(resource).Observe(math.Abs(predicted-observed) / observed)
}

func keyOf(namespace, job string, idx int32) predictor.TaskKey {
	return predictor.TaskKey{Namespace: namespace, Job: job, Task: int(idx)}
}
