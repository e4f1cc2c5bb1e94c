package server

import (
	"sync"
	"testing"
	"time"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
)

// fixedRec is a recommender whose answer the test sets (h.recommend): the
// server's sizing path is tested with known recommendations; what the
// recommenders learn is the predictor's tests' business.
type fixedRec struct {
	mu sync.Mutex
	r  models.Recommendation
}

func (f *fixedRec) Kind() string          { return "fixed" }
func (f *fixedRec) Observe(models.Window) {}
func (f *fixedRec) ObserveOOM(_ time.Time, m float64) {
	f.mu.Lock()
	f.r.Memory.Limit = max(f.r.Memory.Limit, m*1.2)
	f.mu.Unlock()
}
func (f *fixedRec) Limit(time.Time) models.Size {
	f.mu.Lock()
	defer f.mu.Unlock()
	return models.Size{CPU: f.r.CPU.Limit, Memory: f.r.Memory.Limit}
}
func (f *fixedRec) Recommend(time.Time) models.Recommendation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.r
}

var fixed = struct {
	sync.Mutex
	recs map[*RightSizer]map[predictor.TaskKey]*fixedRec
}{recs: map[*RightSizer]map[predictor.TaskKey]*fixedRec{}}

// fixedRightSizer adds to o a RightSizer whose recommenders answer what
// h.recommend sets; its usage feeder reads an empty embedded store.
func fixedRightSizer(t *testing.T, o Options) Options {
	t.Helper()
	ms, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	recs := map[predictor.TaskKey]*fixedRec{}
	get := func(k predictor.TaskKey) *fixedRec {
		fixed.Lock()
		defer fixed.Unlock()
		r := recs[k]
		if r == nil {
			r = &fixedRec{}
			recs[k] = r
		}
		return r
	}
	rs, err := NewRightSizer(RightSizingOptions{History: storeHistory(ms, 5*time.Minute), Interval: time.Hour,
		Predictor: predictor.Config{StepSpread: -1, EarlyHorizon: time.Nanosecond,
			New:    func(string) (models.Recommender, error) { return &fixedRec{}, nil },
			NewFor: func(k predictor.TaskKey) (models.Recommender, error) { return get(k), nil }}})
	if err != nil {
		t.Fatal(err)
	}
	fixed.Lock()
	fixed.recs[rs] = recs
	fixed.Unlock()
	o.RightSizer = rs
	return o
}

// recommend makes the predictor recommend request = limit = cpu cores and
// mem bytes for task id, and tells the controller it has new usage.
func (h *harness) recommend(id string, cpu float64, mem int64) {
	h.t.Helper()
	jobID, idx, _ := controller.SplitTaskID(id)
	tk := h.task(jobID, int(idx))
	k := predictor.TaskKey{Namespace: tk.GetNamespace(), Job: tk.GetJobName(), Task: int(idx)}
	rs := h.srv.o.RightSizer
	p := rs.Predictor()
	if _, err := p.Recommend(k, time.Now()); err != nil {
		p.Observe(k, []models.Window{{Start: time.Now().Add(-10 * time.Minute)}})
	}
	fixed.Lock()
	r := fixed.recs[rs][k]
	fixed.Unlock()
	r.mu.Lock()
	r.r = models.Recommendation{CPU: models.Estimate{Request: cpu, Limit: cpu}, Memory: models.Estimate{Request: float64(mem), Limit: float64(mem)}}
	r.mu.Unlock()
	if err := h.srv.do(h.t.Context(), func(c *controller.Controller, _ time.Time) error {
		c.Observed([]string{id})
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	h.srv.Kick()
}

var _ = fathomv1.TaskState_TASK_STATE_RUNNING

// startSizes are the sizes task idx of a job with spec would start with,
// as the controller sizes it with rs's predictor.
func startSizes(t *testing.T, rs *RightSizer, spec controller.Spec, idx int32, now time.Time) controller.Sizing {
	t.Helper()
	c, err := controller.New(controller.Config{Predictor: rs.Predictor()})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Type == "" {
		spec.Type = "service"
	}
	if spec.Priority == "" {
		spec.Priority = "batch"
	}
	spec.Replicas = idx + 1
	spec.Command = []string{"sleep", "60"}
	if err := c.Submit(controller.Job{ID: spec.Name + "-test", Spec: spec}, now); err != nil {
		t.Fatal(err)
	}
	z, ok := c.StartSizes(controller.TaskID(spec.Name+"-test", idx), now)
	if !ok {
		t.Fatal("no such task")
	}
	return z
}

// round runs a control-loop round now and waits until it is committed.
func (h *harness) round() {
	h.t.Helper()
	if err := h.srv.do(h.t.Context(), func(c *controller.Controller, now time.Time) error {
		c.Tick(now)
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
}

// decision is the sizing loop's last word on a task.
func (h *harness) decision(id string) string {
	h.srv.mu.RLock()
	defer h.srv.mu.RUnlock()
	sz, _ := h.srv.c.Sizing(id)
	return sz.Decision
}
