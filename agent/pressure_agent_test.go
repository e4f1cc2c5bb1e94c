package agent

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestEvictionUnderMemoryPressure gives the node a small stated capacity so
// that three real tasks cross the threshold: the best-effort one is evicted
// and reported as such, the batch and prod ones keep running.
func TestEvictionUnderMemoryPressure(t *testing.T) {
	testCgroups(t)
	if total, avail := readMeminfo(); float64(avail) < 0.6*float64(total) {
		t.Skipf("machine memory is %d of %d bytes in use; the test's 50%% machine threshold would evict for others' use", total-avail, total)
	}
	srv := newCPServer(t, "127.0.0.1:0")
	parent := fmt.Sprintf("fathom-test-%d-%s", os.Getpid(), t.Name())
	t.Cleanup(func() { removeParent(parent) })
	_, _, stop := startAgent(t, Config{Server: srv.addr, Name: "p", CPU: 2, Memory: 300 << 20, EvictionThreshold: 0.5, DataDir: t.TempDir(),
		CgroupParent: parent, SampleInterval: 200 * time.Millisecond, PushInterval: time.Hour, RemoteWriteURL: "http://127.0.0.1:1/", GracePeriod: time.Second})
	defer stop()

	prod := burnTask("prod-0", "service", 0, "40Mi", "0s")
	prod.Priority = PriorityProd
	batch := burnTask("batch-0", "batch", 0, "40Mi", "0s")
	batch.Priority, batch.MemoryRequestBytes = PriorityBatch, 32<<20
	be := burnTask("be-0", "service", 0, "100Mi", "0s")
	be.Priority = PriorityBestEffort
	// Start the small ones first so the node crosses 150Mi only when be-0 grows.
	srv.assign(prod, batch)
	p, _ := srv.waitStatus(t, 0, "prod-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
	b, _ := srv.waitStatus(t, 0, "batch-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
	time.Sleep(time.Second)
	srv.assign(prod, batch, be)

	got, next := srv.waitStatus(t, 0, "be-0", 20*time.Second, func(s TaskStatus) bool { return s.State.Terminal() })
	if got.State != StateFailed || !got.Evicted || !strings.Contains(got.Reason, "memory pressure") {
		t.Fatalf("best-effort task: %+v, want FAILED evicted=true with a memory-pressure reason", got)
	}
	t.Logf("eviction reason: %s; memory used %d", got.Reason, got.MemoryUsed)
	// The report carries what it used (the node crossed 150Mi with 80Mi of
	// others), so the control plane can raise its request to it.
	if got.MemoryUsed < 64<<20 {
		t.Errorf("evicted task reported memory_used_bytes %d; want its working set, at least 64Mi", got.MemoryUsed)
	}
	time.Sleep(2 * time.Second)
	srv.mu.Lock()
	for _, s := range srv.statuses[next:] {
		if s.TaskID == "be-0" && s.State == StateRunning {
			t.Errorf("evicted task was started again: %+v", s)
		}
		if (s.TaskID == "prod-0" || s.TaskID == "batch-0") && s.State != StateRunning {
			t.Errorf("%s should keep running: %+v", s.TaskID, s)
		}
	}
	srv.mu.Unlock()
	for _, pid := range []int32{p.PID, b.PID} {
		if err := syscallKill0(int(pid)); err != nil {
			t.Errorf("pid %d should still run: %v", pid, err)
		}
	}
}
