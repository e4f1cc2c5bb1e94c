package sim

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/predictor/promhistory"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

// TestExportFromEmbeddedStore writes two tasks' usage and requests into the
// real embedded store (TSDB, PromQL, Prometheus HTTP API), exports them in
// Fathom's format through the Prometheus client, and replays the result.
func TestExportFromEmbeddedStore(t *testing.T) {
	s, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir(), NoRecordingRules: true})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", s.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); s.Close() })

	start := time.Now().Add(-3 * time.Hour).Truncate(Step)
	lbl := func(name, job, prio string) map[string]string {
		return map[string]string{"__name__": name, "namespace": "team-a", "job_name": job, "task": "0", "node": "n1", "priority": prio}
	}
	var series []metrics.Series
	for _, task := range []struct {
		job, prio string
		rate, mem float64
	}{{"web", "prod", 0.5, 200e6}, {"etl", "batch", 2, 1e9}} {
		cpu := metrics.Series{Labels: lbl(promhistory.CPUCounter, task.job, task.prio)}
		mem := metrics.Series{Labels: lbl(promhistory.MemoryWorkingSet, task.job, task.prio)}
		req := metrics.Series{Labels: lbl("fathom_task_cpu_request_cores", task.job, task.prio)}
		c := 0.0
		for i := 0; i <= 2*3600/10; i++ {
			ts := start.Add(time.Duration(i) * 10 * time.Second).UnixMilli()
			if i > 0 {
				c += task.rate * 10
			}
			cpu.Samples = append(cpu.Samples, metrics.Sample{TimestampMs: ts, Value: c})
			mem.Samples = append(mem.Samples, metrics.Sample{TimestampMs: ts, Value: task.mem})
			req.Samples = append(req.Samples, metrics.Sample{TimestampMs: ts, Value: 4 * task.rate})
		}
		series = append(series, cpu, mem, req)
	}
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
	if st.Tasks != 2 || st.Rows != 48 {
		t.Fatalf("exported %d tasks, %d rows; want 2 tasks of 24 windows", st.Tasks, st.Rows)
	}
	rows, _, err := trace.ReadFathom(&buf)
	if err != nil {
		t.Fatal(err)
	}
	etl := rows[5] // sorted: etl before web
	if etl.Job != "etl" || etl.Priority != "batch" || etl.Memory != 1e9 || etl.CPU < 1.9 || etl.CPU > 2.1 || etl.CPURequest != 8 {
		t.Fatalf("etl row %+v: want ~2 cores, 1e9 bytes, request 8 cores, batch", etl)
	}
	web := rows[30]
	if web.Job != "web" || web.Priority != "prod" || web.CPU < 0.45 || web.CPU > 0.55 || web.Memory != 200e6 {
		t.Fatalf("web row %+v", web)
	}
	for i := 1; i < 24; i++ {
		if d := rows[i].Time.Sub(rows[i-1].Time); d != Step {
			t.Fatalf("row %d is %v after row %d; want 5-minute windows (%s)", i, d, i-1, strconv.Quote(rows[i].Job))
		}
	}
	// What was exported replays.
	w, err := FromSeries("export", trace.FathomSeries(rows), scheduler.Batch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(w, Options{Policies: []string{"vpa", "fathom", PolicyOracle}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Export(context.Background(), promv1.NewAPI(client), start, start, trace.NewFathomWriter(&buf), nil); err == nil {
		t.Fatal("an empty range must be refused")
	}
}
