package server

import (
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/predictor/promhistory"
)

// TestReconcileSpreadsReplicasAndExplains: the server's reconcile loop sizes
// waiting tasks from their hints, spreads a job's replicas over the nodes
// (two of six on each of three), records why each task sits where it does,
// and says why a task that fits no node waits.
func TestReconcileSpreadsReplicasAndExplains(t *testing.T) {
	h := startServer(t, Options{})
	for _, n := range []string{"n1", "n2", "n3"} {
		h.agent(n, 4)
	}
	web := h.submit(&fathomv1.JobSpec{Name: "web", Namespace: "ns", Type: "service", Priority: "prod", Replicas: proto.Int32(6),
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}, Resources: &fathomv1.Resources{Cpu: "0.5", Memory: "256Mi"}}})
	huge := h.submit(&fathomv1.JobSpec{Name: "huge", Namespace: "ns", Type: "batch", Priority: "batch",
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}, Resources: &fathomv1.Resources{Cpu: "16"}}})
	eventually(t, "six replicas placed", func() bool {
		for i := range 6 {
			if h.task(web, i).GetNode() == "" {
				return false
			}
		}
		return true
	})
	per := map[string]int{}
	for i := range 6 {
		tk := h.task(web, i)
		per[tk.GetNode()]++
		if tk.GetCpuRequestCores() != 0.5 || tk.GetMemoryLimitBytes() != 256<<20 {
			t.Errorf("%s sized %v cores / %d bytes; want the hints 0.5 / 256Mi", tk.GetId(), tk.GetCpuRequestCores(), tk.GetMemoryLimitBytes())
		}
		if why := tk.GetHistory()[0].GetMessage(); !strings.Contains(why, "examined") || !strings.Contains(why, "hints") {
			t.Errorf("%s placed with %q; want the scheduler's explanation and the sizes' source", tk.GetId(), why)
		}
	}
	if per["n1"] != 2 || per["n2"] != 2 || per["n3"] != 2 {
		t.Errorf("replicas per node %v; want 2 on each of 3 nodes", per)
	}
	eventually(t, "the 16-core task waits with a reason naming cpu", func() bool {
		tk := h.task(huge, 0)
		return tk.GetNode() == "" && strings.Contains(tk.GetReason(), "cpu")
	})
}

