package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// TestRestartPolicyConstraintsAndSpread drives the real binary with two
// agents, one labelled zone=a and one zone=b:
//   - a batch task with restart {attempts: 2} that exits 1 runs 3 times
//     (counted by the task itself, in a file), then is failed with exit
//     code 1 and its last output in the reason; its job is failed;
//   - a three-replica service constrained to zone=b runs only on the zone=b
//     node; one spread over zone runs two replicas in each zone;
//   - a bad constraint is a 400 naming the field.
func TestRestartPolicyConstraintsAndSpread(t *testing.T) {
	c := startServer(t, "--no-rightsizing")
	c.startAgent("e2e-za", "2", "2Gi", "--label", "zone=a")
	c.startAgent("e2e-zb", "2", "2Gi", "--label", "zone=b")
	c.waitNodesUp(2)

	runs := filepath.Join(t.TempDir(), "runs")
	flaky := c.submit(`name: flaky
type: batch
restart: {attempts: 2, delay: 1s, interval: 1m}
task:
  command: ["/bin/sh", "-c", "echo run >> ` + runs + `; echo reading input; echo 'fatal: no such table' >&2; exit 1"]
  resources: {cpu: 100m, memory: 32Mi}
`)
	pinned := c.submit(`name: pinned
replicas: 3
constraints: [{label: zone, op: "=", value: b}]
task:
  command: ["sleep", "600"]
  resources: {cpu: 100m, memory: 32Mi}
`)
	spread := c.submit(`name: spread
replicas: 4
spread: {label: zone}
task:
  command: ["sleep", "600"]
  resources: {cpu: 100m, memory: 32Mi}
`)

	var failed *fathomv1.Task
	took := c.waitFor("the flaky batch task failed", 60*time.Second, func() bool {
		ts := c.tasks(flaky)
		if len(ts) == 1 && ts[0].GetState() == fathomv1.TaskState_TASK_STATE_FAILED {
			failed = ts[0]
			return true
		}
		return false
	})
	b, _ := os.ReadFile(runs)
	if n := strings.Count(string(b), "run\n"); n != 3 {
		t.Errorf("the batch task ran %d times; want 3 (1 + 2 restarts)", n)
	}
	if failed.GetExitCode() != 1 || !strings.Contains(failed.GetReason(), "exited 1") || !strings.Contains(failed.GetReason(), "fatal: no such table") {
		t.Errorf("failed task: exit code %d, reason %q; want exit code 1 and the last output", failed.GetExitCode(), failed.GetReason())
	}
	job := &fathomv1.Job{}
	if err := c.do("GET", "/v1/jobs/"+flaky, nil, job); err != nil {
		t.Fatal(err)
	}
	if job.GetState() != fathomv1.JobState_JOB_STATE_FAILED {
		t.Errorf("flaky job state %v; want failed", job.GetState())
	}
	t.Logf("batch task failed after 3 runs in %s: %q", took.Round(time.Millisecond), failed.GetReason())

	c.waitFor("the pinned service runs 3 replicas", 30*time.Second, func() bool {
		n, _ := running(c.tasks(pinned))
		return n == 3
	})
	for _, tk := range c.tasks(pinned) {
		if tk.GetNode() != "e2e-zb" {
			t.Errorf("task %s of a job constrained to zone=b runs on %s", tk.GetId(), tk.GetNode())
		}
	}
	c.waitFor("the spread service runs 4 replicas", 30*time.Second, func() bool {
		n, _ := running(c.tasks(spread))
		return n == 4
	})
	if _, by := running(c.tasks(spread)); by["e2e-za"] != 2 || by["e2e-zb"] != 2 {
		t.Errorf("spread over zone: %v; want 2 per zone", by)
	}

	err := c.do("POST", "/v1/jobs", []byte("name: bad\nconstraints: [{label: zone, op: in}]\ntask: {command: [sleep, '1']}"), nil)
	if err == nil || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), "constraints[0].value") {
		t.Errorf("a constraint with op in and no values: %v; want a 400 naming constraints[0].value", err)
	}
}
