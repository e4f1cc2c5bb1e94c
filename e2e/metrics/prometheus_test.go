package e2emetrics

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/metrics/dashboards"
	"github.com/fathom-scheduler/fathom/metrics/synth"
)

// repoRoot is the module root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPrometheus runs a real Prometheus on a free loopback port with its
// remote-write receiver and Fathom's recording rules (evaluated every second),
// storing into a temp dir. It returns the base URL.
func startPrometheus(t *testing.T, extraConfig string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus binary not found; install Debian's prometheus (make deps-test) to run this test")
	}
	dir := t.TempDir()
	// deploy/prometheus's rules with every group at the 1 s evaluation
	// interval (the per-task group's own is 5 m).
	rb, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "prometheus", metrics.RecordingRulesFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rb, metrics.RecordingRules) {
		t.Fatalf("deploy/prometheus/%s differs from metrics/rules (make generate)", metrics.RecordingRulesFile)
	}
	fast, err := metrics.RecordingRulesEvery(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, metrics.RecordingRulesFile)
	if err := os.WriteFile(rules, fast, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
%s`, rules, extraConfig)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var logs bytes.Buffer
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.enable-remote-write-receiver",
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus on %s not ready after 30 s:\n%s", addr, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func promAPI(t *testing.T, base string) promv1.API {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: base})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(c)
}

// pushCluster pushes 20 minutes of two jobs on three nodes to url by real
// remote-write requests, one request per 10 s of samples, as agents push.
func pushCluster(t *testing.T, url string, now time.Time) {
	t.Helper()
	err := synth.Walk(synth.Cluster{Namespace: "team-a", Jobs: []string{"web", "etl"}, Tasks: 3, Nodes: 3,
		Start: now.Add(-20 * time.Minute), End: now, Seed: 7}, 1, func(b []metrics.Series) error {
		body, err := metrics.EncodeWriteRequest(b)
		if err != nil {
			return err
		}
		return metrics.PushWrite(context.Background(), nil, url, body)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRealPrometheusReceivesRemoteWrite pushes what agents push to a real
// Prometheus's remote-write receiver, reads it back over its HTTP API, and runs
// the panel queries of the committed dashboards that read agent series (task
// and node usage, and the recording rules over them) against it.
func TestRealPrometheusReceivesRemoteWrite(t *testing.T) {
	base := startPrometheus(t, "")
	now := time.Now()
	pushCluster(t, base+"/api/v1/write", now)
	ctx := context.Background()
	p := promAPI(t, base)

	v, _, _, err := p.Query(ctx, `fathom_task_memory_working_set_bytes{namespace="team-a",job_name="web"}`, now)
	if err != nil {
		t.Fatal(err)
	}
	vec := v.(model.Vector)
	if len(vec) != 3 {
		t.Fatalf("want 3 web tasks' working set, got %v", vec)
	}
	for _, s := range vec {
		if s.Metric["task"] == "" || s.Metric["node"] == "" || s.Metric["job_name"] != "web" || s.Value < 16<<20 {
			t.Errorf("unexpected series %v", s)
		}
	}
	m, _, _, err := p.QueryRange(ctx, `sum by (task) (rate(fathom_task_cpu_usage_seconds_total{job_name="etl"}[1m]))`,
		promv1.Range{Start: now.Add(-15 * time.Minute), End: now, Step: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if mm := m.(model.Matrix); len(mm) != 3 || len(mm[0].Values) < 25 {
		t.Fatalf("rate over 15 min: %v", mm)
	}

	// Recording rules from deploy/prometheus run in the real Prometheus too
	// (all three groups, which are evaluated independently). Rounds that ran
	// while the history was still arriving may hold the per-task limits but
	// not yet the CPU rates (two samples in 5 m), so wait for a round with both.
	deadline := time.Now().Add(30 * time.Second)
	for _, rule := range []string{`node:fathom_task_cpu_usage_cores:rate1m`, `namespace:fathom_task_cpu_slack_cores:sum`, `namespace_job_name:fathom_task_memory_sizing_error:quantile`,
		`count_over_time(fathom:task_cpu_usage_cores:rate5m[15s]) and count_over_time(fathom:task_cpu_limit_cores:max5m[15s]) and count_over_time(fathom:task_memory_limit_bytes:max5m[15s])`} {
		for {
			v, _, _, err := p.Query(ctx, rule, time.Now())
			if err == nil && len(v.(model.Vector)) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("recording rule %s: %v %v", rule, v, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}

	// The dashboards' agent-side panels work unchanged against Prometheus 2.42.
	ran := 0
	for _, f := range dashboardFiles(t) {
		b, _ := os.ReadFile(f)
		_, qs, vars, err := dashboards.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		values := resolveVars(t, p, vars, 20*time.Minute)
		for _, q := range qs {
			if !readsOnlyAgentSeries(q.Expr) {
				continue
			}
			ran++
			expr := dashboards.Substitute(q.Expr, values, "1m", "15s", "20m")
			v, err := runPanelQuery(p, q, expr, 20*time.Minute, 15*time.Second)
			if err != nil {
				t.Errorf("%s / %s: %v\n  %s", filepath.Base(f), q.Panel, err, expr)
			} else if !hasData(v) {
				t.Errorf("%s / %s: no data\n  %s", filepath.Base(f), q.Panel, expr)
			}
		}
	}
	if ran < 20 {
		t.Errorf("only %d agent-side panel queries found", ran)
	}
	t.Logf("%d agent-side panel queries returned data from Prometheus 2.42", ran)
}

// TestPromtoolQueriesTheEmbeddedStore runs Debian's promtool against the
// embedded store, as the acceptance check does against a server.
func TestPromtoolQueriesTheEmbeddedStore(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found; install Debian's prometheus (make deps-test) to run this test")
	}
	s, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", s.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	now := time.Now()
	pushCluster(t, srv.URL+"/api/v1/write", now)

	out, err := exec.Command(promtool, "query", "instant", srv.URL, "fathom_task_memory_working_set_bytes").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool query instant: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 6 {
		t.Fatalf("want 6 series (2 jobs × 3 tasks), promtool printed:\n%s", out)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "fathom_task_memory_working_set_bytes{") || !strings.Contains(l, `job_name="`) || !strings.Contains(l, " => ") {
			t.Errorf("unexpected promtool line %q", l)
		}
	}
	out, err = exec.Command(promtool, "query", "range", "--start="+now.Add(-10*time.Minute).Format(time.RFC3339), "--end="+now.Format(time.RFC3339),
		"--step=1m", srv.URL, `sum(rate(fathom_task_cpu_usage_seconds_total[1m]))`).CombinedOutput()
	if err != nil || !strings.Contains(string(out), " @[") {
		t.Errorf("promtool query range: %v\n%s", err, out)
	}
	out, err = exec.Command(promtool, "query", "labels", srv.URL, "job_name").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "etl\nweb" {
		t.Errorf("promtool query labels job_name: %v\n%s", err, out)
	}
}

func dashboardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "metrics", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no committed dashboards: %v", err)
	}
	return files
}

func resolveVars(t *testing.T, p promv1.API, vars []dashboards.Variable, rng time.Duration) map[string][]string {
	t.Helper()
	now := time.Now()
	values, err := dashboards.Resolve(context.Background(), p, vars, nil, now.Add(-rng), now)
	if err != nil {
		t.Fatal(err)
	}
	return values
}

// runPanelQuery runs a panel query as Grafana does over the last rng: tables
// as an instant query at the end, others as a range query every step.
func runPanelQuery(p promv1.API, q dashboards.PanelQuery, expr string, rng, step time.Duration) (model.Value, error) {
	now := time.Now()
	if q.Instant {
		v, _, _, err := p.Query(context.Background(), expr, now)
		return v, err
	}
	v, _, _, err := p.QueryRange(context.Background(), expr, promv1.Range{Start: now.Add(-rng), End: now, Step: step})
	return v, err
}

// readsOnlyAgentSeries: queries over fathom_task_*/fathom_node_* series that
// agents push (and the rules over them), not the control plane's own metrics.
func readsOnlyAgentSeries(expr string) bool {
	for _, cp := range []string{"fathom_scheduler_", "fathom_predictor_", "predictor_recommended", "fathom_api_", "fathom_node_up", "fathom_node_schedulable", "fathom_node_last_heartbeat"} {
		if strings.Contains(expr, cp) {
			return false
		}
	}
	return true
}

func hasData(v model.Value) bool {
	if vec, ok := v.(model.Vector); ok {
		for _, s := range vec {
			if !math.IsNaN(float64(s.Value)) {
				return true
			}
		}
		return false
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return false
	}
	for _, s := range m {
		for _, p := range s.Values {
			if !math.IsNaN(float64(p.Value)) {
				return true
			}
		}
	}
	return false
}
