package cgroups

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestV2OnTheUnifiedHierarchy forces the cgroup2 back end on the machine's
// real unified hierarchy and checks, with real processes, what it can do
// there: a task cgroup is created, the process lands in it (cgroup.procs and
// /proc/<pid>/cgroup), its CPU time is read from cpu.stat usage_usec,
// cgroup.events says populated, the freezer stops it, cgroup.kill (or the
// per-pid fallback) kills it, and the group is removed. Where the cpu or
// memory controller is bound to cgroup v1 (hybrid machines), the back end
// must come up degraded, say so, and still do all of the above.
func TestV2OnTheUnifiedHierarchy(t *testing.T) {
	parent := fmt.Sprintf("fathom-test-%d-v2", os.Getpid())
	m, err := New(string(ModeV2), parent)
	if err != nil {
		t.Skipf("no writable cgroup2 hierarchy here (%v): needs root and a mounted cgroup2 tree", err)
	}
	v := m.(*v2)
	t.Cleanup(func() { _ = os.Remove(v.parent) })
	missing := m.Missing()
	t.Logf("cgroup2 parent %s, missing controllers %q, node enforcement %q", v.parent, missing, Enforcement(m))
	ctrls, _ := os.ReadFile(filepath.Join(filepath.Dir(v.parent), "cgroup.controllers"))
	for _, c := range v2Controllers {
		if strings.Contains(" "+string(ctrls)+" ", " "+c+" ") == contains(missing, c) {
			t.Errorf("controller %s: cgroup.controllers %q, but Missing() = %q", c, strings.TrimSpace(string(ctrls)), missing)
		}
	}
	switch {
	case len(missing) == 0:
		if Enforcement(m) != ModeV2 || Degraded(m) != "" {
			t.Errorf("full cgroup2: enforcement %q, degraded %q", Enforcement(m), Degraded(m))
		}
	case contains(missing, "memory"):
		if Enforcement(m) != ModeNone || !strings.Contains(Degraded(m), "memory") {
			t.Errorf("cgroup2 without memory: enforcement %q (want none), degraded %q", Enforcement(m), Degraded(m))
		}
	}
	if err := m.SetParentCPU(2); err != nil {
		t.Errorf("SetParentCPU: %v", err)
	}

	g, err := m.Create("v2task")
	if err != nil {
		t.Fatal(err)
	}
	gv := g.(*v2Group)
	// A busy process: real CPU for cpu.stat to count.
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := g.AddProc(pid); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	if err := g.SetLimits(Limits{CPUCores: 0.5, MemoryBytes: 256 << 20}); err != nil {
		t.Fatalf("SetLimits (missing controllers must be skipped, not fail): %v", err)
	}
	if pids, err := g.Procs(); err != nil || len(pids) != 1 || pids[0] != pid {
		t.Fatalf("cgroup.procs = %v, %v; want [%d]", pids, err, pid)
	}
	own, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	rel := strings.TrimPrefix(gv.path, filepath.Dir(v.parent))
	if !strings.Contains(string(own), "0::") || !strings.HasSuffix(strings.TrimSpace(lineWith(string(own), "0::")), rel) {
		t.Errorf("/proc/%d/cgroup has %q, want the v2 line to end in %s", pid, lineWith(string(own), "0::"), rel)
	}
	if ev := readEvents(t, gv); ev["populated"] != 1 {
		t.Errorf("cgroup.events %v: want populated 1 with a process inside", ev)
	}

	time.Sleep(500 * time.Millisecond)
	st, err := g.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	procCPU := procSeconds(t, pid)
	if st.CPUSeconds < 0.05 || st.CPUSeconds > procCPU+0.05 {
		t.Errorf("cpu.stat usage_usec gave %.3f s; the process itself used %.3f s (want 0.05 s or more, and no more than the process)", st.CPUSeconds, procCPU)
	}
	if st.MemoryWorkingSet <= 0 {
		t.Errorf("working set %d: want the shell's resident memory", st.MemoryWorkingSet)
	}

	// Frozen, the process uses no CPU; thawed, it runs again.
	if err := g.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if ev := readEvents(t, gv); ev["frozen"] != 1 {
		t.Errorf("cgroup.events %v after Freeze: want frozen 1", ev)
	}
	a, _ := g.Stats()
	time.Sleep(300 * time.Millisecond)
	b, _ := g.Stats()
	if b.CPUSeconds-a.CPUSeconds > 0.02 {
		t.Errorf("frozen group used %.3f s of CPU in 0.3 s", b.CPUSeconds-a.CPUSeconds)
	}
	if err := g.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if c, _ := g.Stats(); c.CPUSeconds-b.CPUSeconds < 0.02 {
		t.Errorf("thawed group used only %.3f s of CPU in 0.3 s", c.CPUSeconds-b.CPUSeconds)
	}

	_, statErr := os.Stat(filepath.Join(gv.path, "cgroup.kill"))
	t.Logf("cgroup.kill present: %v (else the per-pid SIGKILL fallback runs)", statErr == nil)
	if err := g.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	werr := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("after Kill the process ended with %v, want SIGKILL", werr)
	}
	deadline := time.Now().Add(2 * time.Second)
	for readEvents(t, gv)["populated"] != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if ev := readEvents(t, gv); ev["populated"] != 0 {
		t.Errorf("cgroup.events %v after Kill: want populated 0", ev)
	}
	if err := g.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := os.Stat(gv.path); !os.IsNotExist(err) {
		t.Errorf("group %s still exists after Delete", gv.path)
	}
}

func lineWith(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func readEvents(t *testing.T, g *v2Group) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.path, "cgroup.events"))
	if err != nil {
		t.Fatalf("cgroup.events: %v", err)
	}
	out := map[string]int64{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			out[k], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return out
}

// procSeconds is utime+stime of pid from /proc/<pid>/stat.
func procSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f, err := statFields(b)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := strconv.ParseFloat(string(f[14-3]), 64)
	s, _ := strconv.ParseFloat(string(f[15-3]), 64)
	return (u + s) / clockTicks
}
