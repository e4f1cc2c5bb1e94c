package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/predictor/promhistory"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// RightSizingOptions configure the right-sizing loop.
type RightSizingOptions struct {
	// History is where usage comes from (required): PromQL over the
	// embedded store or a Prometheus, aggregated into windows of its width.
	History *promhistory.History
	// Interval between rounds (30 s when zero).
	Interval time.Duration
	// Kind is the recommender every task gets ("fathom" when empty).
	Kind string
	// Policy is the deadband and rate limit of in-place resizes.
	Policy predictor.ResizePolicy
	// Lookback bounds the history read for a task seen the first time (8 days).
	Lookback time.Duration
	// MinMemoryLimit is the lowest memory limit ever set (32 MiB when zero),
	// MinCPULimit the lowest CPU limit (0.05 cores when zero).
	MinMemoryLimit int64
	MinCPULimit    float64
	Logger         *slog.Logger
}

// RightSizer learns every task's usage and keeps its sizes right: it sizes
// new tasks at placement (Sizer), resizes running tasks in place through the
// agents (assignment generation bump, limits changed without a restart),
// raises memory at once after an OOM kill or an eviction, and serves the
// recommendations. Safe for concurrent use.
type RightSizer struct {
	o    RightSizingOptions
	pred *predictor.Predictor
	log  *slog.Logger

	mu    sync.Mutex
	state map[string]*sizedTask // task id -> what the loop knows
}

