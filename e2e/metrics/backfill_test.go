package e2emetrics

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/metrics/dashboards"
	"github.com/fathom-scheduler/fathom/metrics/synth"
)

// TestBackfillRecordingRulesWithPromtool: history that arrived before the
// recording rules ran (an upgrade, a restore, a bulk import) has no recorded
// series, so the Job right-sizing dashboard would be empty over it. Debian's
// promtool backfills them as docs/metrics.md says: `promtool tsdb
// create-blocks-from rules` with the shipped rules file against the embedded
// store's API, the blocks moved into the store's directory, the store
// reopened. Then every Job right-sizing query has data, hours before any rule
// manager ran.
func TestBackfillRecordingRulesWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found; install Debian's prometheus (make deps-test) to run this test")
	}
	dir := t.TempDir()
	open := func() (*metrics.Store, *httptest.Server) {
		s, err := metrics.OpenStore(metrics.StoreOptions{Dir: dir, NoRecordingRules: true})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/api/v1/", s.Handler())
		return s, httptest.NewServer(mux)
	}
	s, srv := open()
	end := time.Now().Truncate(time.Minute)
	start := end.Add(-3 * time.Hour)
	series, err := synth.Generate(synth.Cluster{Namespace: "team-a", JobName: "web", Tasks: 3, Nodes: 2,
		Start: start, End: end, Step: 30 * time.Second, Seed: 5, Recommendations: true})
	if err != nil {
		t.Fatal(err)
	}
	app := s.Appender(context.Background())
	if err := metrics.AppendSeries(app, series); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	recorded := `count_over_time(fathom:task_cpu_usage_cores:rate5m{job_name="web"}[3h])`
	if v, err := s.Query(context.Background(), recorded, end); err != nil || v.String() != "" {
		t.Fatalf("before the backfill: %v %v", v, err)
	}

	blocks := t.TempDir()
	rules := filepath.Join(repoRoot(t), "deploy", "prometheus", metrics.RecordingRulesFile)
	out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "rules",
		"--start", fmt.Sprint(start.Unix()), "--end", fmt.Sprint(end.Unix()),
		"--url", srv.URL, "--output-dir", blocks, rules).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool tsdb create-blocks-from rules: %v\n%s", err, out)
	}
	srv.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(blocks)
	if err != nil || len(ents) == 0 {
		t.Fatalf("promtool wrote no blocks: %v\n%s", err, out)
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(blocks, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	s, srv = open()
	defer func() { srv.Close(); s.Close() }()

	// 36 evaluations at the group's 5 m interval over 3 h, for each task.
	p := promAPI(t, srv.URL)
	cnt, _, _, err := p.Query(context.Background(), recorded, end)
	if err != nil {
		t.Fatal(err)
	}
	if vec := cnt.(model.Vector); len(vec) != 3 || vec[0].Value < 34 {
		t.Fatalf("recorded CPU per task after the backfill: %v, want 3 tasks × ~36 evaluations", vec)
	}

	b, err := os.ReadFile(filepath.Join(repoRoot(t), "metrics", "dashboards", "job-rightsizing.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, qs, vars, err := dashboards.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	values, err := dashboards.Resolve(context.Background(), p, vars, nil, start, end)
	if err != nil {
		t.Fatal(err)
	}
	firstHour := model.TimeFromUnixNano(start.Add(time.Hour).UnixNano())
	for _, q := range qs {
		expr := dashboards.Substitute(q.Expr, values, "5m", "5m", "3h")
		if q.Instant {
			v, _, _, err := p.Query(context.Background(), expr, end)
			if err != nil || !hasData(v) {
				t.Errorf("%s / %s: %v %v\n  %s", q.Panel, q.RefID, v, err, expr)
			}
			continue
		}
		v, _, _, err := p.QueryRange(context.Background(), expr, promv1.Range{Start: start, End: end, Step: 5 * time.Minute})
		if err != nil {
			t.Errorf("%s / %s: %v\n  %s", q.Panel, q.RefID, err, expr)
			continue
		}
		old := false
		for _, ss := range v.(model.Matrix) {
			if len(ss.Values) > 0 && ss.Values[0].Timestamp < firstHour {
				old = true
			}
		}
		if !old {
			t.Errorf("%s / %s: no data in the first hour of the backfilled range\n  %s", q.Panel, q.RefID, expr)
		}
	}
}
