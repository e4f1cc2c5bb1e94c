package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/store"
)

// The cold-start model sizes jobs that have no history. Every retrain adds
// (or refreshes) one example per retrained job name — its spec's features
// and the sizes its trained recommenders ask for — and fits a new model on
// all examples:
//
//	/fathom/v1/coldstart/examples/<namespace>/<job name> -> models.ColdStartExample (JSON)
//	/fathom/v1/coldstart/model                          -> models.ColdStart (JSON), the one serving
//	/fathom/v1/models/_coldstart/<version>              -> fathomv1.Model with its figures
const (
	coldStartExamplesPrefix = store.Prefix + "coldstart/examples/"
	coldStartModelKey       = store.Prefix + "coldstart/model"
	coldStartModelsPrefix   = store.ModelsPrefix + "_coldstart/"
	// leaveOneOutMax bounds the examples the model's error is measured on
	// (one fit per example).
	leaveOneOutMax = 200
)

// retrainColdStart stores an example per job name just trained (trained
// maps task keys to the predictor holding their fresh state), refits the
// cold-start model on every stored example, stores it as a new version and
// serves it; it returns that version. Nothing is done (nil) when nothing
// was trained (a dry run, or no history).
func (s *Server) retrainColdStart(ctx context.Context, rs *RightSizer, trained map[predictor.TaskKey]*predictor.Predictor, now time.Time) (*fathomv1.Model, error) {
	type jobName struct{ ns, name string }
	sizes := map[jobName][]models.Size{}
	for k, p := range trained {
		rec, err := p.Recommend(k, now)
		if err != nil || !(rec.Request.CPU > 0) || !(rec.Request.Memory > 0) {
			continue
		}
		jn := jobName{k.Namespace, k.Job}
		sizes[jn] = append(sizes[jn], rec.Request)
	}
	if len(sizes) == 0 {
		return nil, nil
	}
	// The features of each job name: its newest job's spec.
	feats := map[jobName]models.JobFeatures{}
	newest := map[jobName]time.Time{}
	s.mu.RLock()
	for _, v := range s.c.Jobs(nil) {
		j := &v.Job
		jn := jobName{j.Spec.Namespace, j.Spec.Name}
		if _, ok := sizes[jn]; !ok {
			continue
		}
		if at, seen := newest[jn]; seen && !j.CreatedAt.After(at) {
			continue
		}
		newest[jn] = j.CreatedAt
		feats[jn] = controller.Features(&j.Spec)
	}
	s.mu.RUnlock()
	var ops []store.Op
	for jn, ss := range sizes {
		f, ok := feats[jn]
		if !ok {
			continue
		}
		var mean models.Size
		for _, z := range ss {
			mean.CPU += z.CPU / float64(len(ss))
			mean.Memory += z.Memory / float64(len(ss))
		}
		b, err := json.Marshal(models.ColdStartExample{Features: f, Size: mean})
		if err != nil {
			return nil, err
		}
		ops = append(ops, store.Op{Key: coldStartExamplesPrefix + jn.ns + "/" + jn.name, Value: b})
	}
	if len(ops) == 0 {
		return nil, nil
	}
	if _, err := s.st.Commit(ctx, ops...); err != nil {
		return nil, fmt.Errorf("examples not stored: %w", err)
	}
	exs, err := s.coldStartExamples(ctx)
	if err != nil {
		return nil, err
	}
	cs := models.NewColdStart(0)
	if err := cs.Fit(exs); err != nil {
		return nil, err
	}
	mo := &fathomv1.Model{Name: "coldstart", Kind: "coldstart", TrainedAt: timestamppb.New(now), Tasks: int64(len(exs)), Samples: int64(len(exs)),
		Metrics: coldStartFigures(exs)}
	last, found, err := s.st.Last(ctx, coldStartModelsPrefix)
	if err != nil {
		return nil, err
	}
	mo.Version = 1
	if found {
		var v int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(last, coldStartModelsPrefix), "%d", &v); err == nil {
			mo.Version = v + 1
		}
	}
	state, err := json.Marshal(cs)
	if err != nil {
		return nil, err
	}
	if _, err := s.st.Commit(ctx, store.Put(fmt.Sprintf("%s%010d", coldStartModelsPrefix, mo.GetVersion()), mo),
		store.Op{Key: coldStartModelKey, Value: state}); err != nil {
		return nil, fmt.Errorf("model not stored: %w", err)
	}
	rs.pred.SetColdStart(cs)
	s.log.Info("cold-start model retrained", "version", mo.GetVersion(), "examples", len(exs))
	return mo, nil
}

// coldStartExamples reads every stored example, sorted by job name.
func (s *Server) coldStartExamples(ctx context.Context) ([]models.ColdStartExample, error) {
	kvs, err := s.st.List(ctx, coldStartExamplesPrefix)
	if err != nil {
		return nil, err
	}
	out := make([]models.ColdStartExample, 0, len(kvs))
	for _, kv := range kvs {
		var e models.ColdStartExample
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, fmt.Errorf("cold-start example %s: %w", kv.Key, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// coldStartFigures measures the model by leaving each example out in turn
// (up to leaveOneOutMax examples; at least 3 are needed): mean |log2
// (predicted / learned)| of the model and of the median-of-all-jobs
// baseline, per resource (1.0 = off by a factor of two).
func coldStartFigures(exs []models.ColdStartExample) map[string]float64 {
	figs := map[string]float64{"examples": float64(len(exs))}
	if len(exs) < 3 || len(exs) > leaveOneOutMax {
		return figs
	}
	var n float64
	sum := map[string]float64{}
	for i := range exs {
		train := append(append([]models.ColdStartExample{}, exs[:i]...), exs[i+1:]...)
		r, err := models.EvaluateColdStart(train, exs[i:i+1], 0)
		if err != nil {
			continue
		}
		n++
		sum["cpu_log2_error"] += r.CPUModel.Mean
		sum["cpu_log2_error_median_baseline"] += r.CPUMedian.Mean
		sum["memory_log2_error"] += r.MemModel.Mean
		sum["memory_log2_error_median_baseline"] += r.MemMedian.Mean
	}
	if n == 0 {
		return figs
	}
	keys := make([]string, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		figs[k] = sum[k] / n
	}
	return figs
}

// restoreColdStart serves the stored cold-start model, if any.
func (s *Server) restoreColdStart(ctx context.Context, rs *RightSizer) error {
	v, found, err := s.st.Get(ctx, coldStartModelKey)
	if err != nil || !found {
		return err
	}
	cs := models.NewColdStart(0)
	if err := json.Unmarshal(v, cs); err != nil {
		return fmt.Errorf("%s: %w", coldStartModelKey, err)
	}
	if err := cs.Fit(cs.Examples); err != nil {
		return err
	}
	rs.pred.SetColdStart(cs)
	s.log.Info("cold-start model restored", "examples", len(cs.Examples))
	return nil
}
