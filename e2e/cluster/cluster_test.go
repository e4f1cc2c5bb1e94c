package cluster

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// bin is the fathom binary: $FATHOM_BIN, or built by TestMain.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	if runtime.GOOS != "linux" || testing.Short() {
		fmt.Println("e2e/cluster: skipped (needs Linux, and not -short)")
		os.Exit(0)
	}
	if b := os.Getenv("FATHOM_BIN"); b != "" {
		// A binary built from this tree already (make test builds bin/fathom).
		bin = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "fathom-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "fathom")
	build := exec.Command("go", "build", "-o", bin, "github.com/fathom-scheduler/fathom/cmd/fathom")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e/cluster: building fathom:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback address with a free port.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a fathom process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	// metrics is an agent's /metrics address (host:port).
	metrics string
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM, 15*time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("--- last lines of %s ---\n%s", name, strings.Join(lines, "\n"))
		}
	})
	return p
}

// stop signals the process and waits for it (SIGKILL after wait).
func (p *proc) stop(sig syscall.Signal, wait time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cluster is a real server (embedded etcd and TSDB) plus agents.
type cluster struct {
	t    *testing.T
	api  string // http://host:port
	grpc string
	dir  string
	// serverArgs start the server; restartServer runs them again (same
	// data dir, same addresses).
	serverArgs []string
	server     *proc
	starts     int
}

func startServer(t *testing.T, extra ...string) *cluster {
	t.Helper()
	httpAddr, grpcAddr := freePort(t), freePort(t)
	c := &cluster{t: t, api: "http://" + httpAddr, grpc: grpcAddr, dir: t.TempDir()}
	c.serverArgs = append([]string{"server", "--data-dir", filepath.Join(c.dir, "server"), "--http-addr", httpAddr, "--dns-addr", "", "--grpc-addr", grpcAddr}, extra...)
	c.runServer()
	return c
}

// runServer starts the server process with c.serverArgs and waits until it
// is ready.
func (c *cluster) runServer() {
	c.t.Helper()
	c.starts++
	name := "server"
	if c.starts > 1 {
		name = fmt.Sprintf("server-%d", c.starts)
	}
	c.server = start(c.t, name, c.serverArgs...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(c.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-c.server.done:
			c.t.Fatalf("%s exited before it was ready", name)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatal("server not ready after 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killServer SIGKILLs the server and waits until it is gone.
func (c *cluster) killServer() {
	c.t.Helper()
	c.server.stop(syscall.SIGKILL, 10*time.Second)
}

// restartServer starts the server again on the same data dir and addresses
// and waits until it is ready.
func (c *cluster) restartServer() {
	c.t.Helper()
	c.runServer()
}

// grpcConn is a gRPC client connection to the server's --grpc-addr,
// closed when the test ends.
func (c *cluster) grpcConn() *grpc.ClientConn {
	c.t.Helper()
	conn, err := grpc.NewClient(c.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return conn
}

// metric reads one unlabelled sample of the server's /metrics (counters and
// gauges); ok is false when the series is absent.
func (c *cluster) metric(name string) (v float64, ok bool) {
	c.t.Helper()
	return scrape(c.t, c.api+"/metrics", name)
}

// metric reads one unlabelled sample of an agent's /metrics.
func (p *proc) metric(t *testing.T, name string) (v float64, ok bool) {
	t.Helper()
	return scrape(t, "http://"+p.metrics+"/metrics", name)
}

func scrape(t *testing.T, url, name string) (v float64, ok bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// startAgent starts an agent named name offering cpu cores and memory.
func (c *cluster) startAgent(name, cpu, memory string, extra ...string) *proc {
	c.t.Helper()
	metrics := freePort(c.t)
	args := append([]string{"agent", "--server", c.api, "--name", name, "--cpu", cpu, "--memory", memory,
		"--metrics-addr", metrics, "--data-dir", filepath.Join(c.dir, "agent-"+name),
		"--grace-period", "1s", "--stop-tasks-on-exit", "--cgroup-parent", "fathom-e2e-" + name}, extra...)
	p := start(c.t, "agent-"+name, args...)
	p.metrics = metrics
	// Whatever happens to the agent, leave no task process behind.
	c.t.Cleanup(func() { killTasksOf(name) })
	return p
}

// killTasksOf kills every process started for node (FATHOM_NODE in its
// environment): the tasks of an agent that was SIGKILLed outlive it.
func killTasksOf(node string) {
	for _, pid := range pidsWithEnv("FATHOM_NODE=" + node) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pidsWithEnv lists the processes whose environment holds kv ("NAME=value").
func pidsWithEnv(kv string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, v := range bytes.Split(b, []byte{0}) {
			if string(v) == kv {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

func (c *cluster) do(method, path string, body []byte, out proto.Message) error {
	req, err := http.NewRequest(method, c.api+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, out)
	}
	return nil
}

func (c *cluster) submit(spec string) string {
	c.t.Helper()
	resp := &fathomv1.CreateJobResponse{}
	if err := c.do("POST", "/v1/jobs", []byte(spec), resp); err != nil {
		c.t.Fatal(err)
	}
	return resp.GetId()
}

func (c *cluster) tasks(job string) []*fathomv1.Task {
	c.t.Helper()
	resp := &fathomv1.ListTasksResponse{}
	if err := c.do("GET", "/v1/jobs/"+url.PathEscape(job)+"/tasks", nil, resp); err != nil {
		c.t.Fatal(err)
	}
	return resp.GetTasks()
}

func (c *cluster) recommendations(job string) []*fathomv1.Recommendation {
	c.t.Helper()
	resp := &fathomv1.ListRecommendationsResponse{}
	if err := c.do("GET", "/v1/recommendations?job="+url.QueryEscape(job), nil, resp); err != nil {
		c.t.Fatal(err)
	}
	return resp.GetRecommendations()
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func (c *cluster) waitFor(what string, timeout time.Duration, cond func() bool) time.Duration {
	c.t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > timeout {
			c.t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(t0)
}

// waitNodesUp waits until n nodes are up.
func (c *cluster) waitNodesUp(n int) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("%d nodes up", n), 60*time.Second, func() bool {
		resp := &fathomv1.ListNodesResponse{}
		if err := c.do("GET", "/v1/nodes", nil, resp); err != nil {
			return false
		}
		up := 0
		for _, nd := range resp.GetNodes() {
			if nd.GetState() == fathomv1.NodeState_NODE_STATE_UP {
				up++
			}
		}
		return up == n
	})
}

func running(ts []*fathomv1.Task) (n int, byNode map[string]int) {
	byNode = map[string]int{}
	for _, t := range ts {
		if t.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING {
			n++
			byNode[t.GetNode()]++
		}
	}
	return n, byNode
}

// TestAgentKilledTasksRunElsewhere: three agents, a six-replica service;
// SIGKILL one agent; its tasks must run on the other two within the
// heartbeat timeout plus 2 s.
func TestAgentKilledTasksRunElsewhere(t *testing.T) {
	const timeout = 2 * time.Second
	c := startServer(t, "--heartbeat-timeout", timeout.String(), "--no-rightsizing")
	agents := map[string]*proc{}
	for _, n := range []string{"e2e-a", "e2e-b", "e2e-c"} {
		agents[n] = c.startAgent(n, "2", "2Gi")
	}
	c.waitNodesUp(3)
	job := c.submit(`name: web
namespace: e2e
type: service
priority: prod
replicas: 6
task:
  command: ["/bin/sleep", "3600"]
`)
	var byNode map[string]int
	took := c.waitFor("six replicas running", 60*time.Second, func() bool {
		var n int
		n, byNode = running(c.tasks(job))
		return n == 6
	})
	t.Logf("six replicas running after %s: %v", took.Round(time.Millisecond), byNode)
	if len(byNode) != 3 {
		t.Errorf("replicas not spread over the three nodes: %v", byNode)
	}
	victim := "e2e-b"
	moved := byNode[victim]
	if moved == 0 {
		t.Fatalf("no replica on %s to lose: %v", victim, byNode)
	}
	t0 := time.Now()
	agents[victim].stop(syscall.SIGKILL, 5*time.Second)
	var final []*fathomv1.Task
	c.waitFor("replicas running elsewhere", 30*time.Second, func() bool {
		final = c.tasks(job)
		n, bn := running(final)
		return n == 6 && bn[victim] == 0
	})
	elapsed := time.Since(t0)
	_, bn := running(final)
	t.Logf("SIGKILL of %s: its %d replica(s) running elsewhere after %s (heartbeat timeout %s); now %v",
		victim, moved, elapsed.Round(time.Millisecond), timeout, bn)
	for _, tk := range final {
		if len(tk.GetHistory()) > 0 && strings.Contains(tk.GetReason(), "placed") {
			t.Logf("%s: %s", tk.GetId(), tk.GetReason())
		}
	}
	if elapsed > timeout+2*time.Second {
		t.Errorf("re-placement took %s; want at most heartbeat timeout + 2 s = %s", elapsed.Round(time.Millisecond), timeout+2*time.Second)
	}
	killTasksOf(victim)
}

// memoryLimitOf reads the memory limit the kernel enforces on pid's cgroup
// (v2 memory.max or v1 memory.limit_in_bytes); 0 = none found.
func memoryLimitOf(pid int32) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			file = filepath.Join("/sys/fs/cgroup", parts[2], "memory.max")
			if _, err := os.Stat(file); err != nil {
				file = filepath.Join("/sys/fs/cgroup/unified", parts[2], "memory.max")
			}
		case strings.Contains(","+parts[1]+",", ",memory,"):
			file = filepath.Join("/sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes")
		default:
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && v > 0 && v < 1<<60 {
			return v
		}
	}
	return 0
}

func recOf(recs []*fathomv1.Recommendation, task, resource string) *fathomv1.Recommendation {
	for _, r := range recs {
		if r.GetTask() == task && r.GetResource() == resource {
			return r
		}
	}
	return nil
}

// TestBurnRightSizedInPlaceAndOOMRaisesMemory: a `fathom burn` job submitted
// without sizes gets a recommendation within 2 minutes and is resized in
// place (same pid); when its memory then grows past the limit and the
// kernel OOM-kills it, the server raises the memory limit before the task
// restarts.
//
// Server and agent run with their default settings: 5-minute usage windows,
// a right-sizing round every 30 s, a push every 10 s. The first
// recommendation is provisional, from the first minute of usage.
func TestBurnRightSizedInPlaceAndOOMRaisesMemory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: memory limits are enforced through cgroups")
	}
	c := startServer(t)
	// A node name of its own: two runs of this package at once on one
	// machine (a shared CI host) must not share a cgroup parent or kill each
	// other's tasks on cleanup.
	c.startAgent(fmt.Sprintf("e2e-burn-%d", os.Getpid()), "2", "2Gi")
	c.waitNodesUp(1)
	// The task holds 20 MiB until the test has seen it resized in place
	// (limit at least 32 MiB), then jumps to 200 MiB: the kernel OOM-kills
	// it at its limit. The shell keeps the task's pid through the first
	// phase, so an in-place resize is visible as an unchanged pid.
	flag := filepath.Join(t.TempDir(), "grow")
	script := fmt.Sprintf("%s burn --cpu 0.2 --memory 20Mi & b=$!; while [ ! -e %s ]; do sleep 0.2; done; kill $b; wait $b; exec %s burn --cpu 0.2 --memory 200Mi", bin, flag, bin)
	submitted := time.Now()
	job := c.submit(fmt.Sprintf(`name: burner
namespace: e2e
type: service
priority: batch
replicas: 1
task:
  command: ["/bin/sh", "-c", %q]
`, script))
	id := job + "-0"
	var first *fathomv1.Task
	c.waitFor("burn running", 60*time.Second, func() bool {
		ts := c.tasks(job)
		if len(ts) == 1 && ts[0].GetState() == fathomv1.TaskState_TASK_STATE_RUNNING && ts[0].GetPid() > 0 {
			first = ts[0]
			return true
		}
		return false
	})
	t.Logf("running after %s with limits cpu %v memory %d", time.Since(submitted).Round(time.Millisecond), first.GetCpuLimitCores(), first.GetMemoryLimitBytes())
	var rec *fathomv1.Recommendation
	c.waitFor("a recommendation from usage within 2 minutes of the submission", 2*time.Minute-time.Since(submitted), func() bool {
		rec = recOf(c.recommendations(job), id, "memory")
		return rec != nil && rec.GetModel() != "none" && rec.GetLimit() > 0
	})
	took := time.Since(submitted)
	t.Logf("recommendation %s after the submission: memory request %.0f limit %.0f (usage %.0f), model %s, confidence %.4f, why %q",
		took.Round(time.Millisecond), rec.GetRequest(), rec.GetLimit(), rec.GetUsage(), rec.GetModel(), rec.GetConfidence(), rec.GetWhy())
	var resized *fathomv1.Task
	c.waitFor("resized in place within 2 minutes of the submission", 2*time.Minute-time.Since(submitted), func() bool {
		ts := c.tasks(job)
		if len(ts) == 1 && ts[0].GetGeneration() > first.GetGeneration() && ts[0].GetMemoryLimitBytes() > 0 && ts[0].GetState() == fathomv1.TaskState_TASK_STATE_RUNNING {
			resized = ts[0]
			return true
		}
		return false
	})
	t.Logf("resized %s after the submission: generation %d→%d, memory limit %d, cpu limit %v, pid %d→%d; %s", time.Since(submitted).Round(time.Millisecond),
		first.GetGeneration(), resized.GetGeneration(), resized.GetMemoryLimitBytes(), resized.GetCpuLimitCores(), first.GetPid(), resized.GetPid(), resized.GetReason())
	if resized.GetPid() != first.GetPid() {
		t.Errorf("pid changed %d → %d: not resized in place", first.GetPid(), resized.GetPid())
	}
	// The kernel enforces the new limit on the same process.
	var enforced int64
	c.waitFor("new limit enforced on the same pid", 20*time.Second, func() bool {
		enforced = memoryLimitOf(first.GetPid())
		return enforced == resized.GetMemoryLimitBytes()
	})
	t.Logf("pid %d cgroup memory limit %d", first.GetPid(), enforced)

	// Now the memory passes the limit: OOM kill, then a restart with more.
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	grown := time.Now()
	limitAtOOM := resized.GetMemoryLimitBytes()
	var after *fathomv1.Task
	c.waitFor("OOM kill and restart with a higher limit", 3*time.Minute, func() bool {
		ts := c.tasks(job)
		if len(ts) != 1 {
			return false
		}
		tk := ts[0]
		if tk.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING && tk.GetPid() == first.GetPid() {
			limitAtOOM = tk.GetMemoryLimitBytes() // raised in place meanwhile
		}
		if tk.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING && tk.GetPid() != 0 && tk.GetPid() != first.GetPid() {
			after = tk
			return true
		}
		return false
	})
	var oomMsg string
	for _, h := range after.GetHistory() {
		if strings.Contains(h.GetMessage(), "OOM-killed") {
			oomMsg = h.GetMessage()
		}
	}
	t.Logf("restarted %s after the jump as pid %d, generation %d, memory limit %d; history: %q", time.Since(grown).Round(time.Millisecond),
		after.GetPid(), after.GetGeneration(), after.GetMemoryLimitBytes(), oomMsg)
	if oomMsg == "" {
		t.Fatalf("task restarted without an OOM kill recorded in its history: %v", after.GetHistory())
	}
	if after.GetMemoryLimitBytes() <= limitAtOOM {
		t.Errorf("memory limit after the OOM %d; want above the %d it was killed at", after.GetMemoryLimitBytes(), limitAtOOM)
	}
	// The restarted process runs under the raised limit from its start.
	if got := memoryLimitOf(after.GetPid()); got != 0 && got < after.GetMemoryLimitBytes() {
		t.Errorf("restarted pid %d runs under a cgroup limit of %d; want ≥ %d", after.GetPid(), got, after.GetMemoryLimitBytes())
	} else {
		t.Logf("restarted pid %d cgroup memory limit %d", after.GetPid(), got)
	}
	_ = c.do("DELETE", "/v1/jobs/"+job, nil, &fathomv1.Job{})
}
