package cluster

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// meminfo reads MemTotal and MemAvailable (bytes) from /proc/meminfo.
func meminfo(t *testing.T) (total, avail int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "MemTotal:":
			total = v << 10
		case "MemAvailable:":
			avail = v << 10
		}
	}
	return total, avail
}

// TestEvictedTaskBacksOff is issue 11's eviction fault, end to end: a
// best-effort task evicted under memory pressure had gone straight back to
// the node that evicted it (its learned request stayed tiny), 11 evictions in
// 40 s. Here a real agent offering 300Mi with an eviction threshold of 50%
// runs a `fathom burn` of 200Mi submitted without sizes (a 64Mi cold-start
// request): the agent evicts it. The server raises its request to what it
// used and keeps it off that node: a placement round leaves it pending with
// the node filtered as avoided, and nothing of it runs there. When a second
// node with room joins, the task runs there, once, evicted once in all.
func TestEvictedTaskBacksOff(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the agent measures tasks' memory in their cgroups")
	}
	// The small agent also evicts when the machine is half full; then it
	// could evict the task before it reaches 200Mi.
	if total, avail := meminfo(t); avail < total*55/100 {
		t.Skipf("machine memory %d of %d bytes in use: the small node's 50%% threshold would evict for others' use", total-avail, total)
	}
	c := startServer(t, "--heartbeat-timeout", "5s", "--no-rightsizing")
	small := fmt.Sprintf("e2e-ev-small-%d", os.Getpid())
	big := fmt.Sprintf("e2e-ev-big-%d", os.Getpid())
	c.startAgent(small, "1", "300Mi", "--eviction-threshold", "0.5")
	c.waitNodesUp(1)

	mark := fmt.Sprintf("FATHOM_E2E_EVICT=%d", os.Getpid())
	sampler := sampleProcs(t, mark, 50*time.Millisecond)
	job := c.submit(fmt.Sprintf(`name: hog
namespace: e2e
type: batch
priority: best-effort
task:
  command: [%q, "burn", "--cpu", "0.05", "--memory", "200Mi"]
  env: {FATHOM_E2E_EVICT: "%d"}
`, bin, os.Getpid()))
	id := job + "-0"
	get := func() *fathomv1.Task {
		ts := c.tasks(job)
		if len(ts) != 1 {
			t.Fatalf("%d tasks; want 1", len(ts))
		}
		return ts[0]
	}

	var tk *fathomv1.Task
	took := c.waitFor("the task evicted and a round keeping it off "+small, 60*time.Second, func() bool {
		tk = get()
		return tk.GetEvictions() == 1 && tk.GetState() == fathomv1.TaskState_TASK_STATE_PENDING && strings.Contains(tk.GetReason(), "avoided")
	})
	t.Logf("evicted and held off %s %s after the submission: memory request %d MiB, avoid %s until %s; reason %q",
		small, took.Round(time.Millisecond), tk.GetMemoryRequestBytes()>>20, tk.GetAvoidNode(), tk.GetAvoidUntil().AsTime().Format(time.RFC3339), tk.GetReason())
	var evictMsg string
	for _, h := range tk.GetHistory() {
		if strings.Contains(h.GetMessage(), "evicted") {
			evictMsg = h.GetMessage()
		}
	}
	t.Logf("history: %q", evictMsg)
	if tk.GetAvoidNode() != small {
		t.Errorf("avoid_node %q; want %s", tk.GetAvoidNode(), small)
	}
	if tk.GetMemoryRequestBytes() < 150<<20 {
		t.Errorf("memory request after the eviction %d MiB; want at least the 150 MiB it was evicted above", tk.GetMemoryRequestBytes()>>20)
	}
	if n := len(pidsWithEnv(mark)); n != 0 {
		t.Errorf("%d processes of the evicted task still run while it waits", n)
	}

	// A node with room joins: the task runs there, well before its back-off on
	// the small node ends.
	c.startAgent(big, "1", "2Gi")
	c.waitNodesUp(2)
	took = c.waitFor("the task running on "+big, 60*time.Second, func() bool {
		tk = get()
		return tk.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING && len(pidsWithEnv(mark)) == 1
	})
	t.Logf("running on %s %s after both nodes were up, pid %d, memory request %d MiB, limit %d MiB", tk.GetNode(), took.Round(time.Millisecond), tk.GetPid(), tk.GetMemoryRequestBytes()>>20, tk.GetMemoryLimitBytes()>>20)
	if tk.GetNode() != big {
		t.Errorf("task %s runs on %s; want %s", id, tk.GetNode(), big)
	}
	if tk.GetEvictions() != 1 {
		t.Errorf("%d evictions; want 1", tk.GetEvictions())
	}
	placedOnSmall := 0
	for _, h := range tk.GetHistory() {
		if h.GetState() == fathomv1.TaskState_TASK_STATE_PLACED && h.GetNode() == small {
			placedOnSmall++
		}
	}
	if placedOnSmall != 1 {
		t.Errorf("placed on %s %d times; want once (the first placement only)", small, placedOnSmall)
	}
	sampler.halt()
	samples, most, pids := sampler.result()
	t.Logf("task processes: at most %d at once over %d samples; pids %v", most, samples, pids)
	// The run on the big node is confirmed above by its pid in the API; the
	// 20 ms sampler can miss it when the job is stopped right after, so it
	// checks only that no two ran at once and that nothing else ran.
	if most > 1 || len(pids) == 0 || len(pids) > 2 {
		t.Errorf("at most %d processes at once, pids %v; want one at a time, at most two runs (the evicted one and the one on %s)", most, pids, big)
	}
	_ = c.do("DELETE", "/v1/jobs/"+job, nil, nil)
}
