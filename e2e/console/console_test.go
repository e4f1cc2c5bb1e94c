package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/fathom-scheduler/fathom/internal/browser"
)

// bin is the fathom binary: $FATHOM_BIN, or built by TestMain.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	if runtime.GOOS != "linux" || testing.Short() {
		fmt.Println("e2e/console: skipped (needs Linux, and not -short)")
		os.Exit(0)
	}
	if b := os.Getenv("FATHOM_BIN"); b != "" {
		bin = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "fathom-e2e-console-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "fathom")
	build := exec.Command("go", "build", "-o", bin, "github.com/fathom-scheduler/fathom/cmd/fathom")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/console: building fathom:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
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

// dev is a running `fathom dev`.
type dev struct {
	api     string
	console string // the URL dev printed
	banner  []string
}

// startDev runs `fathom dev` on free loopback ports and waits for its
// banner and /readyz. Ctrl-C (SIGINT) at the end stops it and its tasks.
func startDev(t *testing.T) *dev {
	t.Helper()
	http, grpc, agent := freePort(t), freePort(t), freePort(t)
	for grpc == http || agent == http || agent == grpc {
		grpc, agent = freePort(t), freePort(t)
	}
	data := t.TempDir()
	cmd := exec.Command(bin, "dev", "--data-dir", data,
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", http), "--grpc-addr", fmt.Sprintf("127.0.0.1:%d", grpc),
		"--agent-addr", fmt.Sprintf("127.0.0.1:%d", agent), "--cpu", "2", "--memory", "4Gi",
		"--usage-window", "6s", "--rightsizing-interval", "3s", "--log-level", "warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt) // dev stops its tasks on Ctrl-C
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("fathom dev stderr:\n%s", lastLines(stderr.String(), 40))
		}
	})
	d := &dev{api: fmt.Sprintf("http://127.0.0.1:%d", http)}
	deadline := time.After(90 * time.Second)
	for d.console == "" || !strings.HasPrefix(strings.Join(d.banner, "\n"), "Console:") || len(d.banner) < 3 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("fathom dev exited before its banner:\n%s", stderr.String())
			}
			d.banner = append(d.banner, l)
			if u, ok := strings.CutPrefix(l, "Console: "); ok {
				d.console = strings.TrimSpace(u)
			}
		case <-deadline:
			t.Fatalf("no banner from fathom dev in 90s; got %q\n%s", d.banner, stderr.String())
		}
	}
	waitFor(t, 60*time.Second, "dev /readyz", func() bool {
		resp, err := httpGet(d.api + "/readyz")
		return err == nil && resp == "ok\n"
	})
	return d
}