type sizedTask struct {
	key        predictor.TaskKey
	jobID      string
	rec        predictor.Recommendation
	hasRec     bool
	usageCPU   float64
	usageMem   float64
	decision   string
	lastResize time.Time
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
	if o.MinMemoryLimit <= 0 {
		o.MinMemoryLimit = 32 << 20
	}
	if o.MinCPULimit <= 0 {
		o.MinCPULimit = 0.05
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	p, err := predictor.New(predictor.Config{Kind: o.Kind, Lookback: o.Lookback, Window: o.History.Window()})
	if err != nil {
		return nil, fmt.Errorf("right-sizing: %w", err)
	}
	return &RightSizer{o: o, pred: p, log: o.Logger, state: map[string]*sizedTask{}}, nil
}

// Predictor is the live predictor (the model registry retrains into it).
func (rs *RightSizer) Predictor() *predictor.Predictor { return rs.pred }

func keyOf(namespace, job string, idx int32) predictor.TaskKey {
	return predictor.TaskKey{Namespace: namespace, Job: job, Task: int(idx)}
}

// SizeNew implements Sizer, in order: the recommendation when the job's
// name has history (hints are then ignored: measured beats guessed); for a
// job with none, the registry's cold-start model; then the hints; then the
// cold-start default.
func (rs *RightSizer) SizeNew(p PendingTask, now time.Time) Sizing {
	key := keyOf(p.Namespace, p.JobName, p.Index)
	rec, err := rs.pred.Recommend(key, now)
	if err == nil {
		z := rs.sizing(rec)
		z.Source = fmt.Sprintf("recommendation of the %s model (confidence %.2f)", rec.Model, rec.Confidence)
		return z
	}
	if rec, err := rs.pred.RecommendNew(key, jobFeatures(p), now); err == nil && rec.Model == coldStartKind {
		z := rs.sizing(rec)
		z.Source = "cold-start model: " + rec.Why
		return z
	}
	return hintSizing(p)
}

// coldStartKind is the Model of a cold-start recommendation.
const coldStartKind = "coldstart"

// jobFeatures are what the cold-start model knows of a pending task's job:
// namespace, name, command, type, priority and hints.
func jobFeatures(p PendingTask) models.JobFeatures {
	return models.JobFeatures{Namespace: p.Namespace, Name: p.JobName, Command: p.Command, Type: p.Type, Priority: p.Priority,
		HintCPU: p.CPUHint, HintMemory: float64(p.MemoryHint)}
}

func (rs *RightSizer) sizing(rec predictor.Recommendation) Sizing {
	z := Sizing{
		CPURequest: math.Max(rec.Request.CPU, 0.001), CPULimit: math.Max(rec.Limit.CPU, rs.o.MinCPULimit),
		MemoryRequest: max(int64(rec.Request.Memory), 1<<20), MemoryLimit: max(int64(rec.Limit.Memory), rs.o.MinMemoryLimit),
		CPUUsage:    scheduler.Dist{Mean: rec.CPU.Mean, StdDev: rec.CPU.StdDev},
		MemoryUsage: scheduler.Dist{Mean: rec.Memory.Mean, StdDev: rec.Memory.StdDev},
	}
	z.CPULimit = math.Max(z.CPULimit, z.CPURequest)
	z.MemoryLimit = max(z.MemoryLimit, z.MemoryRequest)
	// Whole millicores and MiB: what the kernel enforces (it rounds memory
	// to pages) is then exactly what the task record says.
	z.CPURequest, z.CPULimit = math.Ceil(z.CPURequest*1000)/1000, math.Ceil(z.CPULimit*1000)/1000
	z.MemoryRequest, z.MemoryLimit = roundMiB(z.MemoryRequest), roundMiB(z.MemoryLimit)
	return z
}

// roundMiB rounds b up to a whole MiB.
func roundMiB(b int64) int64 { return (b + 1<<20 - 1) &^ (1<<20 - 1) }

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

// resizeTarget is one running task as the loop sees it.
type resizeTarget struct {
	task *fathomv1.Task
	node string
}

// rightsizeLoop runs rounds until ctx ends. Leader-only: this server is the
// only control plane writing tasks (single-member or leader of its etcd).
//
// Between rounds, tasks that have no recommendation yet are looked at every
// newTaskInterval (the agents' push interval, when shorter than Interval),
// so a new task gets its first one soon after its first minute of usage
// rather than up to a whole Interval later.
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

// newTaskInterval is how often tasks without a recommendation are looked at
// between rounds: the agents' default push interval.
const newTaskInterval = 10 * time.Second

// rightsizeRound learns from new windows of every running task, refreshes
// the recommendations and resizes in place where the policy allows. With
// onlyNew it does so only for tasks that have no recommendation yet.
func (s *Server) rightsizeRound(ctx context.Context, onlyNew bool) error {
	rs := s.o.RightSizer
	now := s.now()
	s.mu.RLock()
	var targets []resizeTarget
	for _, e := range s.jobs {
		for _, t := range e.tasks {
			if t != nil && t.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING && t.GetDesiredState() != fathomv1.DesiredState_DESIRED_STATE_STOP {
				targets = append(targets, resizeTarget{task: t, node: t.GetNode()})
			}
		}
	}
	s.mu.RUnlock()
	sort.Slice(targets, func(a, b int) bool { return targets[a].task.GetId() < targets[b].task.GetId() })
	if onlyNew {
		rs.mu.Lock()
		kept := targets[:0]
		for _, tg := range targets {
			if st := rs.state[tg.task.GetId()]; st == nil || !st.hasRec {
				kept = append(kept, tg)
			}
		}
		rs.mu.Unlock()
		targets = kept
	}
	live := map[string]bool{}
	var firstErr error
	type change struct {
		id   string
		size models.Size
		req  models.Size
		why  string
	}
	var changes []change
	for _, tg := range targets {
		t := tg.task
		live[t.GetId()] = true
		key := keyOf(t.GetNamespace(), t.GetJobName(), t.GetIndex())
		if err := rs.update(ctx, key, now); err != nil && firstErr == nil {
			firstErr = err
		}
		cpu, mem, uerr := rs.o.History.Usage(ctx, t.GetId(), now)
		rec, err := rs.pred.Recommend(key, now)
		rs.mu.Lock()
		st := rs.state[t.GetId()]
		if st == nil {
			st = &sizedTask{key: key, jobID: t.GetJobId()}
			rs.state[t.GetId()] = st
		}
		if uerr == nil {
			st.usageCPU, st.usageMem = cpu, mem
		}
		if err != nil {
			st.decision = "not enough usage measured yet (" + strings.TrimPrefix(err.Error(), predictor.ErrNoHistory.Error()+" ") + "); running at its starting sizes"
			rs.mu.Unlock()
			continue
		}
		// Prediction error: last round's request against the usage measured
		// since (a matured recommendation), then count the new one.
		if st.hasRec && uerr == nil {
			observeError(s.metrics.pred, "cpu", st.rec.Request.CPU, cpu)
			observeError(s.metrics.pred, "memory", st.rec.Request.Memory, mem)
		}
		s.metrics.pred.Recommendations.WithLabelValues("cpu").Inc()
		s.metrics.pred.Recommendations.WithLabelValues("memory").Inc()
		st.rec, st.hasRec = rec, true
		cur := models.Size{CPU: t.GetCpuLimitCores(), Memory: float64(t.GetMemoryLimitBytes())}
		z := rs.sizing(rec)
		rec.Limit = models.Size{CPU: z.CPULimit, Memory: float64(z.MemoryLimit)}
		next, ok, why := rs.o.Policy.Decide(cur, st.lastResize, rec, now)
		if !ok {
			st.decision = "kept: " + why
			rs.mu.Unlock()
			continue
		}
		st.decision = "resize requested: " + why
		rs.mu.Unlock()
		changes = append(changes, change{id: t.GetId(), size: next, req: models.Size{CPU: z.CPURequest, Memory: float64(z.MemoryRequest)}, why: why})
	}
	if !onlyNew {
		rs.mu.Lock()
		for id := range rs.state {
			if !live[id] {
				delete(rs.state, id)
			}
		}
		rs.mu.Unlock()
	}
	for _, c := range changes {
		if err := s.resizeTask(ctx, c.id, c.size, c.req, "right-sizing: "+c.why, now); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// resizeTask changes a running task's limits in place (and its requests
// where they still fit the node): a new generation of the same assignment,
// which the agent applies to the running process without restarting it.
func (s *Server) resizeTask(ctx context.Context, id string, limit, req models.Size, why string, now time.Time) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	jobID, idx, ok := splitTaskID(id)
	e := s.jobs[jobID]
	if !ok || e == nil || int(idx) >= len(e.tasks) || e.tasks[idx] == nil || e.tasks[idx].GetState() != fathomv1.TaskState_TASK_STATE_RUNNING {
		s.mu.RUnlock()
		return nil
	}
	t := proto.Clone(e.tasks[idx]).(*fathomv1.Task)
	ne := s.nodes[t.GetNode()]
	// Requests change only when the node has room for the new sum.
	var cpuSum float64
	var memSum int64
	for tid := range s.byNode[t.GetNode()] {
		j, i, _ := splitTaskID(tid)
		if o := s.jobs[j]; o != nil && o.tasks[i] != nil && !terminal(o.tasks[i].GetState()) && tid != id {
			cpuSum += o.tasks[i].GetCpuRequestCores()
			memSum += o.tasks[i].GetMemoryRequestBytes()
		}
	}
	s.mu.RUnlock()
	note := ""
	if ne != nil && cpuSum+req.CPU <= ne.node.GetCpuCores() && memSum+int64(req.Memory) <= ne.node.GetMemoryBytes() {
		t.CpuRequestCores, t.MemoryRequestBytes = req.CPU, int64(req.Memory)
	} else {
		note = "; requests kept (the node has no room for the new ones)"
	}
	if t.GetCpuLimitCores() != limit.CPU {
		s.metrics.sched.Resizes.WithLabelValues("cpu").Inc()
	}
	if t.GetMemoryLimitBytes() != int64(limit.Memory) {
		s.metrics.sched.Resizes.WithLabelValues("memory").Inc()
	}
	t.CpuLimitCores, t.MemoryLimitBytes = limit.CPU, int64(limit.Memory)
	t.CpuRequestCores = math.Min(t.GetCpuRequestCores(), t.GetCpuLimitCores())
	t.MemoryRequestBytes = min(t.GetMemoryRequestBytes(), t.GetMemoryLimitBytes())
	t.Generation++
	t.UpdatedAt = timestamppb.New(now)
	t.Reason = fmt.Sprintf("resized in place (generation %d): %s%s", t.GetGeneration(), why, note)
	if err := s.commit(ctx, &batch{tasks: []*fathomv1.Task{t}}); err != nil {
		return err
	}
	rs := s.o.RightSizer
	rs.mu.Lock()
	if st := rs.state[id]; st != nil {
		st.lastResize = now
		st.decision = t.Reason
	}
	rs.mu.Unlock()
	s.log.Info("task resized in place", "task", id, "cpu_limit", t.GetCpuLimitCores(), "memory_limit", t.GetMemoryLimitBytes(), "why", why)
	return nil
}

// onTaskReport adjusts a task record made from an agent's report before it
// is committed: an OOM kill or an eviction raises the memory limit at once,
// and the task restarts (same node for an OOM, placed again for an
// eviction) at the new size. It returns t, possibly changed. Caller holds
// wmu and mu (read).
func (s *Server) onTaskReport(e *jobEntry, prev, t *fathomv1.Task, st *fathomv1.TaskStatus, now time.Time) *fathomv1.Task {
	rs := s.o.RightSizer
	if rs == nil || t == nil || e.job.GetStopRequested() || prev.GetDesiredState() == fathomv1.DesiredState_DESIRED_STATE_STOP {
		return t
	}
	oom := st.GetOomKilled() && st.GetState() == fathomv1.TaskState_TASK_STATE_FAILED
	evicted := st.GetEvicted()
	if !oom && !evicted {
		return t
	}
	key := keyOf(prev.GetNamespace(), prev.GetJobName(), prev.GetIndex())
	old := prev.GetMemoryLimitBytes()
	at := float64(old)
	if at <= 0 {
		at = float64(prev.GetMemoryRequestBytes())
	}
	rs.pred.ObserveOOM(key, now, at)
	// Raise by the model's OOM bump, and by at least 20% or 100 MiB.
	next := int64(math.Max(at*1.2, at+100<<20))
	if rec, err := rs.pred.Recommend(key, now); err == nil {
		next = max(next, int64(rec.Limit.Memory))
	}
	next = roundMiB(next)
	what, reason := "OOM-killed", "oom"
	if evicted && !oom {
		what, reason = "evicted under memory pressure", "memory_pressure"
	}
	s.metrics.sched.Evictions.WithLabelValues(prev.GetNamespace(), prev.GetJobName(), reason).Inc()
	t.MemoryLimitBytes = next
	t.MemoryRequestBytes = max(t.GetMemoryRequestBytes(), min(next, int64(float64(t.GetMemoryRequestBytes())*1.2)))
	t.Generation++
	if evicted && !oom {
		t.State = fathomv1.TaskState_TASK_STATE_PENDING
		t.Node = ""
		withHistory(t, now, fmt.Sprintf("%s on %s using up to %d MiB; memory limit raised %d → %d MiB; placing it again", what, prev.GetNode(), int64(at)>>20, old>>20, next>>20))
	} else {
		t.State = fathomv1.TaskState_TASK_STATE_PLACED
		t.Node = prev.GetNode()
		t.FinishedAt = nil
		withHistory(t, now, fmt.Sprintf("%s on %s at its %d MiB limit; memory limit raised to %d MiB before the restart (generation %d)", what, prev.GetNode(), old>>20, next>>20, t.GetGeneration()))
	}
	rs.mu.Lock()
	if sz := rs.state[prev.GetId()]; sz != nil {
		sz.lastResize = now
		sz.decision = t.GetReason()
	}
	rs.mu.Unlock()
	s.log.Warn("memory raised after "+what, "task", prev.GetId(), "from", old, "to", next)
	return t
}

// recommendationService serves GET /v1/recommendations.
type recommendationService struct {
	fathomv1.UnimplementedRecommendationServiceServer
	s *Server
}

// ListRecommendations returns, per running or pending task of the matching
// jobs, one recommendation per resource with the task's current sizes and
// last measured usage.
func (r recommendationService) ListRecommendations(ctx context.Context, req *fathomv1.ListRecommendationsRequest) (*fathomv1.ListRecommendationsResponse, error) {
	s := r.s
	rs := s.o.RightSizer
	now := s.now()
	s.mu.RLock()
	if req.GetJob() != "" && s.jobs[req.GetJob()] == nil {
		s.mu.RUnlock()
		return nil, status.Errorf(codes.NotFound, "job %q not found; list jobs with 'fathom job list'", req.GetJob())
	}
	type row struct {
		t   *fathomv1.Task
		job *fathomv1.Job
	}
	var rows []row
	for _, e := range s.sortedJobs(func(e *jobEntry) bool {
		j := e.job
		return (req.GetJob() == "" || j.GetId() == req.GetJob()) && (req.GetNamespace() == "" || j.GetNamespace() == req.GetNamespace()) &&
			(req.GetJobName() == "" || j.GetName() == req.GetJobName())
	}) {
		for i := range e.tasks {
			t := s.taskView(e, i)
			if terminal(t.GetState()) && req.GetJob() == "" {
				continue
			}
			rows = append(rows, row{t, e.job})
		}
	}
	s.mu.RUnlock()
	resp := &fathomv1.ListRecommendationsResponse{}
	for _, rw := range rows {
		t := rw.t
		key := keyOf(t.GetNamespace(), t.GetJobName(), t.GetIndex())
		rs.mu.Lock()
		st := rs.state[t.GetId()]
		var cp sizedTask
		if st != nil {
			cp = *st
		}
		rs.mu.Unlock()
		rec, err := rs.pred.Recommend(key, now)
		cpu := &fathomv1.Recommendation{Namespace: t.GetNamespace(), JobName: t.GetJobName(), JobId: t.GetJobId(), Task: t.GetId(), Resource: "cpu",
			Usage: cp.usageCPU, CurrentRequest: t.GetCpuRequestCores(), CurrentLimit: t.GetCpuLimitCores(), GeneratedAt: timestamppb.New(now), Explanation: cp.decision}
		mem := &fathomv1.Recommendation{Namespace: t.GetNamespace(), JobName: t.GetJobName(), JobId: t.GetJobId(), Task: t.GetId(), Resource: "memory",
			Usage: cp.usageMem, CurrentRequest: float64(t.GetMemoryRequestBytes()), CurrentLimit: float64(t.GetMemoryLimitBytes()), GeneratedAt: timestamppb.New(now), Explanation: cp.decision}
		if err != nil {
			// No usage yet: what it starts (or started) with, and from where.
			pt := jobPendingTask(rw.job)
			pt.TaskID, pt.Index = t.GetId(), t.GetIndex()
			start := rs.SizeNew(pt, now)
			cpu.Request, cpu.Limit, cpu.Model = start.CPURequest, start.CPULimit, "none"
			mem.Request, mem.Limit, mem.Model = float64(start.MemoryRequest), float64(start.MemoryLimit), "none"
			if strings.HasPrefix(start.Source, "cold-start model") {
				cpu.Model, mem.Model = coldStartKind, coldStartKind
			}
			cpu.Why = "no usage history for " + key.String() + " yet (" + strings.TrimPrefix(err.Error(), predictor.ErrNoHistory.Error()+" "+key.String()+": ") + "); sized by " + start.Source
			mem.Why = cpu.Why
		} else {
			z := rs.sizing(rec)
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
