package promhistory_test

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/predictor/promhistory"
)

// TestWindowsFromEmbeddedStore writes two hours of one task's usage into
// the real embedded store (Prometheus TSDB + PromQL + HTTP API), reads it
// back through the Prometheus HTTP client, and checks the windows against
// predictor.Aggregate of the very same raw samples.
func TestWindowsFromEmbeddedStore(t *testing.T) {
	s, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir(), NoRecordingRules: true})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", s.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); s.Close() })

	task := predictor.TaskKey{Namespace: "team-a", Job: "web", Task: 2}
	other := predictor.TaskKey{Namespace: "team-a", Job: "web", Task: 3}
	start := time.Now().Add(-3 * time.Hour).Truncate(5 * time.Minute)
	var raw []predictor.Sample
	var cpu, mem, cpuO metrics.Series
	lbl := func(name string, k predictor.TaskKey) map[string]string {
		return map[string]string{"__name__": name, "namespace": k.Namespace, "job_name": k.Job, "task": itoa(k.Task), "node": "n1"}
	}
	cpu.Labels = lbl(promhistory.CPUCounter, task)
	mem.Labels = lbl(promhistory.MemoryWorkingSet, task)
	cpuO.Labels = lbl(promhistory.CPUCounter, other)
	c := 0.0
	for i := 0; i <= 2*3600/10; i++ {
		ts := start.Add(time.Duration(i) * 10 * time.Second)
		rate := 0.5
		if i >= 360 && i < 390 { // a 5-minute burst in the second hour
			rate = 2
		}
		if i > 0 {
			c += rate * 10
		}
		m := 100e6 + float64(i%30)*1e6
		raw = append(raw, predictor.Sample{Time: ts, CPUSeconds: c, Memory: m})
		cpu.Samples = append(cpu.Samples, metrics.Sample{TimestampMs: ts.UnixMilli(), Value: c})
		mem.Samples = append(mem.Samples, metrics.Sample{TimestampMs: ts.UnixMilli(), Value: m})
		cpuO.Samples = append(cpuO.Samples, metrics.Sample{TimestampMs: ts.UnixMilli(), Value: 100 * c})
	}
	app := s.Appender(context.Background())
	if err := metrics.AppendSeries(app, []metrics.Series{cpu, mem, cpuO}); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	client, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	h := promhistory.New(promv1.NewAPI(client), promhistory.Options{})
	end := start.Add(2 * time.Hour)
	got, err := h.Windows(context.Background(), task, start, end)
	if err != nil {
		t.Fatal(err)
	}
	want, err := predictor.Aggregate(raw, 5*time.Minute, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 24 || len(want) != 24 {
		t.Fatalf("%d windows from PromQL, %d from Aggregate; want 24 each", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Start.Equal(w.Start) {
			t.Fatalf("window %d starts %s, Aggregate %s", i, g.Start, w.Start)
		}
		// rate() over (end-5m, end] also sees the sample at the window's
		// end, whose interval Aggregate counts in the next window: allow one
		// 10-s interval at the burst rate (2/30) plus 5%.
		if math.Abs(g.CPU-w.CPU) > 2.0/30+0.05*w.CPU {
			t.Errorf("window %d: cpu %.3f, Aggregate %.3f", i, g.CPU, w.CPU)
		}
		if g.Memory != w.Memory {
			t.Errorf("window %d: memory %.0f, Aggregate %.0f", i, g.Memory, w.Memory)
		}
		if g.CPUPeak < g.CPU-1e-9 {
			t.Errorf("window %d: peak %.3f below mean %.3f", i, g.CPUPeak, g.CPU)
		}
	}
	// The burst window (minutes 60-65) reads 2 cores; the others 0.5.
	if b := got[12]; b.CPU < 1.8 || b.CPUPeak < 1.9 {
		t.Errorf("burst window %+v, want cpu ≈ 2", b)
	}
	// A range with no data gives no windows, not an error.
	none, err := h.Windows(context.Background(), predictor.TaskKey{Namespace: "x", Job: "y"}, start, end)
	if err != nil || len(none) != 0 {
		t.Errorf("unknown task: %d windows, %v", len(none), err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
