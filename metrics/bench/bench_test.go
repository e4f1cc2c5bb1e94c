package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/metrics/bench"
)

// A small run of the real benchmark: it must ingest every sample it encodes
// and time every panel of the Job right-sizing dashboard, each returning the
// series of every task.
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
	if len(r.Panels) != 6 {
		t.Fatalf("want the 6 panels of Job right-sizing, got %+v", r.Panels)
	}
	for _, p := range r.Panels {
		// Every query of a panel returns one series per task, except the
		// evictions panel (no evictions: one zero series).
		if p.Title != "Evictions" && p.Series != 10*p.Queries {
			t.Errorf("panel %q: %d series from %d queries, want %d", p.Title, p.Series, p.Queries, 10*p.Queries)
		}
	}
}
