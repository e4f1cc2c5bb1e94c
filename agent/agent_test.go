package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startAgent runs Run in this process against the given server and returns
// the agent's HTTP address and a stop function.
func startAgent(t *testing.T, cfg Config) (string, *prometheus.Registry, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	cfg.Ready = func(addr string) { ready <- addr }
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = "127.0.0.1:0"
	}
	cfg.StopTasksOnExit = true // leave no test task behind
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("agent exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not start")
	}
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}
	return addr, cfg.Registry, stop
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

func TestAgentRunsAssignmentsReportsAndStreamsUsage(t *testing.T) {
	m := testCgroups(t)
	parent := fmt.Sprintf("fathom-test-%d-%s", os.Getpid(), t.Name())
	_ = m
	srv := newCPServer(t, "127.0.0.1:0")
	rw := newRWReceiver(t)
	srv.remoteWrite = "http://" + rw.addr + "/api/v1/write"
	addr, reg, stop := startAgent(t, Config{Server: srv.addr, Name: "n1", CPU: 2, Memory: 4 << 30, DataDir: t.TempDir(),
		CgroupParent: parent, PushInterval: 500 * time.Millisecond, SampleInterval: 200 * time.Millisecond, GracePeriod: time.Second})
	defer stop()

	r := srv.waitRegistrations(t, 1, 10*time.Second)
	if r.GetEnforcement() != "cgroup1" && r.GetEnforcement() != "cgroup2" {
		t.Errorf("registered enforcement %q, want a cgroup mode on this machine", r.GetEnforcement())
	}
	if r.GetCpuCores() != 2 || r.GetMemoryBytes() != 4<<30 || r.GetAgentAddress() == "" {
		t.Errorf("registration %+v: want cpu 2, memory 4Gi and an agent address", r)
	}

	a := burnTask("web-0", "service", 0.2, "16Mi", "0s")
	a.Namespace, a.JobName, a.MemoryLimitBytes = "team-a", "web", 256<<20
	echo := Assignment{TaskID: "echo-0", Namespace: "team-a", JobName: "echo", Command: []string{"/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; sleep 1"},
		JobType: "batch", Generation: 1}
	srv.assign(a, echo)
	run, next := srv.waitStatus(t, 0, "web-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
	srv.waitStatus(t, 0, "echo-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateSucceeded })

	// Logs, with tail.
	if got := httpGet(t, "http://"+addr+"/v1/tasks/echo-0/logs?tail=2"); got != "line 4\nline 5\n" {
		t.Errorf("logs tail=2 = %q", got)
	}
	// /metrics carries the architecture's names and labels.
	time.Sleep(1500 * time.Millisecond)
	body := httpGet(t, "http://"+addr+"/metrics")
	for _, want := range []string{
		`fathom_task_cpu_usage_seconds_total{job_name="web",namespace="team-a",node="n1",task="web-0"}`,
		`fathom_task_memory_limit_bytes{job_name="web",namespace="team-a",node="n1",task="web-0"} 2.68435456e+08`,
		`fathom_node_cpu_capacity_cores{node="n1"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "fathom_task_memory_working_set_bytes"); err != nil || n != 1 {
		t.Errorf("working-set series: %d (%v), want 1 for the one running task", n, err)
	}
	// Heartbeats carry the tasks' own usage beside the machine's: web-0
	// burns about 0.2 cores and holds 16Mi; echo has finished.
	waitFor(t, 10*time.Second, "a heartbeat with web-0's usage", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		h := srv.lastHeartbeat
		return h != nil && h.GetTaskMemoryUsedBytes() >= 10<<20 && h.GetTaskCpuUsedCores() > 0.05
	})
	srv.mu.Lock()
	if h := srv.lastHeartbeat; h.GetTaskCpuUsedCores() > 1 || h.GetTaskMemoryUsedBytes() > 256<<20 {
		t.Errorf("heartbeat task usage %.3f cores, %d bytes: want about one 0.2-core, 16Mi task", h.GetTaskCpuUsedCores(), h.GetTaskMemoryUsedBytes())
	}
	srv.mu.Unlock()
	// Remote write reached the endpoint the server named.
	ws := rw.find("fathom_task_memory_working_set_bytes", "web-0")
	if len(ws) == 0 || ws[len(ws)-1] < 10<<20 {
		t.Errorf("remote-write working set for web-0: %v, want samples ≥ 10Mi (it touches 16Mi)", ws)
	}

	// The server goes away for a while and comes back on the same address:
	// the agent re-registers and re-reports, the task never stopped.
	srv.grpc.Stop()
	time.Sleep(3 * time.Second)
	srv.start(t, srv.addr)
	srv.waitRegistrations(t, 2, 30*time.Second)
	again, _ := srv.waitStatus(t, next, "web-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
	if again.PID != run.PID {
		t.Errorf("after the server came back web-0 runs as pid %d, want the same pid %d", again.PID, run.PID)
	}

	// Removing the task from the set stops it.
	srv.assign()
	srv.waitStatus(t, 0, "web-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateStopped })
	if syscall.Kill(int(run.PID), 0) == nil {
		t.Errorf("pid %d still runs after its assignment was removed", run.PID)
	}
}

// TestAgentRestartReattaches SIGKILLs a separate agent process while its
// task runs, starts a new one, and checks the task kept its pid and is
// reported running, with no second copy started.
func TestAgentRestartReattaches(t *testing.T) {
	testCgroups(t)
	parent := fmt.Sprintf("fathom-test-%d-%s", os.Getpid(), t.Name())
	t.Cleanup(func() { removeParent(parent) })
	srv := newCPServer(t, "127.0.0.1:0")
	data := t.TempDir()
	exe, _ := os.Executable()
	startProc := func() *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "FATHOM_TEST_ROLE=agent", "AGENT_SERVER="+srv.addr, "AGENT_DATA="+data, "AGENT_CGROUP_PARENT="+parent)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	a1 := startProc()
	srv.waitRegistrations(t, 1, 15*time.Second)
	task := Assignment{TaskID: "long-0", Namespace: "t", JobName: "long", Command: []string{"sleep", "300"}, JobType: "service", Priority: PriorityProd, Generation: 1}
	srv.assign(task)
	run, next := srv.waitStatus(t, 0, "long-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })

	if err := a1.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a1.Wait()
	if err := syscall.Kill(int(run.PID), 0); err != nil {
		t.Fatalf("task pid %d died with its agent: %v", run.PID, err)
	}
	a2 := startProc()
	defer func() {
		srv.assign() // stop the task through the agent, then stop the agent
		srv.waitStatus(t, 0, "long-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateStopped })
		_ = a2.Process.Signal(syscall.SIGTERM)
		_ = a2.Wait()
	}()
	srv.waitRegistrations(t, 2, 15*time.Second)
	again, _ := srv.waitStatus(t, next, "long-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
	if again.PID != run.PID {
		t.Fatalf("after restart long-0 reported as pid %d, want the original pid %d", again.PID, run.PID)
	}
	time.Sleep(2 * time.Second) // a duplicate start would show up here
	srv.mu.Lock()
	for _, s := range srv.statuses[next:] {
		if s.TaskID == "long-0" && s.PID != 0 && s.PID != run.PID {
			t.Errorf("a second copy was started as pid %d", s.PID)
		}
	}
	srv.mu.Unlock()
	if n := countProcs(t, "sleep 300"); n != 1 {
		t.Errorf("%d processes run 'sleep 300', want exactly 1", n)
	}
}

func countProcs(t *testing.T, cmdline string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if strings.HasSuffix(strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "), cmdline) {
			if st, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil && strings.Contains(string(st), "FATHOM_TASK_ID=long-0") {
				n++
			}
		}
	}
	return n
}

// TestServerBoundsThePushInterval: an agent set to push once a minute
// pushes every 300 ms when the server asks for it (its usage windows must
// hold several pushes), and not before the minute without the bound.
func TestServerBoundsThePushInterval(t *testing.T) {
	for _, bound := range []time.Duration{0, 300 * time.Millisecond} {
		srv := newCPServer(t, "127.0.0.1:0")
		rw := newRWReceiver(t)
		srv.remoteWrite, srv.maxPush = "http://"+rw.addr+"/api/v1/write", bound
		_, _, stop := startAgent(t, Config{Server: srv.addr, Name: "n1", CPU: 1, Memory: 1 << 30, DataDir: t.TempDir(),
			CgroupMode: "none", PushInterval: time.Minute, SampleInterval: 100 * time.Millisecond, GracePeriod: time.Second})
		srv.waitRegistrations(t, 1, 10*time.Second)
		time.Sleep(2 * time.Second)
		got := rw.count()
		stop()
		switch {
		case bound == 0 && got != 0:
			t.Errorf("no bound: %d samples pushed within 2 s with --push-interval 1m, want 0", got)
		case bound > 0 && got == 0:
			t.Errorf("bound %s: nothing pushed within 2 s; the agent kept its 1m interval", bound)
		}
	}
}
