package controller

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

// upTasks is the dumb twin of the rollout's availability rule: count the
// job's tasks that serve (running, and healthy when they have a check).
// It also returns the replicas and max_parallel of the job's current
// version (a rollback rolls out with its version's policy).
func upTasks(c *Controller, jobID string) (up, replicas, mp int) {
	v, _ := c.Job(jobID)
	mp = int(v.Job.Spec.policy().MaxParallel)
	ts, _ := c.JobTasks(jobID)
	for _, t := range ts {
		if int(t.Index) < int(v.Job.Spec.Replicas) && t.State == Running && t.Desired == DesiredRun && !t.HealthySince.IsZero() {
			up++
		}
	}
	return up, int(v.Job.Spec.Replicas), mp
}

// TestRolloutKeepsHealthy drives random sequences of updates (new
// commands, passing or failing health checks, policies, canaries and
// promotes, auto-revert) and time through the harness's controller and
// simulated agents, and checks after every round that a rollout never
// brings the tasks that serve below replicas − max_parallel: a round may
// lower that count only to replicas − max_parallel or above. When the last
// update's check passes, the rollout ends with every task on it.
func TestRolloutKeepsHealthy(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		h := newHarness(t)
		run := func(line string) string {
			out, err := h.run(parseCmd(t, line))
			if err != nil {
				rt.Fatalf("%s: %v", line, err)
			}
			return out
		}
		run("add-node name=n1 cpu=16 mem=32")
		run("add-node name=n2 cpu=16 mem=32")
		n := rapid.IntRange(1, 8).Draw(rt, "replicas")
		run(fmt.Sprintf("submit job=web replicas=%d cmd=/srv/v0 check=/bin/true min-healthy=2s", n))
		run("tick n=4")
		id := h.jobID("web")
		prev, _, _ := upTasks(h.c, id)
		lastPasses := true
		steps := rapid.IntRange(1, 40).Draw(rt, "steps")
		for i := range steps {
			switch rapid.IntRange(0, 5).Draw(rt, "event") {
			case 0: // an update
				mp := rapid.IntRange(1, n).Draw(rt, "max_parallel")
				check := rapid.SampledFrom([]string{"/bin/true", "/bin/true", "/bin/false"}).Draw(rt, "check")
				lastPasses = check == "/bin/true"
				canary := rapid.IntRange(0, 2).Draw(rt, "canary")
				out, err := h.run(parseCmd(t, fmt.Sprintf("update job=web cmd=/srv/v%d check=%s max-parallel=%d min-healthy=%s deadline=%s auto-revert=%v canary=%d",
					i+1, check, mp, rapid.SampledFrom([]string{"0s", "1s", "3s"}).Draw(rt, "min_healthy"),
					rapid.SampledFrom([]string{"5s", "20s"}).Draw(rt, "deadline"), rapid.Bool().Draw(rt, "auto_revert"), canary)))
				if err != nil {
					rt.Fatalf("update: %v\n%s", err, out)
				}
			case 1:
				_, _ = h.run(parseCmd(t, "promote job=web"))
			default:
				run(fmt.Sprintf("tick dt=%s", rapid.SampledFrom([]string{"500ms", "1s", "3s"}).Draw(rt, "dt")))
			}
			up, replicas, mp := upTasks(h.c, id)
			if floor := replicas - mp; up < prev && up < floor {
				rt.Fatalf("step %d: %d of %d tasks serve (was %d); max_parallel %d allows no fewer than %d\n%s", i, up, replicas, prev, mp, floor, h.printDeployment("web"))
			}
			prev = up
		}
		// Settle: promote anything paused and let the rollout finish.
		for range 120 {
			_, _ = h.run(parseCmd(t, "promote job=web"))
			run("tick dt=1s")
			if up, replicas, mp := upTasks(h.c, id); up < prev && up < replicas-mp {
				rt.Fatalf("settling: %d of %d tasks serve (was %d), max_parallel %d\n%s", up, replicas, prev, mp, h.printDeployment("web"))
			} else {
				prev = up
			}
		}
		v, _ := h.c.Job(id)
		if d := v.Job.Deployment; d.Active() {
			rt.Fatalf("rollout still %s after 2 minutes: %s", d.Status, d.Message)
		}
		if lastPasses && v.Job.Deployment != nil && v.Job.Deployment.Status != DeploySuccessful {
			rt.Fatalf("the last update's check passes, but its rollout %s: %s", v.Job.Deployment.Status, v.Job.Deployment.Message)
		}
		if d := v.Job.Deployment; d != nil && d.Status == DeploySuccessful {
			ts, _ := h.c.JobTasks(id)
			for _, tk := range ts {
				if tk.Version != v.Job.Version || tk.State != Running {
					rt.Fatalf("rollout successful but task %s is %s on version %d (job version %d)", tk.ID(), tk.State, tk.Version, v.Job.Version)
				}
			}
		}
	})
}