func httpGet(u string) (string, error) {
	resp, err := http.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return string(b), err
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

type job struct {
	ID         string           `json:"id"`
	Name       string           `json:"name"`
	State      string           `json:"state"`
	TaskCounts map[string]int32 `json:"task_counts"`
	Deployment *struct {
		Version string `json:"version"`
		Status  string `json:"status"`
	} `json:"deployment"`
}

// submit posts an example spec the way `fathom job run` does.
func submit(t *testing.T, api, file string) job {
	t.Helper()
	spec, err := os.ReadFile(filepath.Join("..", "..", "examples", file))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(api+"/v1/jobs", "application/yaml", bytes.NewReader(spec))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %s: %s", file, resp.Status, b)
	}
	var out struct {
		Job job `json:"job"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Job
}

func getJob(t *testing.T, api, id string) job {
	t.Helper()
	b, err := httpGet(api + "/v1/jobs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	var j job
	if err := json.Unmarshal([]byte(b), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// shots writes screenshots to $FATHOM_SCREENSHOTS (make screenshots) or a
// temporary directory.
type shots struct {
	dir string
	mu  sync.Mutex
}

func (s *shots) take(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := filepath.Join(s.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", p, len(png))
}

// poll evaluates a JavaScript boolean expression until it is true.
func poll(t *testing.T, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := chromedp.Run(tctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
		txt, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main')?.innerText ?? ''`))
		t.Fatalf("%s: not within %s (%v); the page says:\n%s", what, timeout, err, lastLines(txt, 40))
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// TestConsole: fathom dev serves the console at the URL it prints first;
// headless Chromium shows the running job, its charts drawn from real
// samples, its tasks' placement, and stops it from the keyboard.
func TestConsole(t *testing.T) {
	s := &shots{dir: os.Getenv("FATHOM_SCREENSHOTS")}
	if s.dir == "" {
		s.dir = t.TempDir()
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := browser.New(t, 1280, 900) // skips without Chromium
	log := browser.Record(ctx)
	d := startDev(t)
	if !strings.HasPrefix(d.banner[0], "Console: http://127.0.0.1:") {
		t.Errorf("fathom dev's first line is %q, want the console URL", d.banner[0])
	}
	page, err := httpGetAccept(d.console, "text/html")
	if err != nil || !strings.Contains(page, `<script type="module" src="/assets/app.js">`) {
		t.Fatalf("GET %s: %v\n%s", d.console, err, page)
	}

	submitted := time.Now()
	web := submit(t, d.api, "web.yaml")
	burn := submit(t, d.api, "burn.yaml")
	waitFor(t, 60*time.Second, "web and burn running", func() bool {
		return getJob(t, d.api, web.ID).TaskCounts["running"] == 2 && getJob(t, d.api, burn.ID).TaskCounts["running"] == 1
	})

	// The jobs page lists both, live.
	if err := chromedp.Do(ctx, chromedp.Navigate(d.console)); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 30*time.Second, "the jobs page lists web and burn",
		fmt.Sprintf(`!!document.querySelector('#jobs-table tr[data-job=%q] a') && !!document.querySelector('#jobs-table tr[data-job=%q]')`, web.ID, burn.ID))
	if got := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('#jobs-table tr[data-job=%q] a').textContent`, web.ID)); got != "web" {
		t.Errorf("jobs table shows %q for the web job", got)
	}
	s.take(t, ctx, "console-jobs")

	// A job submitted now appears without a reload (the watch stream).
	third := submitJSON(t, d.api, `{"name":"sleepy","namespace":"demo","task":{"command":["sleep","600"]}}`)
	poll(t, ctx, 20*time.Second, "a new job appears live", fmt.Sprintf(`!!document.querySelector('#jobs-table tr[data-job=%q]')`, third.ID))

	// Open the web job with the keyboard: focus its link, press Enter.
	if err := chromedp.Do(ctx, chromedp.Focus(fmt.Sprintf(`#jobs-table tr[data-job=%q] a`, web.ID)), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 20*time.Second, "the job page", `document.querySelector('#job-name')?.textContent === 'web'`)
	if got := eval[string](t, ctx, `location.pathname`); got != "/jobs/"+web.ID {
		t.Errorf("job page at %s, want /jobs/%s", got, web.ID)
	}
	if got := eval[string](t, ctx, `document.activeElement?.id`); got != "job-name" {
		t.Errorf("after navigation the focus is on %q, want the page heading", got)
	}
	// The tasks' placement explanation and history, from the API.
	poll(t, ctx, 20*time.Second, "both tasks with where they run and why",
		`document.querySelectorAll('#tasks-table tbody tr').length === 2 && [...document.querySelectorAll('#tasks-table .reason')].every(td => td.textContent.length > 10) && document.querySelector('#tasks-table details summary')?.textContent.startsWith('History')`)
	// The rollout card: scaling web to 3 is version 2, a deployment that
	// replaces nothing (docs/deployments.md); the page shows what the API
	// reports.
	if resp, err := http.Post(d.api+"/v1/jobs/"+web.ID+":scale", "application/json", strings.NewReader(`{"replicas": 3}`)); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 {
		t.Fatalf("scale web: %s: %s", resp.Status, b)
	} else {
		resp.Body.Close()
	}
	waitFor(t, 30*time.Second, "web's rollout successful in the API", func() bool {
		j := getJob(t, d.api, web.ID)
		return j.Deployment != nil && j.Deployment.Status == "successful"
	})
	poll(t, ctx, 20*time.Second, "the rollout card with web's deployment", `document.querySelector('#rollout-status')?.textContent === 'successful' && document.querySelector('#job-rollout-h')?.textContent === 'Rollout' && document.querySelector('#job-rollout-h').parentElement.textContent.includes('1 → 2')`)
	poll(t, ctx, 30*time.Second, "the third task", `document.querySelectorAll('#tasks-table tbody tr').length === 3`)
	// The charts: request lines appear with the agent's first push (every
	// few seconds), usage with the second.
	poll(t, ctx, 90*time.Second, "the CPU and memory charts drawn from samples",
		`[...document.querySelectorAll('svg.chart')].length >= 2 && [...document.querySelectorAll('svg.chart')].every(s => Number(s.dataset.points) > 2 && s.querySelector('path.line.k-usage')?.getAttribute('d').includes('L'))`)
	// The sizing decisions: the predictor answers once the task has history.
	poll(t, ctx, 90*time.Second, "sizing decisions with why",
		`document.querySelectorAll('#recs-table tbody tr').length >= 2`)

	// Stop from the keyboard: the button opens a dialog, Enter confirms.
	if err := chromedp.Do(ctx, chromedp.Focus(`#stop-job`), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 5*time.Second, "the stop dialog", `document.querySelector('#stop-dialog').open`)
	if err := chromedp.Do(ctx, chromedp.Focus(`#stop-confirm`), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "web stopped through the console", func() bool {
		j := getJob(t, d.api, web.ID)
		return j.State == "JOB_STATE_STOPPED" && j.TaskCounts["stopped"] == 3
	})
	poll(t, ctx, 20*time.Second, "the page shows the job stopped", `document.querySelector('.title-row .badge')?.textContent === 'stopped' && document.querySelector('#stop-job').disabled`)

	// The burn job's page (a sine-shaped load: usage moves against its
	// request and limit) is the screenshot in the README.
	if err := chromedp.Do(ctx, chromedp.Navigate(d.console+"jobs/"+burn.ID)); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 60*time.Second, "burn's charts", `document.querySelector('#job-name')?.textContent === 'burn' && [...document.querySelectorAll('svg.chart')].every(s => Number(s.dataset.points) > 2)`)
	if os.Getenv("FATHOM_SCREENSHOTS") != "" {
		// For docs/img: wait (the page redraws every 15 s) until the
		// charts hold a few minutes of samples, so that they show
		// right-sizing at work.
		poll(t, ctx, 6*time.Minute, "charts with a few minutes of samples", `[...document.querySelectorAll('svg.chart')].every(s => Number(s.dataset.points) > 300)`)
		t.Logf("screenshot of the burn job page %s after its submission", time.Since(submitted).Round(time.Second))
	}
	s.take(t, ctx, "console-job")

	// Fathom's tasks' own usage (the heartbeat's task_* fields, kept by the
	// controller) reaches the API and the nodes page: burn still runs.
	waitFor(t, 30*time.Second, "task usage of the node in GET /v1/nodes", func() bool {
		b, err := httpGet(d.api + "/v1/nodes")
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Nodes []struct {
				TaskCPU float64 `json:"task_cpu_used_cores"`
				TaskMem string  `json:"task_memory_used_bytes"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(b), &r); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return len(r.Nodes) == 1 && r.Nodes[0].TaskCPU > 0 && r.Nodes[0].TaskMem != "" && r.Nodes[0].TaskMem != "0"
	})

	// The other pages render what the API says.
	for _, p := range []struct{ path, ready, shot string }{
		{"/nodes", `document.querySelectorAll('#nodes-table tbody tr').length === 1 && [...document.querySelectorAll('#nodes-table .gauge .small')].every(g => !g.textContent.startsWith('used -'))`, "console-nodes"},
		{"/tasks", fmt.Sprintf(`!!document.querySelector('#tasks-table tr[data-task=%q]')`, burn.ID+"-0"), ""},
		{"/cluster", `!!document.querySelector('#stat-used') && !!document.querySelector('#slack-table') && !!document.querySelector('#saved-table') && !!document.querySelector('#risk-table')`, "console-cluster"},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(d.console+strings.TrimPrefix(p.path, "/"))); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, 60*time.Second, p.path, p.ready)
		if p.shot != "" {
			s.take(t, ctx, p.shot)
		}
	}
	if got := eval[string](t, ctx, `document.querySelector('#nodes-table, #saved-table') ? document.querySelector('#saved-table').innerText : ''`); !strings.Contains(got, "demo/burn") {
		t.Errorf("right-sizing table lacks demo/burn:\n%s", got)
	}
	if errs := log.Errors(); len(errs) > 0 {
		t.Errorf("the console logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

func httpGetAccept(u, accept string) (string, error) {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("%s", resp.Status)
	}
	return string(b), err
}

func submitJSON(t *testing.T, api, spec string) job {
	t.Helper()
	resp, err := http.Post(api+"/v1/jobs", "application/json", strings.NewReader(spec))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST: %s: %s", resp.Status, b)
	}
	var out struct {
		Job job `json:"job"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Job
}
