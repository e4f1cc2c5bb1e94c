package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/agent/cgroups"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type proc struct {
	cmd *exec.Cmd
	log string
}

func start(t *testing.T, bin, logf string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return &proc{cmd: cmd, log: logf}
}

func (p *proc) stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	_ = p.cmd.Wait()
}

func cli(t *testing.T, bin, server string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"--server", server, "-o", "json"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("fathom %v: %v\n%s", args, err, out)
	}
	return out
}

type taskView struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	PID    int    `json:"pid"`
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

func tasksOf(t *testing.T, bin, server, job string) []taskView {
	t.Helper()
	var v struct {
		Tasks []taskView `json:"tasks"`
	}
	if err := json.Unmarshal(cli(t, bin, server, "job", "status", job), &v); err != nil {
		t.Fatal(err)
	}
	return v.Tasks
}

func waitFor(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func promQL(t *testing.T, server, q string) (float64, bool) {
	t.Helper()
	resp, err := http.PostForm(server+"/api/v1/query", url.Values{"query": {q}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data.Result) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
	return v, err == nil
}

// promQLSample returns the latest sample of an instant selector and its time.
func promQLSample(t *testing.T, server, sel string) (float64, time.Time, bool) {
	t.Helper()
	resp, err := http.PostForm(server+"/api/v1/query", url.Values{"query": {"timestamp(" + sel + ")"}})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if err != nil || len(r.Data.Result) == 0 {
		return 0, time.Time{}, false
	}
	sec, _ := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
	v, ok := promQL(t, server, sel)
	return v, time.UnixMilli(int64(sec * 1000)), ok
}

func TestAgentEndToEnd(t *testing.T) {
	if os.Getenv("FATHOM_E2E") == "" && os.Getenv("FATHOM_BIN") == "" {
		t.Skip("runs server + agent for about a minute: set FATHOM_BIN=bin/fathom after make build (or FATHOM_E2E=1 to build both binaries)")
	}
	parent := fmt.Sprintf("fathom-e2e-%d", os.Getpid())
	m, err := cgroups.New("auto", parent)
	if err != nil || m.Mode() == cgroups.ModeNone {
		t.Skip("no writable cgroup hierarchy (needs root): the agent would run without enforcement")
	}
	t.Cleanup(func() { removeCgroupParent(parent) })
	dir := t.TempDir()
	bin := os.Getenv("FATHOM_BIN")
	if bin == "" {
		// Both binaries side by side, as make build leaves them.
		bin = filepath.Join(dir, "fathom")
		for _, b := range []string{"fathom", "fathom-agent"} {
			build := exec.Command("go", "build", "-o", filepath.Join(dir, b), "github.com/fathom-scheduler/fathom/cmd/"+b)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
		}
	}
	httpAddr := freeAddr(t)
	server := "http://" + httpAddr
	srv := start(t, bin, filepath.Join(dir, "server.log"), "server", "--data-dir", filepath.Join(dir, "server"), "--http-addr", httpAddr, "--dns-addr", "", "--grpc-addr", "")
	defer srv.stop(syscall.SIGTERM)
	waitFor(t, "server /readyz", 60*time.Second, func() bool {
		r, err := http.Get(server + "/readyz")
		if err == nil {
			r.Body.Close()
		}
		return err == nil && r.StatusCode == 200
	})
	agentArgs := []string{"agent", "--server", server, "--name", "e2e-node", "--data-dir", filepath.Join(dir, "agent"),
		"--metrics-addr", freeAddr(t), "--cgroup-parent", parent, "--push-interval", "2s", "--grace-period", "2s",
		"--log-max-size", "16Ki", "--log-max-files", "3"}
	ag := start(t, bin, filepath.Join(dir, "agent1.log"), agentArgs...)
	defer func() { ag.stop(syscall.SIGTERM) }()
	checkSlimAgent(t, bin, ag)

	spec := filepath.Join(dir, "job.yaml")
	os.WriteFile(spec, []byte(fmt.Sprintf(`name: burner
namespace: e2e
type: service
priority: batch
replicas: 1
task:
  command: [%q, burn, --cpu, "0.5", --memory, 40Mi]
  resources: {cpu: "1", memory: 256Mi}
`, bin)), 0o644)
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(cli(t, bin, server, "job", "run", spec), &created); err != nil || created.ID == "" {
		t.Fatalf("job run: %v", err)
	}
	var task taskView
	waitFor(t, "the task to run", 60*time.Second, func() bool {
		ts := tasksOf(t, bin, server, created.ID)
		if len(ts) == 1 && ts[0].State == "TASK_STATE_RUNNING" && ts[0].PID > 0 {
			task = ts[0]
			return true
		}
		return false
	})

	// Usage reaches the server's store by remote write, with the labels, and
	// matches the process's own counters: the task's cgroup is fresh for this
	// run and holds only the burner, so the agent's cumulative CPU seconds,
	// sampled at time ts, must lie between /proc readings taken before and
	// after ts. (Comparing totals, not rates, keeps the check exact on a
	// machine whose load makes the burner's rate swing.)
	time.Sleep(10 * time.Second)
	before, at := procCPU(t, task.PID), time.Now()
	time.Sleep(20 * time.Second)
	sel := fmt.Sprintf(`fathom_task_cpu_usage_seconds_total{namespace="e2e",job_name="burner",task=%q,node="e2e-node"}`, task.ID)
	v, sampledAt, ok := promQLSample(t, server, sel)
	after := procCPU(t, task.PID)
	t.Logf("agent's %s = %.2f s at %s; /proc/%d/stat: %.2f s at %s, %.2f s now; burner rate %.3f cores (load %s)",
		sel, v, sampledAt.Format(time.TimeOnly), task.PID, before, at.Format(time.TimeOnly), after, (after-before)/time.Since(at).Seconds(), loadAvg())
	if !ok || sampledAt.Before(at) {
		t.Fatalf("no fresh sample of %s in the server's store (found=%v, at %s)", sel, ok, sampledAt)
	}
	if v < before-0.05 || v > after+0.05 {
		t.Errorf("agent reported %.2f CPU seconds at %s, outside the process's own %.2f .. %.2f", v, sampledAt, before, after)
	}
	if cores, ok := promQL(t, server, "rate("+sel+"[20s])"); ok {
		t.Logf("PromQL rate over 20s: %.3f cores for burn --cpu 0.5", cores)
	}
	if ws, ok := promQL(t, server, fmt.Sprintf(`fathom_task_memory_working_set_bytes{task=%q}`, task.ID)); !ok || ws < 40<<20 {
		t.Errorf("working set %.0f (found=%v), want ≥ 40Mi", ws, ok)
	}

	// SIGKILL the agent; the task survives; a new agent re-attaches.
	ag.stop(syscall.SIGKILL)
	if err := syscall.Kill(task.PID, 0); err != nil {
		t.Fatalf("task pid %d died with the agent: %v", task.PID, err)
	}
	ag = start(t, bin, filepath.Join(dir, "agent2.log"), agentArgs...)
	waitFor(t, "the new agent to re-attach", 30*time.Second, func() bool {
		b, _ := os.ReadFile(ag.log)
		return strings.Contains(string(b), "re-attached task")
	})
	time.Sleep(3 * time.Second)
	ts := tasksOf(t, bin, server, created.ID)
	if len(ts) != 1 || ts[0].State != "TASK_STATE_RUNNING" || ts[0].PID != task.PID {
		t.Fatalf("after agent restart: %+v, want one running task with pid %d", ts, task.PID)
	}

	// Stop through the API: the process goes away.
	cli(t, bin, server, "job", "stop", created.ID)
	waitFor(t, "the task process to exit", 30*time.Second, func() bool { return syscall.Kill(task.PID, 0) != nil })

	logsAcrossRotation(t, bin, server, dir)
}

// checkSlimAgent: `fathom agent` exec'd the fathom-agent beside it (same
// pid, now running the slim binary), as operators run it.
func checkSlimAgent(t *testing.T, bin string, ag *proc) {
	t.Helper()
	slim := filepath.Join(filepath.Dir(bin), "fathom-agent")
	if _, err := os.Stat(slim); err != nil {
		t.Logf("no %s: the agent runs inside %s", slim, bin)
		return
	}
	waitFor(t, "fathom agent to exec fathom-agent", 10*time.Second, func() bool {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", ag.cmd.Process.Pid))
		return filepath.Base(exe) == "fathom-agent"
	})
}

// logsAcrossRotation runs a job that writes ~150 KB of numbered lines while
// the agent rotates its log at 16 KiB, and reads it with `fathom job logs
// -f` (through the server) from before the first line to the end: every
// line must arrive once, in order.
func logsAcrossRotation(t *testing.T, bin, server, dir string) {
	const lines = 3000
	gate := filepath.Join(dir, "write-now")
	spec := filepath.Join(dir, "chatty.yaml")
	script := fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.1; done; i=0; while [ $i -lt %d ]; do `+
		`echo "line $i 0123456789012345678901234567890123456789"; i=$((i+1)); if [ $((i %% 50)) -eq 0 ]; then sleep 0.05; fi; done; sleep 2`, gate, lines)
	os.WriteFile(spec, []byte(fmt.Sprintf("name: chatty\nnamespace: e2e\ntype: batch\npriority: batch\nreplicas: 1\ntask:\n  command: [/bin/sh, -c, %q]\n", script)), 0o644)
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(cli(t, bin, server, "job", "run", spec), &created); err != nil || created.ID == "" {
		t.Fatalf("job run: %v", err)
	}
	waitFor(t, "the chatty task to run", 60*time.Second, func() bool {
		ts := tasksOf(t, bin, server, created.ID)
		return len(ts) == 1 && ts[0].State == "TASK_STATE_RUNNING"
	})
	follow := exec.Command(bin, "--server", server, "job", "logs", created.ID, "-f")
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // connected, then the task starts writing
	os.WriteFile(gate, nil, 0o644)
	got, _ := io.ReadAll(out)
	_ = follow.Wait()
	all := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	for i, l := range all {
		if !strings.HasPrefix(l, fmt.Sprintf("line %d ", i)) {
			t.Fatalf("job logs -f: line %d is %q (%d lines received, want %d in order)", i, l, len(all), lines)
		}
	}
	if len(all) != lines {
		t.Fatalf("job logs -f received %d lines, want %d", len(all), lines)
	}
	tail := strings.Split(strings.TrimSuffix(string(cli(t, bin, server, "job", "logs", created.ID, "--tail", "700")), "\n"), "\n")
	if len(tail) != 700 || !strings.HasPrefix(tail[0], fmt.Sprintf("line %d ", lines-700)) {
		t.Errorf("job logs --tail 700 gave %d lines starting %q", len(tail), tail[0])
	}
}

func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// removeCgroupParent removes the test's (by now empty) parent cgroup from
// every hierarchy.
func removeCgroupParent(parent string) {
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == parent {
			subs, _ := os.ReadDir(p)
			for _, s := range subs {
				if s.IsDir() {
					_ = os.Remove(filepath.Join(p, s.Name()))
				}
			}
			_ = os.Remove(p)
			return filepath.SkipDir
		}
		if strings.Count(p, "/") > 7 {
			return filepath.SkipDir
		}
		return nil
	})
}
