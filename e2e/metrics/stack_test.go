package e2emetrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/fathom-scheduler/fathom/metrics/dashboards"
)

// fathomBin returns the fathom binary to run: $FATHOM_BIN, else bin/fathom
// (make test builds it first), else — with FATHOM_LONG=1 — one built now into
// a temp dir (a cold build takes minutes on a busy 2-core machine, past the
// package's time budget). Otherwise the test skips and says so.
var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

func fathomBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("FATHOM_BIN"); b != "" {
		return b
	}
	if b := filepath.Join(repoRoot(t), "bin", "fathom"); isExecutable(b) {
		t.Logf("using %s (make build refreshes it)", b)
		return b
	}
	if os.Getenv("FATHOM_LONG") != "1" {
		t.Skip("no fathom binary: run `make build` (bin/fathom), set FATHOM_BIN, or set FATHOM_LONG=1 to build one")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fathom-e2e-metrics-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "fathom")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/fathom")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/fathom: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// proc is a started fathom process whose output is kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(fathomBin(t), args...), out: &syncBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			out := p.out.String()
			if len(out) > 6000 {
				out = "…" + out[len(out)-6000:]
			}
			t.Logf("%s output:\n%s", name, out)
		}
	})
	return p
}

func waitOK(t *testing.T, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not OK within %s: %v", url, within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startStack runs a fathom server (with --prometheus-url when promURL is set,
// else its embedded store) and one agent pushing every 2 s, and submits a job
// of one `fathom burn` task. It returns the server's base URL.
func startStack(t *testing.T, promURL string) string {
	t.Helper()
	bin := fathomBin(t)
	dir := t.TempDir()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// Short usage windows (the agent pushes every 2 s) so that recommendations
	// are made and mature while the test runs: the predictor panels need them.
	// Recording rules every 2 s instead of the file's 30 s / 5 m, so that the
	// recorded series the dashboards read exist within the test.
	args := []string{"server", "--data-dir", filepath.Join(dir, "server"), "--http-addr", httpAddr, "--dns-addr", "", "--grpc-addr", "",
		"--usage-window", "10s", "--rightsizing-interval", "2s", "--rule-interval", "2s"}
	if promURL != "" {
		args = append(args, "--prometheus-url", promURL)
	}
	start(t, "server", args...)
	base := "http://" + httpAddr
	waitOK(t, base+"/readyz", 60*time.Second)
	agentAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	start(t, "agent", "agent", "--server", httpAddr, "--name", "e2e-node", "--cpu", "2", "--memory", "2Gi",
		"--metrics-addr", agentAddr, "--advertise-addr", agentAddr, "--data-dir", filepath.Join(dir, "agent"),
		"--push-interval", "2s", "--log-level", "warn", "--stop-tasks-on-exit")
	waitOK(t, "http://"+agentAddr+"/healthz", 30*time.Second)

	spec := fmt.Sprintf(`{"name":"burn","namespace":"e2e","type":"service","priority":"batch","replicas":1,
"task":{"command":[%q,"burn","--cpu","0.2","--memory","48Mi","--pattern","steady"],"resources":{"cpu":"500m","memory":"256Mi"}}}`, bin)
	cmd := exec.Command(bin, "job", "run", "-", "--server", base)
	cmd.Stdin = strings.NewReader(spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fathom job run: %v\n%s", err, out)
	}
	return base
}

// waitSeries polls query at base until it returns at least one sample.
func waitSeries(t *testing.T, p promv1.API, query string, within time.Duration) model.Vector {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v, _, _, err := p.Query(context.Background(), query, time.Now())
		if err == nil {
			if vec, ok := v.(model.Vector); ok && len(vec) > 0 {
				return vec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no result for %s within %s (last error %v)", query, within, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestStackWithRealPrometheus: server + agent + a fathom burn job against a real
// Prometheus. The task's usage series arrive in Prometheus by the agent's remote
// write, and fathom reads them back through the server, which proxies its
// /api/v1/ to --prometheus-url.
func TestStackWithRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus, a fathom server, an agent and a job (~30 s); skipped with -short")
	}
	t.Parallel()
	promURL := startPrometheus(t, "")
	base := startStack(t, promURL)

	prom := promAPI(t, promURL)
	sel := `{namespace="e2e",job_name="burn"}`
	ws := waitSeries(t, prom, `fathom_task_memory_working_set_bytes`+sel, 60*time.Second)
	if len(ws) != 1 || ws[0].Metric["task"] == "" || ws[0].Metric["node"] != "e2e-node" {
		t.Fatalf("working set series in Prometheus: %v", ws)
	}
	// The burn task touches 48 MiB; its working set shows it once it ramps up.
	deadline := time.Now().Add(30 * time.Second)
	for ws[0].Value < 32<<20 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		ws = waitSeries(t, prom, `fathom_task_memory_working_set_bytes`+sel, 10*time.Second)
	}
	if ws[0].Value < 32<<20 || ws[0].Value > 256<<20 {
		t.Errorf("burn --memory 48Mi: working set %v bytes", ws[0].Value)
	}
	cpu := waitSeries(t, prom, `rate(fathom_task_cpu_usage_seconds_total`+sel+`[20s])`, 40*time.Second)
	// Wide bounds: the machine is shared and burn ramps up; this checks the
	// path and the units, not burn's accuracy.
	if cpu[0].Value < 0.01 || cpu[0].Value > 0.6 {
		t.Errorf("burn --cpu 0.2: CPU rate %v cores", cpu[0].Value)
	}

	// Read back through the fathom server (its /api/v1/ is Prometheus's).
	viaServer := waitSeries(t, promAPI(t, base), `fathom_task_memory_working_set_bytes`+sel, 10*time.Second)
	if viaServer[0].Metric["task"] != ws[0].Metric["task"] {
		t.Errorf("through the server: %v, in Prometheus: %v", viaServer, ws)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		out, err := exec.Command(promtool, "query", "instant", base, `fathom_task_memory_working_set_bytes`+sel).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `job_name="burn"`) {
			t.Errorf("promtool through the server: %v\n%s", err, out)
		}
	}
}

