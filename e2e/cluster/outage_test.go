package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// procSampler counts, over and over until stopped, the processes whose
// environment holds kv: the real processes, whatever the API says.
type procSampler struct {
	kv   string
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples int
	max     int
	maxAt   time.Time
	seen    map[int]bool
}

func sampleProcs(t *testing.T, kv string, every time.Duration) *procSampler {
	s := &procSampler{kv: kv, stop: make(chan struct{}), done: make(chan struct{}), seen: map[int]bool{}}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			pids := pidsWithEnv(kv)
			s.mu.Lock()
			s.samples++
			if len(pids) > s.max {
				s.max, s.maxAt = len(pids), time.Now()
			}
			for _, p := range pids {
				s.seen[p] = true
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(s.halt)
	return s
}

func (s *procSampler) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// result: samples taken, the most processes seen at once, and every pid seen.
func (s *procSampler) result() (samples, max int, pids []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.seen {
		pids = append(pids, p)
	}
	sort.Ints(pids)
	return s.samples, s.max, pids
}

// runsOf counts the lines (one per run) in each task's marker file in dir.
func runsOf(t *testing.T, dir string, ids []string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join(dir, id+".runs"))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		out[id] = strings.Count(string(b), "\n")
	}
	return out
}

func taskPIDs(ts []*fathomv1.Task) []int {
	var out []int
	for _, tk := range ts {
		if tk.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING {
			out = append(out, int(tk.GetPid()))
		}
	}
	sort.Ints(out)
	return out
}

func allIn(ts []*fathomv1.Task, st fathomv1.TaskState) bool {
	for _, tk := range ts {
		if tk.GetState() != st {
			return false
		}
	}
	return len(ts) > 0
}

