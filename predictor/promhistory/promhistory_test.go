package promhistory_test

import (
	"context"
	"errors"
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

// TestAggregatedAgentLabelsAndPartialWindows writes usage as the agents
// push it (task label <job id>-<index>, one sample every 10 s, the peak
// since the last push) for two jobs of the same name one after the other,
// into the real embedded store, and reads it in process: the history of
// index 0 spans both jobs, index 1 is apart, the window the second job
// started in is partial, the one still filling is returned with its
// coverage, and the peak between pushes counts.
func TestAggregatedAgentLabelsAndPartialWindows(t *testing.T) {
	s, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir(), NoRecordingRules: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	w0 := time.Now().Truncate(5 * time.Minute).Add(-20 * time.Minute)
	var series []metrics.Series
	push := func(taskID string, from, to time.Time, cpu, ws, peak float64) {
		lbl := func(name string) map[string]string {
			return map[string]string{"__name__": name, "namespace": "team-a", "job_name": "web", "task": taskID, "node": "n1"}
		}
		c, m, p := metrics.Series{Labels: lbl(promhistory.CPUCounter)}, metrics.Series{Labels: lbl(promhistory.MemoryWorkingSet)}, metrics.Series{Labels: lbl(promhistory.MemoryPeak)}
		for ts := from; ts.Before(to); ts = ts.Add(10 * time.Second) {
			ms := ts.UnixMilli()
			c.Samples = append(c.Samples, metrics.Sample{TimestampMs: ms, Value: cpu * ts.Sub(from).Seconds()})
			m.Samples = append(m.Samples, metrics.Sample{TimestampMs: ms, Value: ws})
			p.Samples = append(p.Samples, metrics.Sample{TimestampMs: ms, Value: peak})
		}
		series = append(series, c, m, p)
	}
	// Job a1b2 ran index 0 for the first 10 minutes; job c3d4 (same name)
	// from minute 13, index 0 at 1 core with a 300 MiB peak between pushes,
	// and index 1 elsewhere.
	push("web-a1b2-0", w0, w0.Add(10*time.Minute), 0.5, 100<<20, 100<<20)
	push("web-c3d4-0", w0.Add(13*time.Minute), w0.Add(19*time.Minute), 1, 100<<20, 300<<20)
	push("web-c3d4-1", w0, w0.Add(19*time.Minute), 4, 1<<30, 1<<30)
	app := s.Appender(context.Background())
	if err := metrics.AppendSeries(app, series); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	h := promhistory.NewQuerier(promhistory.Store{Store: s}, promhistory.Options{UsePeak: true})
	task := predictor.TaskKey{Namespace: "team-a", Job: "web", Task: 0}
	now := w0.Add(17 * time.Minute)
	ag, err := h.Aggregated(context.Background(), task, w0, now)
	if err != nil {
		t.Fatal(err)
	}
	// Windows [0,5) and [5,10) full from job a1b2; [10,15) partial (job
	// c3d4 from minute 13: 2 minutes, less than half); [15,20) filling (2
	// minutes by now).
	if len(ag) != 4 {
		t.Fatalf("%d windows, want 4: %+v", len(ag), ag)
	}
	for i, want := range []struct {
		full      bool
		cpu, mem  float64
		coveredLo float64
	}{{true, 0.5, 100 << 20, 290}, {true, 0.5, 100 << 20, 300}, {false, 1, 300 << 20, 100}, {false, 1, 300 << 20, 120}} {
		a := ag[i]
		if !a.Start.Equal(w0.Add(time.Duration(i) * 5 * time.Minute)) {
			t.Errorf("window %d starts %s", i, a.Start)
		}
		if a.Full(5*time.Minute) != want.full || a.Covered < want.coveredLo || a.Covered > 300 {
			t.Errorf("window %d: covered %.0f s, full %v; want ≥ %.0f s, full %v", i, a.Covered, a.Full(5*time.Minute), want.coveredLo, want.full)
		}
		if math.Abs(a.CPU-want.cpu) > 0.01 || a.Memory != want.mem {
			t.Errorf("window %d: cpu %.3f memory %.0f; want %.2f and %.0f (index 1's 4 cores and 1 GiB must not leak in)", i, a.CPU, a.Memory, want.cpu, want.mem)
		}
	}
	// Windows (predictor.History) returns only the full complete windows.
	ws, err := h.Windows(context.Background(), task, w0, now.Truncate(5*time.Minute))
	if err != nil || len(ws) != 2 {
		t.Errorf("Windows: %d, %v; want the 2 full windows", len(ws), err)
	}
	// Usage by task id: the latest working set, the rate over the last minute.
	cpu, mem, err := h.Usage(context.Background(), "web-c3d4-1", w0.Add(18*time.Minute))
	if err != nil || math.Abs(cpu-4) > 0.01 || mem != 1<<30 {
		t.Errorf("usage of web-c3d4-1: %.3f cores, %.0f bytes, %v; want 4 and 1 GiB", cpu, mem, err)
	}
	if _, _, err := h.Usage(context.Background(), "nope-0", now); !errors.Is(err, promhistory.ErrNoUsage) {
		t.Errorf("usage of an unknown task: %v, want ErrNoUsage", err)
	}
}