// fillStore writes a task's usage series into a real embedded TSDB: cpu
// cores of CPU per second and mem bytes of working set, one sample per
// second over [from, to).
func fillStore(t *testing.T, ms *metrics.Store, task string, from, to time.Time, cpu float64, mem func(time.Time) float64) {
	t.Helper()
	app := ms.Appender(context.Background())
	base := []string{metrics.LabelNamespace, "ns", metrics.LabelJobName, "web", metrics.LabelTask, task, metrics.LabelNode, "n1"}
	cl := labels.FromStrings(append([]string{labels.MetricName, metrics.TaskCPUUsageSecondsTotal}, base...)...)
	ml := labels.FromStrings(append([]string{labels.MetricName, metrics.TaskMemoryWorkingSetBytes}, base...)...)
	total := 0.0
	for ts := from; ts.Before(to); ts = ts.Add(time.Second) {
		total += cpu
		if _, err := app.Append(0, cl, ts.UnixMilli(), total); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Append(0, ml, ts.UnixMilli(), mem(ts)); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestPromHistoryAndRightSizerOverARealStore(t *testing.T) {
	ms, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	now := time.Now().Truncate(time.Minute)
	from := now.Add(-30 * time.Minute)
	spike := now.Add(-10*time.Minute + 30*time.Second)
	fillStore(t, ms, "web-abc-0", from, now, 0.5, func(ts time.Time) float64 {
		if ts.Equal(spike) {
			return 300 << 20
		}
		return 100 << 20
	})
	h := storeHistory(ms, time.Minute)
	key := predictor.TaskKey{Namespace: "ns", Job: "web", Task: 0}
	ws, err := h.Windows(context.Background(), key, from.Add(time.Minute), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) < 25 || len(ws) > 29 {
		t.Fatalf("got %d one-minute windows over 29 minutes; want about 28", len(ws))
	}
	sawSpike := false
	for _, w := range ws {
		if w.CPU < 0.45 || w.CPU > 0.55 {
			t.Errorf("window %s: cpu %.3f, want 0.5", w.Start, w.CPU)
		}
		if w.Start.Equal(spike.Truncate(time.Minute)) {
			sawSpike = true
			if w.Memory != 300<<20 {
				t.Errorf("window %s holds the spike; memory peak %v, want %d", w.Start, w.Memory, 300<<20)
			}
		} else if w.Memory != 100<<20 {
			t.Errorf("window %s: memory %v, want %d", w.Start, w.Memory, 100<<20)
		}
		if w.Start.Before(from.Add(time.Minute)) || !w.Start.Before(now) {
			t.Errorf("window %s outside the range asked", w.Start)
		}
	}
	if !sawSpike {
		t.Errorf("no window holds the memory spike at %s", spike)
	}
	// Other task indexes and names have no history.
	if ws, err := h.Windows(context.Background(), predictor.TaskKey{Namespace: "ns", Job: "web", Task: 1}, from, now); err != nil || len(ws) != 0 {
		t.Errorf("task 1: %d windows, err %v; want none", len(ws), err)
	}

	rs, err := NewRightSizer(RightSizingOptions{History: h})
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.update(context.Background(), key, now); err != nil {
		t.Fatal(err)
	}
	z := startSizes(t, rs, controller.Spec{Namespace: "ns", Name: "web", CPUHint: 3}, 0, now)
	if !strings.Contains(z.Source, "recommendation") {
		t.Fatalf("sized by %q; want the recommendation (history exists)", z.Source)
	}
	// The model picks its own margin (it may forgo one old spike); it must
	// cover the steady 100 MiB and pack near the measured 0.5 core.
	if z.MemoryLimit < 100<<20 || z.CPURequest < 0.3 || z.CPURequest > 1 || z.CPULimit < z.CPURequest {
		t.Errorf("sizes %+v; want a memory limit ≥ the steady 100 MiB and a CPU request near 0.5", z)
	}
	if z.MemoryLimit%(1<<20) != 0 {
		t.Errorf("memory limit %d is not whole MiB", z.MemoryLimit)
	}
	cold := startSizes(t, rs, controller.Spec{Namespace: "ns", Name: "new", MemoryHint: 64 << 20}, 0, now)
	if cold.MemoryRequest != 64<<20 || cold.CPURequest != controller.DefaultCPURequest || !strings.Contains(cold.Source, "hints") {
		t.Errorf("no history: %+v; want the memory hint and the default CPU", cold)
	}
}

func TestOOMRaisesMemoryBeforeRestartAndServesRecommendations(t *testing.T) {
	ms, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	rs, err := NewRightSizer(RightSizingOptions{History: storeHistory(ms, time.Minute), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := startServer(t, Options{RightSizer: rs, RemoteWriteHTTPPort: "9999"})
	ctx := t.Context()
	a := h.agent("node-a", 4)
	created, err := h.jobs.CreateJob(ctx, &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{
		Name: "burner", Namespace: "ns", Task: &fathomv1.TaskSpec{Command: []string{"sleep", "60"}, Resources: &fathomv1.Resources{Memory: "64Mi"}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetId() + "-0"
	set := a.next("the task", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 1 })
	as := set.GetAssignments()[0]
	if as.GetMemoryLimitBytes() != 64<<20 {
		t.Fatalf("assignment memory limit %d; want the 64 MiB hint", as.GetMemoryLimitBytes())
	}
	a.report(&fathomv1.TaskStatus{TaskId: id, State: fathomv1.TaskState_TASK_STATE_RUNNING, Pid: 42, Generation: as.GetGeneration()})
	a.report(&fathomv1.TaskStatus{TaskId: id, State: fathomv1.TaskState_TASK_STATE_FAILED, OomKilled: true, ExitCode: 137, Generation: as.GetGeneration(),
		Reason: "OOM-killed by the kernel"})
	set = a.next("the raised assignment", func(s *assignmentSet) bool {
		return len(s.GetAssignments()) == 1 && s.GetAssignments()[0].GetGeneration() > as.GetGeneration()
	})
	raised := set.GetAssignments()[0]
	if raised.GetMemoryLimitBytes() < 164<<20 || raised.GetDesiredState() != fathomv1.DesiredState_DESIRED_STATE_RUN {
		t.Fatalf("after the OOM: memory limit %d, desired %v; want ≥ 64 MiB + 100 MiB and run", raised.GetMemoryLimitBytes(), raised.GetDesiredState())
	}
	tk := h.task(created.GetId(), 0)
	if tk.GetState() != fathomv1.TaskState_TASK_STATE_PLACED || !strings.Contains(tk.GetReason(), "OOM-killed") {
		t.Fatalf("task after the OOM: %v %q; want placed again with the OOM in its reason", tk.GetState(), tk.GetReason())
	}
	// The recommendation service answers for the job, with the OOM behind it.
	code, body := h.do("GET", "/v1/recommendations?job="+created.GetId(), "")
	recs, _ := body["recommendations"].([]any)
	if code != 200 || len(recs) != 2 {
		t.Fatalf("GET /v1/recommendations?job= = %d %v; want cpu and memory", code, body)
	}
	if code, _ := h.do("GET", "/v1/recommendations?job=nope", ""); code != 404 {
		t.Errorf("unknown job: %d, want 404", code)
	}
	// The registry: nothing learned yet (no usage in the store), so a
	// retrain stores nothing and says so; list answers.
	code, body = h.do("POST", "/v1/models:retrain", `{"namespace":"ns","dry_run":true}`)
	if code != 200 {
		t.Fatalf("retrain = %d %v", code, body)
	}
	if code, body = h.do("GET", "/v1/models", ""); code != 200 {
		t.Fatalf("list models = %d %v", code, body)
	}
	if code, _ = h.do("POST", "/v1/models:retrain", `{"since":"2026-11-25T12:00:00Z","until":"2026-11-25T11:00:00Z"}`); code != 400 {
		t.Errorf("since after until: %d, want 400", code)
	}
	// The loops' events are on /metrics: one placement (the restart after the
	// OOM keeps its node), one OOM eviction, the one retraining pass (the rejected one never started).
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`fathom_scheduler_placements_total{result="placed"} 1`,
		`fathom_scheduler_evictions_total{job_name="burner",namespace="ns",reason="oom"} 1`,
		`fathom_scheduler_placement_duration_seconds_count`,
		`fathom_predictor_training_duration_seconds_count 1`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestRegistryStoresVersionsWithFigures(t *testing.T) {
	ms, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	now := time.Now().Truncate(time.Minute)
	fillStore(t, ms, "web-abc-0", now.Add(-40*time.Minute), now, 0.25, func(time.Time) float64 { return 50 << 20 })
	rs, err := NewRightSizer(RightSizingOptions{History: storeHistory(ms, time.Minute), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := startServer(t, Options{RightSizer: rs, RemoteWriteHTTPPort: "9999"})
	if _, err := h.jobs.CreateJob(t.Context(), &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{
		Name: "web", Namespace: "ns", Task: &fathomv1.TaskSpec{Command: []string{"sleep", "60"}}}}); err != nil {
		t.Fatal(err)
	}
	since := now.Add(-40 * time.Minute).UTC().Format(time.RFC3339)
	for v := 1; v <= 2; v++ {
		code, body := h.do("POST", "/v1/models:retrain", `{"namespace":"ns","job_name":"web","since":"`+since+`"}`)
		if code != 200 {
			t.Fatalf("retrain = %d %v", code, body)
		}
		mods, _ := body["models"].([]any)
		if len(mods) != 2 || mods[1].(map[string]any)["kind"] != "coldstart" {
			t.Fatalf("retrain models = %v; want the job's and the cold-start model", body)
		}
		m := mods[0].(map[string]any)
		figs, _ := m["metrics"].(map[string]any)
		if m["version"] != strconv.Itoa(v) { // int64 is a string in JSON
			t.Errorf("version %v, want %d", m["version"], v)
		}
		if _, ok := figs["cpu_slack"]; !ok || figs["windows"].(float64) < 30 {
			t.Errorf("figures %v; want cpu_slack and ≥ 30 windows", figs)
		}
	}
	code, body := h.do("GET", "/v1/models?namespace=ns", "")
	if mods, _ := body["models"].([]any); code != 200 || len(mods) != 2 {
		t.Fatalf("list = %d %v; want two versions", code, body)
	}
	// The trained state serves: the job's next task is sized from it.
	z := startSizes(t, rs, controller.Spec{Namespace: "ns", Name: "web"}, 0, now)
	if !strings.Contains(z.Source, "recommendation") {
		t.Errorf("after retrain, sized by %q; want the recommendation", z.Source)
	}
}

// storeHistory reads usage from the embedded store ms in windows of width w.
func storeHistory(ms *metrics.Store, w time.Duration) *promhistory.History {
	return promhistory.NewQuerier(promhistory.Store{Store: ms}, promhistory.Options{UsePeak: true, Window: w})
}

// fillTask writes one task's usage into the embedded store as an agent
// pushes it: every step, the cumulative CPU seconds (cpu cores) and the
// working set (mem bytes), over [from, to).
func fillTask(t *testing.T, ms *metrics.Store, ns, job, task string, from, to time.Time, step time.Duration, cpu, mem float64) {
	t.Helper()
	app := ms.Appender(context.Background())
	base := []string{metrics.LabelNamespace, ns, metrics.LabelJobName, job, metrics.LabelTask, task, metrics.LabelNode, "n1"}
	cl := labels.FromStrings(append([]string{labels.MetricName, metrics.TaskCPUUsageSecondsTotal}, base...)...)
	ml := labels.FromStrings(append([]string{labels.MetricName, metrics.TaskMemoryWorkingSetBytes}, base...)...)
	total := 0.0
	for ts := from; ts.Before(to); ts = ts.Add(step) {
		total += cpu * step.Seconds()
		if _, err := app.Append(0, cl, ts.UnixMilli(), total); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Append(0, ml, ts.UnixMilli(), mem); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestFirstRecommendationWithDefaultWindows: with the production 5-minute
// windows and the agents' 10-s pushes, a task that has run 50 s has no
// recommendation yet; at 70 s it has a provisional one from its partial
// window (low confidence, limit twice the peak), before any window is
// complete.
func TestFirstRecommendationWithDefaultWindows(t *testing.T) {
	ms, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	// Start 40 s into a window, so the first window completes only after
	// 4 min 20 s.
	start := time.Now().Truncate(5 * time.Minute).Add(-5*time.Minute + 40*time.Second)
	fillTask(t, ms, "ns", "api", "api-x1-0", start, start.Add(3*time.Minute), 10*time.Second, 0.25, 80<<20)
	rs, err := NewRightSizer(RightSizingOptions{History: storeHistory(ms, 5*time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	key := predictor.TaskKey{Namespace: "ns", Job: "api", Task: 0}
	now := start.Add(50 * time.Second)
	if err := rs.update(t.Context(), key, now); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Predictor().Recommend(key, now); err == nil {
		t.Fatal("a recommendation after 50 s of usage; want none before 60 s")
	}
	now = start.Add(70 * time.Second)
	if err := rs.update(t.Context(), key, now); err != nil {
		t.Fatal(err)
	}
	rec, err := rs.Predictor().Recommend(key, now)
	if err != nil {
		t.Fatalf("no recommendation after 70 s of usage: %v", err)
	}
	t.Logf("after 70 s: request %+v limit %+v confidence %.4f: %s", rec.Request, rec.Limit, rec.Confidence, rec.Why)
	if !strings.Contains(rec.Why, "provisional") || rec.Confidence > 0.01 {
		t.Errorf("recommendation %q with confidence %.4f; want a provisional one with confidence near 0", rec.Why, rec.Confidence)
	}
	if rec.Request.Memory != 80<<20 || rec.Limit.Memory < 1.8*(80<<20) || rec.Limit.Memory > 2.01*(80<<20) {
		t.Errorf("memory request %.0f limit %.0f; want the 80 MiB peak and about twice it", rec.Request.Memory, rec.Limit.Memory)
	}
	if math.Abs(rec.Request.CPU-0.25) > 0.02 || rec.Limit.CPU < 0.45 {
		t.Errorf("cpu request %.3f limit %.3f; want 0.25 and about twice it", rec.Request.CPU, rec.Limit.CPU)
	}
	// The margin narrows as usage accumulates (3 minutes of it).
	later := start.Add(3 * time.Minute)
	if err := rs.update(t.Context(), key, later); err != nil {
		t.Fatal(err)
	}
	rec2, err := rs.Predictor().Recommend(key, later)
	if err != nil || rec2.Limit.Memory >= rec.Limit.Memory || rec2.Limit.Memory < 80<<20 {
		t.Errorf("after 3 min: limit %.0f (%v); want below %.0f and above the peak", rec2.Limit.Memory, err, rec.Limit.Memory)
	}
}

// TestColdStartSizesNewJobsAfterRetrain: twelve jobs' usage in a real
// embedded store (the cold-start model is served only once its held-out
// error over at least models.MinGateExamples past jobs beats the median's);
// a retrain learns their sizes and fits the cold-start model; a new job
// with a similar name is then sized by it (not by the default), the
// recommendation service says so, and a restarted right-sizer restores the
// model from the store.
func TestColdStartSizesNewJobsAfterRetrain(t *testing.T) {
	ms, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	now := time.Now().Truncate(time.Minute)
	rs, err := NewRightSizer(RightSizingOptions{History: storeHistory(ms, time.Minute), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := startServer(t, Options{RightSizer: rs, RemoteWriteHTTPPort: "9999"})
	jobs := []struct {
		name, typ string
		cpu, mem  float64
	}{
		{"web-frontend", "service", 0.2, 100 << 20}, {"web-backend", "service", 0.3, 120 << 20},
		{"web-search", "service", 0.25, 110 << 20}, {"web-cart", "service", 0.2, 105 << 20},
		{"web-login", "service", 0.3, 115 << 20}, {"web-static", "service", 0.2, 100 << 20},
		{"etl-nightly", "batch", 2, 2 << 30}, {"etl-hourly", "batch", 1.5, 1.5 * (1 << 30)},
		{"etl-daily", "batch", 2, 1.8 * (1 << 30)}, {"etl-backfill", "batch", 1.8, 2 << 30},
		{"etl-export", "batch", 1.5, 1.6 * (1 << 30)}, {"etl-import", "batch", 1.7, 1.7 * (1 << 30)},
	}
	for _, j := range jobs {
		created, err := h.jobs.CreateJob(t.Context(), &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{
			Name: j.name, Namespace: "team-a", Type: j.typ, Task: &fathomv1.TaskSpec{Command: []string{"sleep", "60"}}}})
		if err != nil {
			t.Fatal(err)
		}
		fillTask(t, ms, "team-a", j.name, created.GetId()+"-0", now.Add(-40*time.Minute), now, 5*time.Second, j.cpu, j.mem)
	}
	newTask := controller.Spec{Namespace: "team-a", Name: "web-checkout", Type: "service", Priority: "batch"}
	if z := startSizes(t, rs, newTask, 0, now); !strings.Contains(z.Source, "default") {
		t.Fatalf("before any retrain a new job is sized by %q; want the default", z.Source)
	}
	code, body := h.do("POST", "/v1/models:retrain", `{"namespace":"team-a","since":"`+now.Add(-40*time.Minute).UTC().Format(time.RFC3339)+`"}`)
	if code != 200 {
		t.Fatalf("retrain = %d %v", code, body)
	}
	z := startSizes(t, rs, newTask, 0, now)
	t.Logf("web-checkout sized: %+v", z)
	if !strings.HasPrefix(z.Source, "cold-start model") {
		t.Fatalf("after a retrain a new job is sized by %q; want the cold-start model", z.Source)
	}
	// Like the web jobs (≈ 100-120 MiB), far from the etl jobs (≥ 1.5 GiB).
	if z.MemoryRequest < 64<<20 || z.MemoryRequest > 400<<20 {
		t.Errorf("memory request %d MiB; want near the web jobs' 100-120 MiB", z.MemoryRequest>>20)
	}
	if etl := startSizes(t, rs, controller.Spec{Namespace: "team-a", Name: "etl-weekly", Type: "batch", Priority: "batch"}, 0, now); etl.MemoryRequest < 1<<30 {
		t.Errorf("etl-weekly memory request %d MiB; want near the etl jobs' 1.5-2 GiB", etl.MemoryRequest>>20)
	}
	// The model is a version in the registry, with its figures.
	_, body = h.do("GET", "/v1/models", "")
	found := false
	for _, m := range body["models"].([]any) {
		mm := m.(map[string]any)
		if mm["kind"] == "coldstart" {
			found = true
			if figs, _ := mm["metrics"].(map[string]any); figs["examples"] != float64(len(jobs)) {
				t.Errorf("cold-start model figures %v; want %d examples", figs, len(jobs))
			}
		}
	}
	if !found {
		t.Errorf("no cold-start model in GET /v1/models: %v", body)
	}
	// A new job's recommendation row says where its sizes come from.
	created, err := h.jobs.CreateJob(t.Context(), &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{
		Name: "web-checkout", Namespace: "team-a", Type: "service", Task: &fathomv1.TaskSpec{Command: []string{"sleep", "60"}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, body = h.do("GET", "/v1/recommendations?job="+created.GetId(), "")
	recs, _ := body["recommendations"].([]any)
	if len(recs) != 2 || recs[0].(map[string]any)["model"] != "coldstart" || !strings.Contains(recs[0].(map[string]any)["why"].(string), "cold-start model") {
		t.Errorf("recommendations of the new job: %v; want model coldstart and why naming it", body)
	}
	// A restarted server restores the model.
	rs2, err := NewRightSizer(RightSizingOptions{History: storeHistory(ms, time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.restoreColdStart(t.Context(), rs2); err != nil {
		t.Fatal(err)
	}
	if z2 := startSizes(t, rs2, newTask, 0, now); z2 != z {
		t.Errorf("restored model sizes %+v; want %+v", z2, z)
	}
}

// TestNewTasksAreLookedAtBetweenRounds: a running task is resized in place
// by a new-task pass as soon as it has a minute of usage (not before);
// once it has a recommendation, new-task passes leave it to the regular
// rounds.
func TestNewTasksAreLookedAtBetweenRounds(t *testing.T) {
	ms, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	rs, err := NewRightSizer(RightSizingOptions{History: storeHistory(ms, 5*time.Minute), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Truncate(time.Second)
	var mu sync.Mutex
	clock := base.Add(-55 * time.Second)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	h := startServer(t, Options{RightSizer: rs, RemoteWriteHTTPPort: "9999", Now: now, Controller: controller.Config{HeartbeatTimeout: time.Hour}})
	ctx := t.Context()
	a := h.agent("node-a", 4)
	created, err := h.jobs.CreateJob(ctx, &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{
		Name: "fresh", Namespace: "ns", Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetId() + "-0"
	as := a.next("the task", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 1 }).GetAssignments()[0]
	a.report(&fathomv1.TaskStatus{TaskId: id, State: fathomv1.TaskState_TASK_STATE_RUNNING, Pid: 42, Generation: as.GetGeneration()})
	for i := 0; h.task(created.GetId(), 0).GetState() != fathomv1.TaskState_TASK_STATE_RUNNING; i++ {
		if i > 100 {
			t.Fatal("task not running")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Pushes every 10 s from 100 s before base: at base−55 s that is 40 s
	// of usage, at base 90 s.
	fillTask(t, ms, "ns", "fresh", id, base.Add(-100*time.Second), base, 10*time.Second, 0.2, 50<<20)
	if err := h.srv.rightsizeRound(ctx, true); err != nil {
		t.Fatal(err)
	}
	h.round()
	if tk := h.task(created.GetId(), 0); tk.GetGeneration() != as.GetGeneration() || tk.GetMemoryLimitBytes() != 0 {
		t.Fatalf("after 40 s of usage: generation %d, memory limit %d; want untouched", tk.GetGeneration(), tk.GetMemoryLimitBytes())
	}
	mu.Lock()
	clock = base
	mu.Unlock()
	if err := h.srv.rightsizeRound(ctx, true); err != nil {
		t.Fatal(err)
	}
	h.round()
	tk := h.task(created.GetId(), 0)
	if tk.GetGeneration() <= as.GetGeneration() || tk.GetMemoryLimitBytes() < 50<<20 || !strings.Contains(tk.GetReason(), "resized in place") {
		t.Fatalf("after 90 s of usage: generation %d, memory limit %d, %q; want resized in place above the 50 MiB used", tk.GetGeneration(), tk.GetMemoryLimitBytes(), tk.GetReason())
	}
	decision := func() string { return h.decision(id) }
	if err := h.srv.rightsizeRound(ctx, true); err != nil {
		t.Fatal(err)
	}
	h.round()
	if d := decision(); !strings.HasPrefix(d, "resized") {
		t.Errorf("a new-task pass looked at a task with a recommendation: decision %q", d)
	}
	if err := h.srv.rightsizeRound(ctx, false); err != nil {
		t.Fatal(err)
	}
	h.round()
	if d := decision(); !strings.HasPrefix(d, "kept") {
		t.Errorf("a regular round: decision %q; want kept (within the deadband)", d)
	}
}

// TestAgentsToldToPushWithinTheUsageWindow: registration tells agents to
// push at least every third of the usage window, so each window holds
// several pushes whatever an agent's --push-interval.
func TestAgentsToldToPushWithinTheUsageWindow(t *testing.T) {
	ms, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	rs, err := NewRightSizer(RightSizingOptions{History: storeHistory(ms, time.Minute), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := startServer(t, Options{RightSizer: rs, RemoteWriteHTTPPort: "9999"})
	reg, err := h.agents.Register(t.Context(), &fathomv1.RegisterNodeRequest{Name: "node-z", CpuCores: 1, MemoryBytes: 1 << 30, Enforcement: "none"})
	if err != nil || reg.GetMaxPushIntervalSeconds() != 20 {
		t.Fatalf("register: max push interval %vs (%v), want 20s (a third of the 1-minute usage window)", reg.GetMaxPushIntervalSeconds(), err)
	}
}
