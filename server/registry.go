package server

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/store"
)

// The model registry keeps, per namespace/job name, every trained version
// of its recommenders with the figures of their evaluation:
//
//	/fathom/v1/models/<namespace>/<job name>/<version, 10 digits>  -> fathomv1.Model
//	/fathom/v1/modelstate/<namespace>/<job name>/<task index>      -> latest recommender state (models.Marshal)
//
// Only the latest state is kept (it is what serves); the Model records stay
// as the history of versions and their figures.
const modelStatePrefix = store.Prefix + "modelstate/"

func modelKey(namespace, job string, version int64) string {
	return fmt.Sprintf("%s%s/%s/%010d", store.ModelsPrefix, namespace, job, version)
}

func modelStateKey(k predictor.TaskKey) string {
	return fmt.Sprintf("%s%s/%s/%06d", modelStatePrefix, k.Namespace, k.Job, k.Task)
}

// modelService serves POST /v1/models:retrain and GET /v1/models.
type modelService struct {
	fathomv1.UnimplementedModelServiceServer
	s *Server
}

// listModels reads the stored Model records matching namespace/job ("" = all).
func (s *Server) listModels(ctx context.Context, namespace, job string) ([]*fathomv1.Model, error) {
	prefix := store.ModelsPrefix
	if namespace != "" {
		prefix += namespace + "/"
		if job != "" {
			prefix += job + "/"
		}
	}
	kvs, err := s.st.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []*fathomv1.Model
	for _, kv := range kvs {
		m := &fathomv1.Model{}
		if err := proto.Unmarshal(kv.Value, m); err != nil {
			return nil, fmt.Errorf("model %s: %w", kv.Key, err)
		}
		if job != "" && m.GetJobName() != job {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// ListModels lists every stored version, oldest first per job.
func (m modelService) ListModels(ctx context.Context, req *fathomv1.ListModelsRequest) (*fathomv1.ListModelsResponse, error) {
	ms, err := m.s.listModels(ctx, req.GetNamespace(), req.GetJobName())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "models not read: %v", err)
	}
	return &fathomv1.ListModelsResponse{Models: ms}, nil
}

// RetrainModels trains fresh recommenders per job name from the usage
// history in [since, until), evaluates them on that history (no look-ahead:
// each window is predicted from the windows before it), stores a new version
// with the figures and serves it. With dry_run nothing is stored or served.
func (m modelService) RetrainModels(ctx context.Context, req *fathomv1.RetrainModelsRequest) (*fathomv1.RetrainModelsResponse, error) {
	s := m.s
	rs := s.o.RightSizer
	now := s.now()
	until := now
	if req.GetUntil() != nil {
		until = req.GetUntil().AsTime()
	}
	since := until.Add(-8 * 24 * time.Hour)
	if req.GetSince() != nil {
		since = req.GetSince().AsTime()
	}
	if !since.Before(until) {
		return nil, status.Errorf(codes.InvalidArgument, "since %s must be before until %s", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	start := time.Now() // wall time of the pass, for fathom_predictor_training_duration
	defer func() { s.metrics.pred.ObserveTraining(start, time.Now()) }()
	if until.After(now.Add(time.Minute)) {
		return nil, status.Errorf(codes.InvalidArgument, "until %s is in the future; the history ends now (%s)", until.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	// The job names to train: every job the server knows, with its largest
	// replica count.
	type jobName struct{ ns, name string }
	replicas := map[jobName]int32{}
	s.mu.RLock()
	for _, v := range s.c.Jobs(func(j *controller.Job) bool {
		return (req.GetNamespace() == "" || j.Spec.Namespace == req.GetNamespace()) && (req.GetJobName() == "" || j.Spec.Name == req.GetJobName())
	}) {
		k := jobName{v.Job.Spec.Namespace, v.Job.Spec.Name}
		replicas[k] = max(replicas[k], v.Job.Spec.Replicas)
	}
	s.mu.RUnlock()
	if len(replicas) == 0 {
		return nil, status.Errorf(codes.NotFound, "no job matches namespace %q, job name %q; list jobs with 'fathom job list'", req.GetNamespace(), req.GetJobName())
	}
	names := make([]jobName, 0, len(replicas))
	for k := range replicas {
		names = append(names, k)
	}
	sort.Slice(names, func(a, b int) bool {
		if names[a].ns != names[b].ns {
			return names[a].ns < names[b].ns
		}
		return names[a].name < names[b].name
	})
	existing, err := s.listModels(ctx, req.GetNamespace(), req.GetJobName())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "models not read: %v", err)
	}
	latest := map[jobName]int64{}
	for _, mo := range existing {
		k := jobName{mo.GetNamespace(), mo.GetJobName()}
		latest[k] = max(latest[k], mo.GetVersion())
	}
	kind := rs.o.Kind
	if kind == "" {
		kind = "fathom"
	}
	resp := &fathomv1.RetrainModelsResponse{DryRun: req.GetDryRun()}
	var ops []store.Op
	trained := map[predictor.TaskKey]*predictor.Predictor{}
	for _, jn := range names {
		var series []predictor.Series
		for i := int32(0); i < replicas[jn]; i++ {
			key := keyOf(jn.ns, jn.name, i)
			ws, err := rs.o.History.Windows(ctx, key, since, until)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "history of %s: %v", key, err)
			}
			if len(ws) > 0 {
				series = append(series, predictor.Series{Task: key, Windows: ws})
				resp.Windows += int64(len(ws))
			}
		}
		mo := &fathomv1.Model{Name: jn.ns + "/" + jn.name, Kind: kind, Namespace: jn.ns, JobName: jn.name, TrainedAt: timestamppb.New(now),
			Version: latest[jn] + 1, Since: timestamppb.New(since), Until: timestamppb.New(until), Tasks: int64(len(series)), Metrics: map[string]float64{}}
		if len(series) == 0 {
			mo.Metrics["windows"] = 0
			resp.Models = append(resp.Models, mo)
			continue // nothing to learn: no version is stored
		}
		p, err := predictor.New(predictor.Config{Kind: kind, Budget: rs.o.Predictor.Budget})
		if err != nil {
			return nil, status.Errorf(codes.Internal, "predictor: %v", err)
		}
		n, err := p.Train(series, 0)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "train %s: %v", mo.GetName(), err)
		}
		mo.Samples = int64(n)
		mo.Metrics["windows"] = float64(n)
		// Evaluate on the same history with a warm-up of a quarter of its
		// span (at most the usual 24 h), so short histories get figures.
		var span time.Duration
		for _, se := range series {
			span = max(span, se.Windows[len(se.Windows)-1].Start.Sub(se.Windows[0].Start))
		}
		warm := max(min(24*time.Hour, span/4), time.Nanosecond)
		res, err := predictor.Evaluate(series, predictor.EvalOptions{Policies: []string{kind}, WarmUp: warm, Workers: 1, Budget: rs.o.Predictor.Budget})
		if err != nil {
			return nil, status.Errorf(codes.Internal, "evaluate %s: %v", mo.GetName(), err)
		}
		for _, r := range res {
			mo.Metrics[r.Resource+"_slack"] = r.Slack
			mo.Metrics[r.Resource+"_footprint"] = r.Footprint
			mo.Metrics[r.Resource+"_violations"] = r.Violations
			mo.Metrics[r.Resource+"_severe_violations"] = r.SevereViolations
			mo.Metrics[r.Resource+"_changes_per_task_day"] = r.ChangesPerTaskDay
			mo.Metrics[r.Resource+"_evaluated_windows"] = float64(r.Windows)
		}
		resp.Models = append(resp.Models, mo)
		if req.GetDryRun() {
			continue
		}
		ops = append(ops, store.Put(modelKey(jn.ns, jn.name, mo.GetVersion()), mo))
		snap, err := p.Snapshot()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "snapshot %s: %v", mo.GetName(), err)
		}
		for k, b := range snap {
			ops = append(ops, store.Op{Key: modelStateKey(k), Value: b})
			trained[k] = p
		}
	}
	if req.GetDryRun() || len(ops) == 0 {
		return resp, nil
	}
	if _, err := s.st.Commit(ctx, ops...); err != nil {
		return nil, status.Errorf(codes.Unavailable, "models not stored: %v", err)
	}
	// Serve the new versions: install the trained states in the live
	// predictor, continuing from the last window trained on.
	for k, p := range trained {
		snap, err := p.Snapshot()
		if err != nil {
			continue
		}
		ws, _ := rs.o.History.Windows(ctx, k, since, until)
		if len(ws) == 0 {
			continue
		}
		_ = rs.pred.Restore(k, snap[k], ws[len(ws)-1].Start, len(ws))
	}
	// The cold-start model learns from every job's trained sizes.
	cs, err := s.retrainColdStart(ctx, rs, trained, now)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "cold-start model not trained: %v", err)
	}
	if cs != nil {
		resp.Models = append(resp.Models, cs)
	}
	return resp, nil
}

// restoreModels loads the latest stored recommender states into the live
// predictor at start-up, so that a restarted server keeps what it learned.
// The next right-sizing round continues from now: windows between the
// snapshot and now are read again only when they are after the last one
// the state saw, which the state itself does not record; they are skipped.
func (s *Server) restoreModels(ctx context.Context) (int, error) {
	rs := s.o.RightSizer
	kvs, err := s.st.List(ctx, modelStatePrefix)
	if err != nil {
		return 0, err
	}
	n := 0
	now := s.now()
	for _, kv := range kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), modelStatePrefix), "/")
		if len(parts) != 3 {
			continue
		}
		idx, err := strconv.Atoi(parts[2])
		if err != nil {
			continue
		}
		k := predictor.TaskKey{Namespace: parts[0], Job: parts[1], Task: idx}
		if err := rs.pred.Restore(k, kv.Value, now.Truncate(rs.o.History.Window()), 1); err != nil {
			s.log.Warn("stored model state not restored", "task", k.String(), "err", err)
			continue
		}
		n++
	}
	if err := s.restoreColdStart(ctx, rs); err != nil {
		s.log.Warn("stored cold-start model not restored", "err", err)
	}
	return n, nil
}
