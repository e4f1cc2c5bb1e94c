package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// fathomCLI runs the real binary against the cluster and returns its output.
func (c *cluster) fathomCLI(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "FATHOM_ADDR="+c.api)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("fathom %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runningWatch follows the job's tasks through the watch API (every
// committed change) and keeps the fewest running at once.
type runningWatch struct {
	mu     sync.Mutex
	state  map[string]fathomv1.TaskState
	fewest int
	events int
}

func (c *cluster) watchRunning(ctx context.Context, job string) *runningWatch {
	w := &runningWatch{state: map[string]fathomv1.TaskState{}, fewest: 1 << 30}
	req, _ := http.NewRequestWithContext(ctx, "GET", c.api+"/v1/watch/tasks?job_id="+url.QueryEscape(job), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var once sync.Once
		for sc.Scan() {
			var line struct {
				Result json.RawMessage `json:"result"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil || line.Result == nil {
				continue
			}
			ev := &fathomv1.TaskEvent{}
			if protojson.Unmarshal(line.Result, ev) != nil {
				continue
			}
			w.mu.Lock()
			w.state[ev.GetTask().GetId()] = ev.GetTask().GetState()
			w.events++
			if ev.GetType() != fathomv1.EventType_EVENT_TYPE_EXISTING || len(w.state) == 4 {
				n := 0
				for _, st := range w.state {
					if st == fathomv1.TaskState_TASK_STATE_RUNNING {
						n++
					}
				}
				w.fewest = min(w.fewest, n)
				once.Do(func() { close(ready) })
			}
			w.mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		c.t.Fatal("the task watch sent nothing in 10 s")
	}
	return w
}

func (w *runningWatch) min() (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fewest, w.events
}

// sampleProcesses counts the job's task processes (those running prog with
// FATHOM_JOB_ID=job in their environment) every 20 ms and keeps the fewest.
func sampleProcesses(ctx context.Context, job, prog string) func() int {
	var mu sync.Mutex
	fewest := 1 << 30
	go func() {
		for ctx.Err() == nil {
			n := 0
			for _, pid := range pidsWithEnv("FATHOM_JOB_ID=" + job) {
				if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline")); err == nil && strings.HasPrefix(string(b), prog+"\x00") {
					n++
				}
			}
			mu.Lock()
			fewest = min(fewest, n)
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int { mu.Lock(); defer mu.Unlock(); return fewest }
}

func (c *cluster) job(id string) *fathomv1.Job {
	c.t.Helper()
	j := &fathomv1.Job{}
	if err := c.do("GET", "/v1/jobs/"+url.PathEscape(id), nil, j); err != nil {
		c.t.Fatal(err)
	}
	return j
}

// allOn reports whether the job's n tasks run version v and are healthy.
func (c *cluster) allOn(id string, v int64, n int) bool {
	ts := c.tasks(id)
	ok := 0
	for _, t := range ts {
		if t.GetState() == fathomv1.TaskState_TASK_STATE_RUNNING && t.GetVersion() == v && t.GetHealth() == fathomv1.HealthState_HEALTH_STATE_HEALTHY {
			ok++
		}
	}
	return ok == n && len(ts) == n
}

// TestRollingUpdateAndAutoRevert: a 4-replica service with a command health
// check and max_parallel 1 is updated to a new command with `fathom job
// run`: never fewer than 3 of its tasks run (every committed task change,
// through the watch API, and its processes sampled every 20 ms), and all 4
// run the new version within 2 minutes. An update whose health check fails
// (/bin/false) with auto_revert rolls back; `job history` lists the
// versions; `job scale` to 6 gives 6.
func TestRollingUpdateAndAutoRevert(t *testing.T) {
	c := startServer(t, "--no-rightsizing")
	c.startAgent("e2e-deploy", "4", "4Gi")
	c.waitNodesUp(1)
	dir := t.TempDir()
	spec := func(arg, check string) string {
		p := filepath.Join(dir, arg+".yaml")
		s := `name: web
replicas: 4
update: {max_parallel: 1, min_healthy_time: 2s, healthy_deadline: 15s, auto_revert: true}
task:
  command: [/bin/sleep, "` + arg + `"]
  health_check: {command: [` + check + `], interval: 1s, timeout: 1s}
`
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := c.fathomCLI("job", "run", spec("3600", "/bin/true"))
	t.Logf("fathom job run (v1): %s", strings.TrimSpace(out))
	id := strings.Fields(out)[1]
	c.waitFor("4 tasks healthy on version 1", 60*time.Second, func() bool { return c.allOn(id, 1, 4) })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := c.watchRunning(ctx, id)
	procs := sampleProcesses(ctx, id, "/bin/sleep")
	plan := c.fathomCLI("job", "plan", spec("3601", "/bin/true"))
	t.Logf("fathom job plan:\n%s", plan)
	if !strings.Contains(plan, "version 1 -> 2") || !strings.Contains(plan, "task.command") {
		t.Errorf("plan does not say version 1 -> 2 and task.command:\n%s", plan)
	}
	out = c.fathomCLI("job", "run", spec("3601", "/bin/true"))
	t.Logf("fathom job run (v2): %s", strings.TrimSpace(out))
	took := c.waitFor("all 4 tasks on version 2", 2*time.Minute, func() bool {
		return c.allOn(id, 2, 4) && c.job(id).GetDeployment().GetStatus() == "successful"
	})
	fewest, events := watch.min()
	t.Logf("rollout to version 2: %s; fewest running tasks %d (over %d task events), fewest task processes %d", took.Round(100*time.Millisecond), fewest, events, procs())
	if fewest < 3 || procs() < 3 {
		t.Errorf("fewer than 3 tasks ran during the rollout: %d running tasks, %d processes", fewest, procs())
	}
	for _, tk := range c.tasks(id) {
		if pids := pidsOfTask(tk.GetId()); len(pids) == 0 {
			t.Errorf("task %s has no process", tk.GetId())
		}
	}

	// A version whose health check fails: the rollout fails at its
	// deadline and rolls back to version 2 as version 4.
	out = c.fathomCLI("job", "run", spec("3602", "/bin/false"))
	t.Logf("fathom job run (v3, failing check): %s", strings.TrimSpace(out))
	took = c.waitFor("rolled back to version 2's spec as version 4", 2*time.Minute, func() bool {
		j := c.job(id)
		return j.GetVersion() == 4 && j.GetDeployment().GetStatus() == "successful" && c.allOn(id, 4, 4)
	})
	fewest, _ = watch.min()
	t.Logf("failed rollout and rollback: %s; fewest running tasks %d, fewest task processes %d", took.Round(100*time.Millisecond), fewest, procs())
	if fewest < 3 || procs() < 3 {
		t.Errorf("fewer than 3 tasks ran during the failed rollout: %d running, %d processes", fewest, procs())
	}
	if j := c.job(id); strings.Join(j.GetSpec().GetTask().GetCommand(), " ") != "/bin/sleep 3601" {
		t.Errorf("after the rollback the spec runs %v, want /bin/sleep 3601", j.GetSpec().GetTask().GetCommand())
	}

	hist := &fathomv1.ListJobVersionsResponse{}
	h := c.fathomCLI("job", "history", "web", "-o", "json")
	if err := protojson.Unmarshal([]byte(h), hist); err != nil {
		t.Fatalf("job history -o json: %v\n%s", err, h)
	}
	var got []string
	for _, v := range hist.GetVersions() {
		got = append(got, strconv.FormatInt(v.GetVersion(), 10)+":"+v.GetStatus())
	}
	t.Logf("fathom job history:\n%s", c.fathomCLI("job", "history", "web"))
	if strings.Join(got, " ") != "4:successful 3:failed 2:successful 1:" {
		t.Errorf("history = %v, want 4:successful 3:failed 2:successful 1:", got)
	}

	out = c.fathomCLI("job", "scale", "web", "6")
	t.Logf("fathom job scale web 6: %s", strings.TrimSpace(out))
	c.waitFor("6 tasks running", time.Minute, func() bool { n, _ := running(c.tasks(id)); return n == 6 })
}
