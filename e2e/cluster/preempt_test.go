package cluster

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// TestProdPreemptsBatch: two agents full of batch tasks; a prod task that
// fits nowhere preempts one of them. The victim's process is stopped and it
// goes back to pending with the reason (shown by `fathom job status`), and
// the prod task runs.
func TestProdPreemptsBatch(t *testing.T) {
	c := startServer(t, "--heartbeat-timeout", "5s", "--no-rightsizing")
	for _, n := range []string{"e2e-p1", "e2e-p2"} {
		c.startAgent(n, "1", "1Gi")
	}
	c.waitNodesUp(2)
	fill := c.submit(`name: fill
namespace: e2e
type: batch
priority: batch
replicas: 4
task:
  command: ["/bin/sleep", "3600"]
  resources: {cpu: 500m}
`)
	c.waitFor("four batch tasks running", 60*time.Second, func() bool {
		n, _ := running(c.tasks(fill))
		return n == 4
	})
	prod := c.submit(`name: api
namespace: e2e
type: service
priority: prod
replicas: 1
task:
  command: ["/bin/sleep", "3600"]
  resources: {cpu: 500m}
`)
	var prodTask *fathomv1.Task
	took := c.waitFor("the prod task running", 60*time.Second, func() bool {
		ts := c.tasks(prod)
		if len(ts) == 1 && ts[0].GetState() == fathomv1.TaskState_TASK_STATE_RUNNING {
			prodTask = ts[0]
			return true
		}
		return false
	})
	t.Logf("prod task running on %s after %s: %s", prodTask.GetNode(), took.Round(time.Millisecond), prodTask.GetHistory()[0].GetMessage())
	var victim *fathomv1.Task
	c.waitFor("one batch task back to pending, three running", 20*time.Second, func() bool {
		victim = nil
		ts := c.tasks(fill)
		for _, tk := range ts {
			if tk.GetState() == fathomv1.TaskState_TASK_STATE_PENDING {
				victim = tk
			}
		}
		n, _ := running(ts)
		return victim != nil && n == 3
	})
	want := "preempted by " + prodTask.GetId() + " (prod)"
	if !strings.Contains(victim.GetReason(), want) {
		t.Errorf("victim %s reason %q; want it to say %q", victim.GetId(), victim.GetReason(), want)
	}
	t.Logf("victim %s: %s", victim.GetId(), victim.GetReason())
	out, err := exec.Command(bin, "job", "status", fill, "--server", c.api).CombinedOutput()
	if err != nil {
		t.Fatalf("fathom job status: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), want) {
		t.Errorf("fathom job status does not say %q:\n%s", want, out)
	}
	// The victim's process is gone: no process runs with its task id.
	c.waitFor("the victim's process stopped", 20*time.Second, func() bool { return len(pidsOfTask(victim.GetId())) == 0 })
	if pids := pidsOfTask(prodTask.GetId()); len(pids) != 1 {
		t.Errorf("prod task %s: %d processes (%v); want 1", prodTask.GetId(), len(pids), pids)
	}
}

// pidsOfTask lists the processes an agent started for task id
// (FATHOM_TASK_ID in their environment).
func pidsOfTask(id string) []int { return pidsWithEnv("FATHOM_TASK_ID=" + id) }
