package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/metrics/bench"
)

// A small run of the real benchmark: it must ingest every sample it encodes,
// record the per-task rules over the history, and time every panel of the Job
// right-sizing dashboard, each returning data.
func TestSmallRun(t *testing.T) {
	r, err := bench.Run(context.Background(), bench.Options{
		Dir:         t.TempDir(),
		IngestTasks: 20, IngestNodes: 4, IngestMinutes: 1, IngestClients: 2,
		QueryTasks: 10, QueryHours: 3, QueryRuns: 3, QueryResolution: time.Minute, QueryStep: 5 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	// 60 s of 1 s samples: 20 tasks × 8 metrics + 4 nodes × 5 metrics.
	if want := 60 * (20*8 + 4*5); r.IngestSamples != want || r.IngestRequests != 6*4 {
		t.Errorf("ingest: %d samples in %d requests, want %d in 24", r.IngestSamples, r.IngestRequests, want)
	}
	if r.IngestSamplesPerSec <= 0 || r.RightSizingP99Ms <= 0 || r.RightSizingP99Ms < r.RightSizingP50Ms {
		t.Errorf("figures: %+v", r)
	}
	// The per-task rules evaluated over the fill every 5 m: 36 evaluations in
	// 3 h, each 12 per-task rules × 10 tasks + 10 per-job totals + 6 quantiles.
	if want := 36 * (12*10 + 10 + 6); r.QueryRecordedSamples != want {
		t.Errorf("recorded %d samples, want %d", r.QueryRecordedSamples, want)
	}
	if r.RightSizingVariableQueries != 4 || len(r.RightSizingVariablesMs) != 3 || r.QueryTopTasks != "10" || r.QueryPanelStepSeconds != 300 {
		t.Errorf("ranking variables, top, step: %+v", r)
	}
	// Every query returns data: one series per job for the job totals (three
	// quantiles for the error spread), one per task drawn ($top 10 = all 10
	// tasks here) for the per-task panels and the tables.
	want := map[string]int{"Job CPU": 4, "Job memory": 4, "Sizing error across the job's tasks": 6, "Tasks, OOM kills and evictions": 3,
		"CPU: worst-sized tasks": 50, "Memory: worst-sized tasks": 60, "CPU per task": 40, "Memory per task": 50,
		"Sizing error per task": 20, "Limit headroom used": 20, "OOM kills per task": 10}
	if len(r.Panels) != len(want) {
		t.Fatalf("want the %d panels of Job right-sizing, got %+v", len(want), r.Panels)
	}
	for _, p := range r.Panels {
		if p.Series != want[p.Title] {
			t.Errorf("panel %q: %d series from %d queries, want %d", p.Title, p.Series, p.Queries, want[p.Title])
		}
	}
}