// TestServerOutage is issue 11's measured fault, end to end: a real server,
// three real agents, a six-replica service, a three-task batch job whose
// tasks already exited 0, and a three-task batch job whose tasks finish
// while the server is down. SIGKILL the server, keep it down 25 s, restart
// it on the same data dir. Never more than six service processes run (the
// real processes, counted from /proc by a marker in their environment
// throughout), no service task restarts (the same six pids, generation 1),
// every batch task ran exactly once (each appends to a marker file per
// run), and no node is declared down.
//
// The heartbeat timeout is 5 s and the failover grace 10 s (defaults 10 s
// and 30 s) so that the test sees the whole grace pass within its budget;
// the outage is five heartbeat timeouts, as in the issue (25 s against 10 s
// would be 2.5).
func TestServerOutage(t *testing.T) {
	const (
		heartbeat = 5 * time.Second
		grace     = 10 * time.Second
		outage    = 25 * time.Second
	)
	c := startServer(t, "--heartbeat-timeout", heartbeat.String(), "--failover-grace", grace.String(), "--no-rightsizing")
	// Node names of this process's own: two runs of the package at once must
	// not share cgroup parents or kill each other's tasks on cleanup.
	for _, n := range []string{"a", "b", "c"} {
		c.startAgent(fmt.Sprintf("e2e-out-%s-%d", n, os.Getpid()), "2", "2Gi")
	}
	c.waitNodesUp(3)

	mark := fmt.Sprintf("FATHOM_E2E_OUTAGE=%d", os.Getpid())
	runs := t.TempDir()
	flag := filepath.Join(t.TempDir(), "finish")
	web := c.submit(fmt.Sprintf(`name: web
namespace: e2e
type: service
priority: prod
replicas: 6
task:
  command: ["/bin/sleep", "3600"]
  env: {FATHOM_E2E_OUTAGE: "%d"}
  resources: {cpu: 100m, memory: 32Mi}
`, os.Getpid()))
	etl := c.submit(`name: etl
namespace: e2e
type: batch
priority: batch
replicas: 3
task:
  command: ["/bin/sh", "-c", "echo run >> ` + runs + `/$FATHOM_TASK_ID.runs"]
  resources: {cpu: 100m, memory: 32Mi}
`)
	lateMark := fmt.Sprintf("FATHOM_E2E_LATE=%d", os.Getpid())
	late := c.submit(fmt.Sprintf(`name: late
namespace: e2e
type: batch
priority: batch
replicas: 3
task:
  command: ["/bin/sh", "-c", "echo run >> %s/$FATHOM_TASK_ID.runs; while [ ! -e %s ]; do sleep 0.1; done"]
  env: {FATHOM_E2E_LATE: "%d"}
  resources: {cpu: 100m, memory: 32Mi}
`, runs, flag, os.Getpid()))
	sampler := sampleProcs(t, mark, 20*time.Millisecond)

	var before []int
	c.waitFor("six service replicas running, the etl tasks succeeded and the late tasks running", 60*time.Second, func() bool {
		ws := c.tasks(web)
		n, _ := running(ws)
		before = taskPIDs(ws)
		nl, _ := running(c.tasks(late))
		return n == 6 && allIn(c.tasks(etl), fathomv1.TaskState_TASK_STATE_SUCCEEDED) && nl == 3
	})
	ids := func(job string) []string {
		var out []string
		for i := range 3 {
			out = append(out, fmt.Sprintf("%s-%d", job, i))
		}
		return out
	}
	batchIDs := append(ids(etl), ids(late)...)
	if got := pidsWithEnv(mark); len(got) != 6 {
		t.Fatalf("%d service processes before the outage; want 6", len(got))
	}

	// The fault: the server is gone for 25 s. Meanwhile the late tasks
	// finish; their exits wait in the agents.
	killed := time.Now()
	c.killServer()
	back := killed.Add(outage)
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the late batch tasks' processes exited", outage, func() bool { return len(pidsWithEnv(lateMark)) == 0 })
	time.Sleep(time.Until(back)) // the outage itself, to its deadline
	c.restartServer()
	restarted := time.Now()
	t.Logf("server down %s (SIGKILL to ready again)", restarted.Sub(killed).Round(time.Millisecond))

	// Settled: every node up, the six replicas running with the same pids,
	// every batch task succeeded.
	var after []int
	settle := c.waitFor("the cluster settled", 30*time.Second, func() bool {
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
		ws := c.tasks(web)
		n, _ := running(ws)
		after = taskPIDs(ws)
		return up == 3 && n == 6 && allIn(c.tasks(etl), fathomv1.TaskState_TASK_STATE_SUCCEEDED) &&
			allIn(c.tasks(late), fathomv1.TaskState_TASK_STATE_SUCCEEDED)
	})
	t.Logf("settled %s after the restart", settle.Round(time.Millisecond))

	// Watch through the whole failover grace and one heartbeat timeout
	// beyond: a node not heard from would be declared down by then.
	watchUntil := restarted.Add(grace + heartbeat + time.Second)
	c.waitFor("the failover grace and a heartbeat timeout passed with every node up", time.Until(watchUntil)+10*time.Second, func() bool {
		resp := &fathomv1.ListNodesResponse{}
		if err := c.do("GET", "/v1/nodes", nil, resp); err != nil {
			t.Fatal(err)
		}
		for _, nd := range resp.GetNodes() {
			if nd.GetState() != fathomv1.NodeState_NODE_STATE_UP {
				t.Errorf("node %s is %v %s after the restart", nd.GetName(), nd.GetState(), time.Since(restarted).Round(time.Millisecond))
				return true
			}
		}
		return time.Now().After(watchUntil)
	})
	sampler.halt()
	samples, maxProcs, seen := sampler.result()
	t.Logf("service processes: at most %d at once over %d samples; pids seen %v", maxProcs, samples, seen)

	if maxProcs > 6 {
		t.Errorf("%d service processes ran at once; want at most 6", maxProcs)
	}
	if !slices.Equal(before, after) || !slices.Equal(seen, before) {
		t.Errorf("service pids before %v, after %v, every pid seen %v; want the same six throughout (no restart)", before, after, seen)
	}
	for _, tk := range c.tasks(web) {
		if tk.GetGeneration() != 1 || tk.GetRestarts() != 0 {
			t.Errorf("service task %s: generation %d, restarts %d; want 1 and 0", tk.GetId(), tk.GetGeneration(), tk.GetRestarts())
		}
		for _, h := range tk.GetHistory() {
			if h.GetState() == fathomv1.TaskState_TASK_STATE_LOST {
				t.Errorf("service task %s was lost: %q", tk.GetId(), h.GetMessage())
			}
		}
	}
	got := runsOf(t, runs, batchIDs)
	for _, id := range batchIDs {
		if got[id] != 1 {
			t.Errorf("batch task %s ran %d times; want exactly once", id, got[id])
		}
	}
	t.Logf("batch runs per task: %v", got)
	if v, ok := c.metric("fathom_api_nodes_down_total"); !ok || v != 0 {
		t.Errorf("restarted server: fathom_api_nodes_down_total %v (present %v); want 0", v, ok)
	}
	if v, ok := c.metric("fathom_api_task_placements_total"); !ok || v != 0 {
		t.Errorf("restarted server: fathom_api_task_placements_total %v (present %v); want 0 (nothing placed again)", v, ok)
	}
}
