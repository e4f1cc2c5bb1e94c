package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/metrics/synth"
)

// startStore opens a store in a temp dir and serves it as the server does.
func startStore(t *testing.T, opts metrics.StoreOptions) (*metrics.Store, *httptest.Server) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := metrics.OpenStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", s.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s, srv
}

func push(t *testing.T, base string, series []metrics.Series) {
	t.Helper()
	body, err := metrics.EncodeWriteRequest(series)
	if err != nil {
		t.Fatal(err)
	}
	if err := metrics.PushWrite(context.Background(), nil, base+"/api/v1/write", body); err != nil {
		t.Fatal(err)
	}
}

func client(t *testing.T, base string) promv1.API {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: base})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(c)
}

func TestRemoteWriteThenQueryOverHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	// No recording rules: they would append samples of their own.
	_, srv := startStore(t, metrics.StoreOptions{Registerer: reg, NoRecordingRules: true})
	now := time.Now().Truncate(time.Second)
	start := now.Add(-10 * time.Minute)
	// Push in 10-sample chunks, as an agent pushing every 10 s would.
	err := synth.Walk(synth.Cluster{Tasks: 3, Nodes: 2, Start: start, End: now, Seed: 1}, 10, func(b []metrics.Series) error {
		push(t, srv.URL, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := client(t, srv.URL)

	v, warn, _, err := c.Query(ctx, `fathom_task_memory_working_set_bytes{namespace="team-a",job_name="web"}`, now)
	if err != nil || len(warn) > 0 {
		t.Fatalf("query: %v %v", err, warn)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 3 {
		t.Fatalf("want 3 series (one per task), got %T %v", v, v)
	}
	for _, s := range vec {
		if s.Metric["node"] == "" || s.Metric["task"] == "" || s.Value < 16<<20 {
			t.Errorf("unexpected sample %v", s)
		}
	}

	// rate over a counter pushed by remote write: the synthetic tasks use about 0.05–0.7 cores.
	v, _, _, err = c.QueryRange(ctx, `sum by (task) (rate(fathom_task_cpu_usage_seconds_total[1m]))`,
		promv1.Range{Start: start.Add(2 * time.Minute), End: now, Step: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := v.(model.Matrix)
	if len(m) != 3 {
		t.Fatalf("query_range: want 3 series, got %d", len(m))
	}
	for _, s := range m {
		if len(s.Values) < 10 {
			t.Errorf("%v: only %d points", s.Metric, len(s.Values))
		}
		for _, p := range s.Values {
			if p.Value < 0.02 || p.Value > 1 {
				t.Errorf("%v: rate %v outside the generated range", s.Metric, p.Value)
			}
		}
	}

	names, _, _, err := c.LabelNames(ctx, nil, start, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"__name__", "job_name", "namespace", "node", "task"} {
		if !contains(toStrings(names), want) {
			t.Errorf("labels: %q missing from %v", want, names)
		}
	}
	vals, _, _, err := c.LabelValues(ctx, "job_name", nil, start, now)
	if err != nil || len(vals) != 1 || vals[0] != "web" {
		t.Errorf("label/job_name/values = %v, %v", vals, err)
	}
	series, _, _, err := c.Series(ctx, []string{`fathom_node_cpu_capacity_cores`}, start, now)
	if err != nil || len(series) != 2 {
		t.Errorf("series: want 2 nodes, got %v %v", series, err)
	}
	bi, err := c.Buildinfo(ctx)
	if err != nil || !strings.HasPrefix(bi.Version, "3.") {
		t.Errorf("buildinfo = %+v, %v", bi, err)
	}
	if _, err := c.Metadata(ctx, "", ""); err != nil {
		t.Errorf("metadata: %v", err)
	}

	// The store counts what the remote-write handler received.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var appended float64
	for _, mf := range mfs {
		if mf.GetName() == "prometheus_tsdb_head_samples_appended_total" {
			for _, m := range mf.Metric {
				appended += m.GetCounter().GetValue()
			}
		}
	}
	// 3 tasks * 8 metrics + 2 nodes * 5 metrics, 61 samples each.
	if want := float64((3*8 + 2*5) * 61); appended != want {
		t.Errorf("samples appended = %v, want %v", appended, want)
	}
}

func TestQueryByPOSTAndFormatQuery(t *testing.T) {
	_, srv := startStore(t, metrics.StoreOptions{})
	now := time.Now()
	push(t, srv.URL, []metrics.Series{{
		Labels:  map[string]string{"__name__": metrics.TaskMemoryWorkingSetBytes, "namespace": "n", "job_name": "j", "task": "j-0", "node": "a"},
		Samples: []metrics.Sample{{TimestampMs: now.Add(-time.Second).UnixMilli(), Value: 42}},
	}})
	resp, err := http.PostForm(srv.URL+"/api/v1/query", url.Values{"query": {"fathom_task_memory_working_set_bytes"}})
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	decode(t, resp, &body)
	if body.Status != "success" || body.Data.ResultType != "vector" || len(body.Data.Result) != 1 || body.Data.Result[0].Value[1] != "42" {
		t.Fatalf("POST /api/v1/query: %+v", body)
	}
	resp, err = http.Get(srv.URL + "/api/v1/format_query?query=" + url.QueryEscape("sum(rate(x[5m]))by(a)"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Data string `json:"data"`
	}
	decode(t, resp, &f)
	if f.Data != "sum by (a) (rate(x[5m]))" {
		t.Errorf("format_query = %q", f.Data)
	}
}

func TestBadInputIsA400WithAReason(t *testing.T) {
	_, srv := startStore(t, metrics.StoreOptions{})
	resp, err := http.Get(srv.URL + "/api/v1/query?query=" + url.QueryEscape("sum(rate(x[5m])"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Status, ErrorType, Error string
	}
	decode(t, resp, &e)
	if resp.StatusCode != 400 || e.ErrorType != "bad_data" || !strings.Contains(e.Error, "parse error") {
		t.Errorf("bad query: %d %+v", resp.StatusCode, e)
	}
	// A remote-write body that is not snappy is refused with a 400, not a 500.
	err = metrics.PushWrite(context.Background(), nil, srv.URL+"/api/v1/write", []byte("not snappy"))
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("garbage write: %v", err)
	}
}

func TestDataSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := metrics.OpenStore(metrics.StoreOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	app := s.Appender(context.Background())
	series, err := synth.Generate(synth.Cluster{Tasks: 2, Start: now.Add(-time.Minute), End: now, Metrics: []string{metrics.TaskMemoryWorkingSetBytes}})
	if err != nil {
		t.Fatal(err)
	}
	if err := metrics.AppendSeries(app, series); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = metrics.OpenStore(metrics.StoreOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.Query(context.Background(), "count(fathom_task_memory_working_set_bytes)", now)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.String(); !strings.Contains(got, "=> 2 @") {
		t.Errorf("after reopen: %s", got)
	}
}

func TestOpenStoreRejectsBadOptions(t *testing.T) {
	for _, o := range []metrics.StoreOptions{{}, {Dir: t.TempDir(), Retention: -time.Hour},
		{Dir: t.TempDir(), RuleInterval: -time.Second}, {Dir: t.TempDir(), RuleInterval: time.Microsecond}} {
		_, err := metrics.OpenStore(o)
		if !errors.Is(err, metrics.ErrBadOptions) {
			t.Errorf("OpenStore(%+v) = %v, want ErrBadOptions", o, err)
		}
	}
}

func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v: %s", resp.Request.URL, err, b)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func toStrings(ns model.LabelNames) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = string(n)
	}
	return out
}
