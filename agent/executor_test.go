package agent

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/agent/cgroups"
)

// statusLog records every status an executor reports.
type statusLog struct {
	mu   sync.Mutex
	all  []TaskStatus
	cond *sync.Cond
}

func newStatusLog() *statusLog {
	l := &statusLog{}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *statusLog) add(s TaskStatus) {
	l.mu.Lock()
	l.all = append(l.all, s)
	l.mu.Unlock()
	l.cond.Broadcast()
}

// wait returns the first status (in report order) for id that satisfies ok.
func (l *statusLog) wait(t *testing.T, id string, timeout time.Duration, ok func(TaskStatus) bool) TaskStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	go func() { time.Sleep(timeout); l.cond.Broadcast() }()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; ; {
		for ; i < len(l.all); i++ {
			if l.all[i].TaskID == id && ok(l.all[i]) {
				return l.all[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: no matching status within %s; saw %+v", id, timeout, l.all)
		}
		l.cond.Wait()
	}
}

// testCgroups returns a real cgroup manager under a per-test parent, or
// skips when this machine offers no writable cgroup.
func testCgroups(t *testing.T) cgroups.Manager {
	t.Helper()
	parent := fmt.Sprintf("fathom-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
	m, err := cgroups.New("auto", parent)
	if err != nil {
		t.Skipf("cannot inspect cgroups here (%v): enforcement tests need Linux cgroups", err)
	}
	if m.Mode() == cgroups.ModeNone {
		t.Skip("no writable cgroup (v1 or v2) on this machine: enforcement tests need root and a writable cgroup hierarchy")
	}
	t.Cleanup(func() { removeParent(parent) })
	if err := m.SetParentCPU(float64(runtime.NumCPU())); err != nil {
		t.Fatalf("weighing the test parent cgroup: %v", err)
	}
	return m
}

func removeParent(parent string) {
	own, _ := os.ReadFile("/proc/self/cgroup")
	for _, line := range strings.Split(strings.TrimSpace(string(own)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dirs []string
		if parts[1] == "" {
			dirs = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}
		} else {
			for _, c := range strings.Split(parts[1], ",") {
				dirs = append(dirs, "/sys/fs/cgroup/"+c)
			}
		}
		for _, d := range dirs {
			p := filepath.Join(d, parts[2], parent)
			subs, _ := os.ReadDir(p)
			for _, s := range subs {
				if s.IsDir() {
					_ = os.Remove(filepath.Join(p, s.Name()))
				}
			}
			_ = os.Remove(p)
		}
	}
}

func newTestExecutor(t *testing.T, m cgroups.Manager) (*Executor, *statusLog) {
	t.Helper()
	log := newStatusLog()
	e, err := NewExecutor(ExecutorConfig{DataDir: t.TempDir(), Cgroups: m, Node: "test", GracePeriod: 2 * time.Second,
		OnStatus: log.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.StopAll)
	return e, log
}

// burnTask is an assignment that runs this test binary as `fathom burn`.
func burnTask(id, jobType string, cpu float64, mem, dur string) Assignment {
	exe, _ := os.Executable()
	return Assignment{TaskID: id, JobID: "job", Namespace: "test", JobName: "burn", Command: []string{exe},
		Env:     map[string]string{"FATHOM_TEST_ROLE": "burn", "BURN_CPU": fmt.Sprint(cpu), "BURN_MEMORY": mem, "BURN_DURATION": dur},
		JobType: jobType, Priority: PriorityBatch, Generation: 1}
}

func TestTaskPastMemoryLimitIsOOMKilled(t *testing.T) {
	m := testCgroups(t)
	e, log := newTestExecutor(t, m)
	over := burnTask("over-1", "batch", 0, "200Mi", "30s")
	over.MemoryLimitBytes = 64 << 20
	under := burnTask("under-1", "batch", 0, "32Mi", "2s")
	under.MemoryLimitBytes = 128 << 20
	e.Reconcile([]Assignment{over, under})

	got := log.wait(t, "over-1", 20*time.Second, func(s TaskStatus) bool { return s.State.Terminal() })
	if got.State != StateFailed || !got.OOMKilled {
		t.Errorf("over-limit task: got %s oom=%v (%s), want FAILED with oom_killed", got.State, got.OOMKilled, got.Reason)
	}
	if got.ExitCode != 128+9 {
		t.Errorf("over-limit task exit code %d, want 137 (SIGKILL)", got.ExitCode)
	}
	got = log.wait(t, "under-1", 20*time.Second, func(s TaskStatus) bool { return s.State.Terminal() })
	if got.State != StateSucceeded || got.OOMKilled {
		t.Errorf("under-limit task: got %s oom=%v (%s), want SUCCEEDED without OOM", got.State, got.OOMKilled, got.Reason)
	}
}

func TestLimitChangeAppliesInPlace(t *testing.T) {
	m := testCgroups(t)
	e, log := newTestExecutor(t, m)
	a := burnTask("resize-1", "service", 0.05, "48Mi", "0s")
	a.MemoryLimitBytes, a.CPULimitCores = 256<<20, 1
	e.Reconcile([]Assignment{a})
	run := log.wait(t, a.TaskID, 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
	waitWorkingSet(t, e, a.TaskID, 40<<20)

	b := a
	b.Generation, b.MemoryLimitBytes, b.CPULimitCores = 2, 128<<20, 0.25
	e.Reconcile([]Assignment{b})
	got := log.wait(t, a.TaskID, 10*time.Second, func(s TaskStatus) bool { return s.Generation == 2 })
	if got.State != StateRunning || got.PID != run.PID {
		t.Fatalf("after resize: %s pid %d, want RUNNING with the same pid %d", got.State, got.PID, run.PID)
	}
	assertLimits(t, e, a.TaskID, 128<<20, 0.25)

	// Below current use: rejected, the process keeps running at the old limits.
	c := b
	c.Generation, c.MemoryLimitBytes = 3, 8<<20
	e.Reconcile([]Assignment{c})
	got = log.wait(t, a.TaskID, 10*time.Second, func(s TaskStatus) bool { return s.Generation == 3 })
	if got.State != StateRejected || got.PID != run.PID || !strings.Contains(got.Reason, "below current use") {
		t.Fatalf("resize below use: %+v, want REJECTED naming the current use with pid %d", got, run.PID)
	}
	assertLimits(t, e, a.TaskID, 128<<20, 0.25)
	if s, _ := e.Status(a.TaskID); s.State != StateRunning || s.PID != run.PID {
		t.Fatalf("after rejected resize the task should still run as pid %d: %+v", run.PID, s)
	}
}

func waitWorkingSet(t *testing.T, e *Executor, id string, atLeast int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, u := range e.Usage() {
			if u.Assignment.TaskID == id && u.Stats.MemoryWorkingSet >= atLeast {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("task %s never reached a working set of %d bytes", id, atLeast)
}

// assertLimits reads the limits back from the kernel's files.
func assertLimits(t *testing.T, e *Executor, id string, mem int64, cpu float64) {
	t.Helper()
	e.mu.Lock()
	tk := e.tasks[id]
	e.mu.Unlock()
	paths := tk.cg.Paths()
	var memFile, cpuFile string
	if p, ok := paths["unified"]; ok {
		memFile, cpuFile = filepath.Join(p, "memory.max"), filepath.Join(p, "cpu.max")
	} else {
		memFile, cpuFile = filepath.Join(paths["memory"], "memory.limit_in_bytes"), filepath.Join(paths["cpu"], "cpu.cfs_quota_us")
	}
	b, _ := os.ReadFile(memFile)
	if got := strings.TrimSpace(string(b)); got != fmt.Sprint(mem) {
		t.Errorf("%s = %s, want %d", memFile, got, mem)
	}
	b, _ = os.ReadFile(cpuFile)
	if got := strings.Fields(string(b))[0]; got != fmt.Sprint(int64(cpu*100000)) {
		t.Errorf("%s = %s, want quota %d", cpuFile, got, int64(cpu*100000))
	}
}

func TestBurnHalfCoreMeasuredWithinTenPercent(t *testing.T) {
	m := testCgroups(t)
	e, log := newTestExecutor(t, m)
	a := burnTask("cpu-1", "service", 0.5, "0", "0s")
	a.CPURequestCores = 2 // weigh it well against the rest of a busy machine
	e.Reconcile([]Assignment{a})
	run := log.wait(t, a.TaskID, 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
	time.Sleep(time.Second) // past start-up
	cpuOf := func() float64 {
		for _, u := range e.Usage() {
			if u.Assignment.TaskID == a.TaskID {
				return u.Stats.CPUSeconds
			}
		}
		t.Fatal("task not running")
		return 0
	}
	c0, p0, t0 := cpuOf(), procCPU(t, int(run.PID)), time.Now()
	time.Sleep(20 * time.Second)
	c1, p1, t1 := cpuOf(), procCPU(t, int(run.PID)), time.Now()
	secs := t1.Sub(t0).Seconds()
	agent, truth := (c1-c0)/secs, (p1-p0)/secs
	t.Logf("burn --cpu 0.5 over %.1fs: agent (cgroup) measured %.3f cores, /proc/%d/stat says %.3f", secs, agent, run.PID, truth)
	if d := agent - truth; d > 0.1*truth || d < -0.1*truth {
		t.Errorf("agent measured %.3f cores, the process's own counters say %.3f: more than 10%% apart", agent, truth)
	}
	if agent >= 0.45 && agent <= 0.55 {
		return
	}
	if load := loadAvg(); load > float64(runtime.NumCPU()) && agent < 0.45 {
		t.Logf("machine overloaded (load %.1f on %d CPUs): the burner could not get 0.5 cores; only the measurement was checked", load, runtime.NumCPU())
		return
	}
	t.Errorf("measured %.3f cores, want 0.5 ± 10%%", agent)
}

// procCPU is a process's user+system CPU seconds from /proc/<pid>/stat.
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

func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func TestBadAssignmentsAreRejectedOthersRun(t *testing.T) {
	m := testCgroups(t)
	e, log := newTestExecutor(t, m)
	missing := Assignment{TaskID: "missing-1", Command: []string{"/nonexistent/bin/app"}, JobType: "service", Generation: 1}
	noUser := Assignment{TaskID: "nouser-1", Command: []string{"/bin/sleep", "30"}, User: "no-such-user-fathom", JobType: "service", Generation: 1}
	notInPath := Assignment{TaskID: "nopath-1", Command: []string{"definitely-not-a-command-fathom"}, JobType: "batch", Generation: 1}
	badID := Assignment{TaskID: "../escape", Command: []string{"sleep", "30"}, JobType: "service", Generation: 1}
	good := Assignment{TaskID: "good-1", Command: []string{"sleep", "30"}, JobType: "service", Generation: 1}
	e.Reconcile([]Assignment{missing, noUser, notInPath, badID, good})
	for id, want := range map[string]string{"missing-1": "not found", "nouser-1": "unknown user", "nopath-1": "not found in PATH", "../escape": "cannot name a directory"} {
		got := log.wait(t, id, 5*time.Second, func(s TaskStatus) bool { return s.State != "" })
		if got.State != StateRejected || !strings.Contains(got.Reason, want) {
			t.Errorf("%s: %s %q, want REJECTED mentioning %q", id, got.State, got.Reason, want)
		}
	}
	log.wait(t, "good-1", 5*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
}

func TestStopEscalatesToSIGKILLForTheWholeGroup(t *testing.T) {
	m := testCgroups(t)
	e, log := newTestExecutor(t, m)
	// The shell ignores SIGTERM and has a child that does too.
	a := Assignment{TaskID: "stubborn-1", Command: []string{"/bin/sh", "-c", "trap '' TERM; sleep 300 & wait; sleep 300"}, JobType: "service", Generation: 1}
	e.Reconcile([]Assignment{a})
	run := log.wait(t, a.TaskID, 5*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	e.Reconcile(nil)
	got := log.wait(t, a.TaskID, 10*time.Second, func(s TaskStatus) bool { return s.State == StateStopped })
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("stopped after %s; a process ignoring SIGTERM should get the 2s grace period", took)
	}
	if got.ExitCode != 128+9 {
		t.Errorf("exit code %d, want 137 (SIGKILL after grace)", got.ExitCode)
	}
	if err := syscallKill0(int(run.PID)); err == nil {
		t.Errorf("pid %d still exists after stop", run.PID)
	}
}

// TestExitsAreNotRestartedLocally: neither a service nor a batch task is
// started again by the agent when its process exits (the control plane's
// restart policy decides, with a new generation); the exit's status carries
// the exit code and the last lines of the output, bounded.
func TestExitsAreNotRestartedLocally(t *testing.T) {
	m := testCgroups(t)
	e, log := newTestExecutor(t, m)
	script := `i=0; while [ $i -lt 30 ]; do echo "line $i"; i=$((i+1)); done; echo "fatal: no input" >&2; exit 3`
	svc := Assignment{TaskID: "svc-1", Command: []string{"/bin/sh", "-c", script}, JobType: "service", Generation: 1}
	bat := Assignment{TaskID: "bat-1", Command: []string{"/bin/sh", "-c", script}, JobType: "batch", Generation: 1}
	e.Reconcile([]Assignment{svc, bat})
	for _, id := range []string{"svc-1", "bat-1"} {
		got := log.wait(t, id, 10*time.Second, func(s TaskStatus) bool { return s.State == StateFailed && s.Generation == 1 })
		if got.ExitCode != 3 {
			t.Errorf("%s exit code %d, want 3", id, got.ExitCode)
		}
		lines := strings.Split(got.LogTail, "\n")
		if len(lines) != 10 || lines[9] != "fatal: no input" || lines[0] != "line 21" {
			t.Errorf("%s log tail %q; want the last 10 lines, line 21 .. fatal: no input", id, got.LogTail)
		}
	}
	// A new generation is the control plane's restart: it runs again.
	svc.Generation = 2
	e.Reconcile([]Assignment{svc, bat})
	log.wait(t, "svc-1", 10*time.Second, func(s TaskStatus) bool { return s.State == StateFailed && s.Generation == 2 })
	log.mu.Lock()
	defer log.mu.Unlock()
	runs := map[string]int{}
	for _, s := range log.all {
		if s.State == StateRunning {
			runs[fmt.Sprintf("%s gen %d", s.TaskID, s.Generation)]++
		}
	}
	want := map[string]int{"svc-1 gen 1": 1, "svc-1 gen 2": 1, "bat-1 gen 1": 1}
	if !maps.Equal(runs, want) {
		t.Errorf("runs %v; want %v (each generation once, nothing restarted locally)", runs, want)
	}
}

// A kept copy (a task re-placed elsewhere whose replacement does not run
// yet) keeps running while it runs, but is never started, and a service
// copy that exits is not restarted.
func TestKeptCopyRunsButIsNeverStarted(t *testing.T) {
	m := testCgroups(t)
	e, log := newTestExecutor(t, m)
	// A service that exits once a file appears, so the test decides when.
	gate := filepath.Join(t.TempDir(), "exit")
	svc := Assignment{TaskID: "svc-1", Command: []string{"/bin/sh", "-c", "while [ ! -e " + gate + " ]; do sleep 0.05; done; exit 3"},
		JobType: "service", Generation: 1}
	e.Reconcile([]Assignment{svc})
	first := log.wait(t, "svc-1", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })

	kept := svc
	kept.Desired = DesiredKeep
	never := Assignment{TaskID: "new-1", Command: []string{"/bin/sh", "-c", "sleep 30"}, JobType: "service", Generation: 1, Desired: DesiredKeep}
	e.Reconcile([]Assignment{kept, never})
	time.Sleep(300 * time.Millisecond)
	if st, ok := e.Status("svc-1"); !ok || st.State != StateRunning || st.PID != first.PID {
		t.Fatalf("kept copy: %+v (ok=%v), want still running as pid %d", st, ok, first.PID)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	log.wait(t, "svc-1", 10*time.Second, func(s TaskStatus) bool { return s.State == StateFailed && s.ExitCode == 3 })
	time.Sleep(time.Second) // three restart backoffs
	log.mu.Lock()
	defer log.mu.Unlock()
	runs := 0
	for _, s := range log.all {
		if s.State == StateRunning && s.TaskID == "new-1" {
			t.Errorf("a kept copy that was not running was started: %+v", s)
		}
		if s.State == StateRunning && s.TaskID == "svc-1" && s.PID != first.PID {
			runs++
		}
	}
	if runs != 0 {
		t.Errorf("kept service copy restarted %d times after it exited, want 0", runs)
	}
}

// The directory of a task that left the node (its logs) is kept for the
// retention, then swept; a supervised task's directory never is.
func TestTaskDirectoriesSweptAfterRetention(t *testing.T) {
	m := testCgroups(t)
	log := newStatusLog()
	e, err := NewExecutor(ExecutorConfig{DataDir: t.TempDir(), Cgroups: m, Node: "test", GracePeriod: time.Second,
		TaskRetention: time.Hour, OnStatus: log.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.StopAll)
	done := Assignment{TaskID: "done-1", Command: []string{"/bin/sh", "-c", "echo bye"}, JobType: "batch", Generation: 1}
	live := Assignment{TaskID: "live-1", Command: []string{"sleep", "30"}, JobType: "service", Generation: 1}
	e.Reconcile([]Assignment{done, live})
	log.wait(t, "done-1", 10*time.Second, func(s TaskStatus) bool { return s.State == StateSucceeded })
	log.wait(t, "live-1", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
	e.Reconcile([]Assignment{live}) // done-1 leaves the node
	doneDir := filepath.Dir(e.LogPath("done-1"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat(filepath.Join(doneDir, "state.json"))
		if _, held := e.Status("done-1"); os.IsNotExist(err) && !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("done-1 was not removed from the executor")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := e.SweepTaskDirs(time.Now()); n != 0 {
		t.Fatalf("swept %d directories within the retention, want 0", n)
	}
	if b, err := os.ReadFile(e.LogPath("done-1")); err != nil || !strings.Contains(string(b), "bye") {
		t.Fatalf("finished task's log within the retention: %q, %v", b, err)
	}
	if n := e.SweepTaskDirs(time.Now().Add(2 * time.Hour)); n != 1 {
		t.Fatalf("swept %d directories after the retention, want 1 (done-1)", n)
	}
	if _, err := os.Stat(doneDir); !os.IsNotExist(err) {
		t.Fatalf("done-1's directory still there after the sweep: %v", err)
	}
	if _, err := os.Stat(e.LogPath("live-1")); err != nil {
		t.Fatalf("the running task's log was swept: %v", err)
	}
}

// TestFathomBurnRunsAsTheAgent: `fathom burn` with no fathom on the task's
// PATH is the agent's own executable (which carries burn); any other
// missing program is still refused.
func TestFathomBurnRunsAsTheAgent(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	env := []string{"PATH=" + t.TempDir()}
	if got, err := resolveCommand([]string{"fathom", "burn", "--cpu", "0.1"}, env); err != nil || got != self {
		t.Errorf("fathom burn: %q, %v; want the agent's own %s", got, err, self)
	}
	for _, argv := range [][]string{{"fathom", "job", "list"}, {"fathom"}, {"fathom-nope", "burn"}} {
		if _, err := resolveCommand(argv, env); err == nil || !strings.Contains(err.Error(), "not found in PATH") {
			t.Errorf("%v: %v, want not found in PATH", argv, err)
		}
	}
}