// TestEveryPanelQueryAgainstALiveServer runs a server with its embedded store,
// an agent and a burn job, then every panel query of every committed
// dashboard against the server's /api/v1/ with the template variables
// resolved from the live data. Every query must return data; one that reads
// a metric the server does not export is reported with the missing names.
func TestEveryPanelQueryAgainstALiveServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fathom server, an agent and a job (~45 s); skipped with -short")
	}
	t.Parallel()
	base := startStack(t, "")
	p := promAPI(t, base)
	waitSeries(t, p, `fathom_task_memory_working_set_bytes{job_name="burn"}`, 60*time.Second)
	// rate() needs two self-scrapes (every 15 s) and the recording rules a
	// round (every 2 s here), the per-task ones with a recommendation.
	waitSeries(t, p, `namespace:fathom_task_cpu_slack_cores:sum and on() node:fathom_task_cpu_usage_cores:rate1m`, 70*time.Second)
	waitSeries(t, p, `namespace_job_name:fathom_predictor_recommended_memory_bytes:sum{job_name="burn"} and on() fathom:task_cpu_sizing_error:ratio5m{job_name="burn"}`, 70*time.Second)
	waitSeries(t, p, `count_over_time(fathom_node_up[1m]) > 1`, 40*time.Second)

	exported := exportedNames(t, base)
	nameRe := regexp.MustCompile(`fathom_[a-z0-9_]+`)
	var missing []string
	ran := 0
	for _, f := range dashboardFiles(t) {
		b, _ := os.ReadFile(f)
		_, qs, vars, err := dashboards.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		values := resolveVars(t, p, vars, 5*time.Minute)
		for _, q := range qs {
			ran++
			expr := dashboards.Substitute(q.Expr, values, "1m", "15s", "5m")
			v, err := runPanelQuery(p, q, expr, 5*time.Minute, 5*time.Second)
			if err != nil {
				t.Errorf("%s / %s: %v\n  %s", filepath.Base(f), q.Panel, err, expr)
				continue
			}
			if hasData(v) {
				continue
			}
			where := fmt.Sprintf("%s / %s / %s", filepath.Base(f), q.Panel, q.RefID)
			if readsOnlyAgentSeries(q.Expr) {
				t.Errorf("%s: no data\n  %s", where, expr)
				continue
			}
			var notExported []string
			for _, n := range nameRe.FindAllString(q.Expr, -1) {
				n = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
				if !exported[n] {
					notExported = append(notExported, n)
				}
			}
			if len(notExported) == 0 {
				t.Errorf("%s: no data although the server exports its metrics\n  %s", where, expr)
				continue
			}
			missing = append(missing, where+" (server does not export "+strings.Join(notExported, ", ")+")")
		}
	}
	sort.Strings(missing)
	t.Logf("%d panel queries ran; %d returned no data because the server does not export their metrics yet:\n  %s",
		ran, len(missing), strings.Join(missing, "\n  "))
	if len(missing) > 0 {
		t.Errorf("%d panel queries without data: every dashboard panel must show data for a running job", len(missing))
	}
}

// exportedNames are the metric family names on the server's /metrics.
func exportedNames(t *testing.T, base string) map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "# TYPE ") {
			names[strings.Fields(l)[2]] = true
		}
	}
	return names
}
