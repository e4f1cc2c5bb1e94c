package sim

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/predictor/promhistory"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

// exportTask is one task's series in the store, labelled as an agent
// labels it.
type exportTask struct {
	job, id   string // job name; task label (the controller's task id)
	rate, mem float64
	req       float64 // CPU request, cores
}

// TestExportRoundTrip writes three tasks' usage and requests into the real
// embedded store (TSDB, PromQL, Prometheus HTTP API) under the labels the
// agents write — task="<job id>-<index>" as controller.TaskID names it, two
// replicas of one job and a job submitted again under the same name — then
// exports them through the Prometheus client in Fathom's format, reads the
// file back, and replays it: the replayed tasks are the predictor's tasks
// (namespace/job name/index), with the usage and requests that were stored.
func TestExportRoundTrip(t *testing.T) {
	s, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir(), NoRecordingRules: true})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", s.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); s.Close() })

	start := time.Now().Add(-3 * time.Hour).Truncate(Step)
	tasks := []exportTask{
		{"web", controller.TaskID("web-3f9a2c1b", 0), 0.5, 200e6, 1},
		{"web", controller.TaskID("web-3f9a2c1b", 1), 0.25, 300e6, 1},
		{"etl", controller.TaskID("etl-77aa00bb", 0), 2, 1e9, 8},
	}
	var series []metrics.Series
	for _, task := range tasks {
		lbl := func(name string) map[string]string {
			return map[string]string{"__name__": name, "namespace": "team-a", "job_name": task.job, "task": task.id, "node": "n1"}
		}
		cpu := metrics.Series{Labels: lbl(promhistory.CPUCounter)}
		mem := metrics.Series{Labels: lbl(promhistory.MemoryWorkingSet)}
		req := metrics.Series{Labels: lbl("fathom_task_cpu_request_cores")}
		mreq := metrics.Series{Labels: lbl("fathom_task_memory_request_bytes")}
		c := 0.0
		for i := 0; i <= 2*3600/10; i++ {
			ts := start.Add(time.Duration(i) * 10 * time.Second).UnixMilli()
			if i > 0 {
				c += task.rate * 10
			}
			cpu.Samples = append(cpu.Samples, metrics.Sample{TimestampMs: ts, Value: c})
			mem.Samples = append(mem.Samples, metrics.Sample{TimestampMs: ts, Value: task.mem})
			req.Samples = append(req.Samples, metrics.Sample{TimestampMs: ts, Value: task.req})
			mreq.Samples = append(mreq.Samples, metrics.Sample{TimestampMs: ts, Value: 2 * task.mem})
		}
		series = append(series, cpu, mem, req, mreq)
	}
	// Not tasks: no job_name, or a task label that is no task id.
	series = append(series,
		metrics.Series{Labels: map[string]string{"__name__": promhistory.CPUCounter, "namespace": "team-a", "task": "web-3f9a2c1b-0"},
			Samples: []metrics.Sample{{TimestampMs: start.UnixMilli(), Value: 1}}},
		metrics.Series{Labels: map[string]string{"__name__": promhistory.CPUCounter, "namespace": "team-a", "job_name": "x", "task": "web-x"},
			Samples: []metrics.Sample{{TimestampMs: start.UnixMilli(), Value: 1}}})
	app := s.Appender(context.Background())
	if err := metrics.AppendSeries(app, series); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	client, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st, err := Export(context.Background(), promv1.NewAPI(client), start, start.Add(2*time.Hour), trace.NewFathomWriter(&buf), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tasks != 3 || st.Rows != 72 {
		t.Fatalf("exported %d tasks, %d rows; want 3 tasks of 24 windows:\n%s", st.Tasks, st.Rows, buf.String())
	}
	rows, _, err := trace.ReadFathom(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	w, err := FromSeries("export", trace.FathomSeries(rows), scheduler.Batch)
	if err != nil {
		t.Fatal(err)
	}
	want := map[predictor.TaskKey]exportTask{
		{Namespace: "team-a", Job: "etl", Task: 0}: tasks[2],
		{Namespace: "team-a", Job: "web", Task: 0}: tasks[0],
		{Namespace: "team-a", Job: "web", Task: 1}: tasks[1],
	}
	if len(w.Tasks) != len(want) {
		t.Fatalf("replayed %d tasks; want %d", len(w.Tasks), len(want))
	}
	for _, rt := range w.Tasks {
		e, ok := want[rt.Key]
		if !ok {
			t.Fatalf("replayed task %v, not one of %v", rt.Key, want)
		}
		if len(rt.Windows) != 24 || len(rt.Provisioned) != 24 {
			t.Fatalf("%v: %d windows, %d provisioned sizes; want 24 of each", rt.Key, len(rt.Windows), len(rt.Provisioned))
		}
		for i, win := range rt.Windows {
			if i > 0 && win.Start.Sub(rt.Windows[i-1].Start) != Step {
				t.Fatalf("%v: window %d starts %v after the one before; want 5 minutes", rt.Key, i, win.Start.Sub(rt.Windows[i-1].Start))
			}
			if math.Abs(win.CPU-e.rate) > 0.05*e.rate || win.Memory != e.mem {
				t.Fatalf("%v window %d: %.3f cores, %.0f bytes; stored %.3f, %.0f", rt.Key, i, win.CPU, win.Memory, e.rate, e.mem)
			}
			if p := rt.Provisioned[i]; p.CPU != e.req || p.Memory != 2*e.mem {
				t.Fatalf("%v window %d: provisioned %+v; stored requests %v cores, %.0f bytes", rt.Key, i, p, e.req, 2*e.mem)
			}
		}
	}
	// The replay runs every policy on it; the provisioned policy runs the
	// exported requests as they were (footprint 1).
	rep, err := Run(w, Options{WarmUp: Step})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Tasks != 3 || r.Windows == 0 {
			t.Fatalf("%s %s: %d tasks, %d windows scored; want all 3", r.Policy, r.Resource, r.Tasks, r.Windows)
		}
		if r.Policy == PolicyProvisioned && math.Abs(r.Footprint-1) > 0.01 {
			t.Fatalf("provisioned %s footprint %v; want 1 (the exported requests)", r.Resource, r.Footprint)
		}
	}
	if _, err := Export(context.Background(), promv1.NewAPI(client), start, start, trace.NewFathomWriter(&buf), nil); err == nil {
		t.Fatal("an empty range must be refused")
	}
}

func TestTaskIndex(t *testing.T) {
	for label, want := range map[string]int{"web-3f9a2c1b-0": 0, "web-3f9a2c1b-12": 12, "a-b-c-7": 7, "3": 3} {
		if got, ok := promhistory.TaskIndex(label); !ok || got != want {
			t.Errorf("TaskIndex(%q) = %d, %v; want %d", label, got, ok, want)
		}
	}
	for _, label := range []string{"", "web", "web-", "-3", "web-x", "web-+3", "web-1e3", "web-99999999999"} {
		if got, ok := promhistory.TaskIndex(label); ok {
			t.Errorf("TaskIndex(%q) = %d; want no index", label, got)
		}
	}
}
