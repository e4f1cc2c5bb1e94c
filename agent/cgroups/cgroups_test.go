package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestGroupLifecycle(t *testing.T) {
	parent := fmt.Sprintf("fathom-test-%d-lifecycle", os.Getpid())
	m, err := New("auto", parent)
	if err != nil {
		t.Skipf("cannot inspect cgroups here: %v", err)
	}
	if m.Mode() == ModeNone {
		t.Skip("no writable cgroup (v1 or v2): needs root and a writable cgroup hierarchy")
	}
	defer m.RemoveParent()
	if _, err := m.Create("../escape"); err == nil {
		t.Error("Create accepted a name with '/'")
	}
	g, err := m.Create("life")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := g.AddProc(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := g.SetLimits(Limits{CPUCores: 0.5, MemoryBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	pids, err := g.Procs()
	if err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Fatalf("Procs = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}
	// (Memory a process charged before it moved stays with its old group on
	// v1, so a fresh sleep may show none here; the executor tests cover
	// usage and ErrLimitBelowUsage with a process that allocates inside.)
	if _, err := g.Stats(); err != nil {
		t.Fatalf("Stats: %v", err)
	}
	// Re-open by the persisted paths, as a restarted agent does.
	g2, err := m.Open(g.Paths())
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if err = g2.Delete(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Delete after Kill: %v", err)
	}
	start, err := ProcStartTime(os.Getpid())
	if err != nil || start == 0 {
		t.Errorf("ProcStartTime(self) = %d, %v", start, err)
	}
}

// TestRemoveParent: the parent stays while a group is under it and goes
// once the groups are deleted.
func TestRemoveParent(t *testing.T) {
	parent := fmt.Sprintf("fathom-test-%d-removeparent", os.Getpid())
	m, err := New("auto", parent)
	if err != nil {
		t.Skipf("cannot inspect cgroups here: %v", err)
	}
	if m.Mode() == ModeNone {
		t.Skip("no writable cgroup (v1 or v2): needs root and a writable cgroup hierarchy")
	}
	var dirs []string
	switch v := m.(type) {
	case *v1:
		for _, d := range v.parents {
			dirs = append(dirs, d)
		}
	case *v2:
		dirs = []string{v.parent}
	}
	g, err := m.Create("kept")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveParent(); err != nil {
		t.Fatalf("RemoveParent with a group under it: %v, want no error", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("parent %s removed while a group is under it: %v", d, err)
		}
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveParent(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("empty parent %s still there (%v)", d, err)
		}
	}
	if err := m.RemoveParent(); err != nil {
		t.Errorf("RemoveParent twice: %v", err)
	}
}
