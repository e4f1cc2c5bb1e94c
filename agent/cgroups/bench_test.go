package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// BenchmarkSample reads one group's counters the way the sampler does every
// second for every task.
func BenchmarkSample(b *testing.B) {
	parent := fmt.Sprintf("fathom-bench-%d", os.Getpid())
	m, err := New("auto", parent)
	if err != nil || m.Mode() == ModeNone {
		b.Skip("no writable cgroup")
	}
	g, err := m.Create("sample")
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if err := g.AddProc(cmd.Process.Pid); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = g.Kill()
		_ = cmd.Wait()
		_ = g.Delete()
		m.RemoveParent()
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := g.Sample(); err != nil {
			b.Fatal(err)
		}
	}
}
