package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
)

// beats heartbeats the named nodes every 100 ms until the test ends;
// set changes which nodes beat.
type beats struct {
	mu    sync.Mutex
	nodes map[string]bool
}

func (h *harness) heartbeats(nodes ...string) *beats {
	b := &beats{nodes: map[string]bool{}}
	b.set(nodes...)
	ctx := h.t.Context()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			b.mu.Lock()
			var ns []string
			for n, on := range b.nodes {
				if on {
					ns = append(ns, n)
				}
			}
			b.mu.Unlock()
			for _, n := range ns {
				_, _ = h.agents.Heartbeat(context.Background(), &fathomv1.HeartbeatRequest{NodeId: n})
			}
		}
	}()
	return b
}

func (b *beats) set(nodes ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.nodes)
	for _, n := range nodes {
		b.nodes[n] = true
	}
}

func (h *harness) submit(spec *fathomv1.JobSpec) string {
	h.t.Helper()
	resp, err := h.jobs.CreateJob(h.t.Context(), &fathomv1.CreateJobRequest{Spec: spec})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetId()
}

func (h *harness) allTasks(job string) []*fathomv1.Task {
	h.t.Helper()
	resp, err := h.jobs.ListTasks(h.t.Context(), &fathomv1.ListTasksRequest{JobId: job})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetTasks()
}

// metric returns the sum of the samples of name on /metrics whose labels
// contain every one of match.
func (h *harness) metric(name string, match ...string) float64 {
	h.t.Helper()
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := 0.0
next:
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, m := range match {
			if !strings.Contains(line, m) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

func hasTask(set *assignmentSet, id string) *fathomv1.Assignment {
	for _, a := range set.GetAssignments() {
		if a.GetTaskId() == id {
			return a
		}
	}
	return nil
}

func running(id string, gen int64) *fathomv1.TaskStatus {
	return &fathomv1.TaskStatus{TaskId: id, State: fathomv1.TaskState_TASK_STATE_RUNNING, Pid: 100, Generation: gen}
}

// TestReconcilePreemptsForProd: a node full of batch tasks; a prod task that
// fits nowhere preempts one of them, which goes back to pending with the
// reason, and the node's assignment set swaps them.
func TestReconcilePreemptsForProd(t *testing.T) {
	h := startServer(t, Options{Controller: controller.Config{HeartbeatTimeout: time.Minute}})
	a := h.agent("node-a", 2)
	fill := h.submit(&fathomv1.JobSpec{Name: "fill", Type: "batch", Priority: "batch", Replicas: proto.Int32(2),
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}, Resources: &fathomv1.Resources{Cpu: "1"}}})
	set := a.next("both batch tasks", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 2 })
	for _, as := range set.GetAssignments() {
		a.report(running(as.GetTaskId(), as.GetGeneration()))
	}
	prod := h.submit(&fathomv1.JobSpec{Name: "api", Type: "service", Priority: "prod", Replicas: proto.Int32(1),
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}, Resources: &fathomv1.Resources{Cpu: "1"}}})
	prodTask := prod + "-0"
	set = a.next("the prod task in place of a batch task", func(s *assignmentSet) bool {
		return len(s.GetAssignments()) == 2 && hasTask(s, prodTask) != nil
	})
	victim := ""
	for _, tk := range h.allTasks(fill) {
		if hasTask(set, tk.GetId()) == nil {
			victim = tk.GetId()
			if tk.GetState() != fathomv1.TaskState_TASK_STATE_PENDING || tk.GetNode() != "" {
				t.Errorf("victim %s: state %s on %q; want pending without a node", tk.GetId(), StateName(tk.GetState()), tk.GetNode())
			}
			want := "preempted by " + prodTask + " (prod)"
			if !strings.Contains(tk.GetReason(), want) {
				t.Errorf("victim %s reason %q; want it to say %q", tk.GetId(), tk.GetReason(), want)
			}
			t.Logf("victim %s: %s", tk.GetId(), tk.GetReason())
		}
	}
	if victim == "" {
		t.Fatalf("no batch task left node-a's set: %v", set)
	}
	if pt := h.task(prod, 0); pt.GetNode() != "node-a" || pt.GetState() != fathomv1.TaskState_TASK_STATE_PLACED {
		t.Errorf("prod task %s on %q state %s; want placed on node-a", pt.GetId(), pt.GetNode(), StateName(pt.GetState()))
	}
	if n := h.metric("fathom_scheduler_preemptions_total", `priority="batch"`); n != 1 {
		t.Errorf("fathom_scheduler_preemptions_total{priority=\"batch\"} = %v; want 1", n)
	}
}

// TestReconcileRateLimitsPartition: two of three nodes stop heartbeating at
// once (a likely partition): their lost tasks are re-placed at most
// MassFailureRate per round, the rest wait with the reason; all of them run
// again in the end.
func TestReconcileRateLimitsPartition(t *testing.T) {
	h := startServer(t, Options{Controller: controller.Config{HeartbeatTimeout: time.Second, FailoverGrace: time.Nanosecond,
		MassFailureFraction: 0.5, MassFailureRate: 1}})
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		h.agent(n, 4)
	}
	hb := h.heartbeats("node-a", "node-b", "node-c")
	job := h.submit(&fathomv1.JobSpec{Name: "web", Type: "service", Priority: "batch", Replicas: proto.Int32(30),
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}}})
	per := map[string]int{}
	eventually(t, "30 tasks placed", func() bool {
		clear(per)
		for _, tk := range h.allTasks(job) {
			if tk.GetState() == fathomv1.TaskState_TASK_STATE_PLACED {
				per[tk.GetNode()]++
			}
		}
		return per["node-a"]+per["node-b"]+per["node-c"] == 30
	})
	lostBefore := per["node-a"] + per["node-b"]
	if lostBefore < 2 {
		t.Fatalf("placement %v leaves too little on node-a and node-b to lose", per)
	}
	hb.set("node-c")
	sawLimited := ""
	eventually(t, "all tasks on node-c", func() bool {
		onC := 0
		for _, tk := range h.allTasks(job) {
			if tk.GetState() == fathomv1.TaskState_TASK_STATE_LOST && strings.Contains(tk.GetReason(), "rate-limited") {
				sawLimited = tk.GetReason()
			}
			if tk.GetNode() == "node-c" && tk.GetState() == fathomv1.TaskState_TASK_STATE_PLACED {
				onC++
			}
		}
		return onC == 30
	})
	if sawLimited == "" {
		t.Errorf("no lost task waited for the partition rate limit (%d lost at once, rate 1 per round)", lostBefore)
	} else {
		t.Logf("a deferred task: %s", sawLimited)
	}
	// The two nodes may lapse in consecutive rounds: the first one's tasks
	// are then re-placed at once (one node of three is not a partition),
	// partly onto the second, and lost again with it.
	if n := h.metric("fathom_scheduler_reschedules_total", `reason="node_failed"`); int(n) < lostBefore {
		t.Errorf("reschedules of failed nodes = %v; want at least %d", n, lostBefore)
	}
}

// lastSet drains a's stream and returns the newest set (or nil).
func (a *agent) lastSet(wait time.Duration) *assignmentSet {
	var last *assignmentSet
	deadline := time.After(wait)
	for {
		select {
		case s, ok := <-a.sets:
			if !ok {
				return last
			}
			last = s
		case <-deadline:
			return last
		}
	}
}

// TestReconcileStaleCopyStoppedAfterReplacementRuns: a node stops
// heartbeating; its task is placed elsewhere. When the node returns, its copy
// keeps running (it stays in the node's assignment set) until the
// replacement reports running; then the node's set drops it.
func TestReconcileStaleCopyStoppedAfterReplacementRuns(t *testing.T) {
	h := startServer(t, Options{Controller: controller.Config{HeartbeatTimeout: time.Second, FailoverGrace: time.Nanosecond}})
	a := h.agent("node-a", 4)
	hb := h.heartbeats("node-a")
	job := h.submit(&fathomv1.JobSpec{Name: "web", Type: "service", Priority: "prod", Replicas: proto.Int32(1),
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}}})
	id := job + "-0"
	set := a.next("the task on node-a", func(s *assignmentSet) bool { return hasTask(s, id) != nil })
	a.report(running(id, hasTask(set, id).GetGeneration()))
	b := h.agent("node-b", 4)
	hb.set("node-b") // node-a goes quiet
	moved := b.next("the replacement on node-b", func(s *assignmentSet) bool { return hasTask(s, id) != nil })
	// node-a returns before the replacement runs: its copy stays.
	hb.set("node-a", "node-b")
	eventually(t, "node-a up again", func() bool {
		nodes, err := h.nodes.ListNodes(t.Context(), &fathomv1.ListNodesRequest{})
		return err == nil && nodes.GetNodes()[0].GetState() == fathomv1.NodeState_NODE_STATE_UP
	})
	if last := a.lastSet(time.Second); last != nil && hasTask(last, id) == nil {
		t.Fatalf("node-a's set dropped the copy before the replacement runs: %v", last)
	} else if last != nil && hasTask(last, id).GetDesiredState() != fathomv1.DesiredState_DESIRED_STATE_KEEP {
		t.Fatalf("node-a's copy is sent as %v; want KEEP (keep it while it runs, never restart it)", hasTask(last, id).GetDesiredState())
	}
	if tk := h.task(job, 0); tk.GetNode() != "node-b" || tk.GetState() != fathomv1.TaskState_TASK_STATE_PLACED {
		t.Fatalf("task = %v; want placed on node-b", tk)
	}
	// The replacement runs: node-a's copy is stopped.
	b.report(running(id, hasTask(moved, id).GetGeneration()))
	a.next("node-a's copy dropped", func(s *assignmentSet) bool { return hasTask(s, id) == nil })
	eventually(t, "the stop recorded in the history", func() bool {
		for _, hs := range h.task(job, 0).GetHistory() {
			if strings.Contains(hs.GetMessage(), "copy on node-a stopped") {
				return true
			}
		}
		return false
	})
}

// TestReconcileResizesInPlaceOrMoves: a grown recommendation that fits the
// node is applied in place (same node, next generation); one that does not
// fit by more than the move cost moves the task to a node with room, and the
// old copy is kept until the new one runs.
func TestReconcileResizesInPlaceOrMoves(t *testing.T) {
	h := startServer(t, fixedRightSizer(t, Options{Controller: controller.Config{HeartbeatTimeout: time.Minute,
		Sizing: controller.SizingPolicy{MinTaskAge: time.Millisecond}}}))
	a := h.agent("node-a", 2)
	h.submit(&fathomv1.JobSpec{Name: "filler", Type: "service", Priority: "batch", Replicas: proto.Int32(1),
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}, Resources: &fathomv1.Resources{Cpu: "1500m"}}})
	job := h.submit(&fathomv1.JobSpec{Name: "grow", Type: "service", Priority: "batch", Replicas: proto.Int32(1),
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}}})
	id := job + "-0"
	set := a.next("both tasks on node-a", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 2 })
	for _, as := range set.GetAssignments() {
		a.report(running(as.GetTaskId(), as.GetGeneration()))
	}
	eventually(t, "both running", func() bool { return h.task(job, 0).GetState() == fathomv1.TaskState_TASK_STATE_RUNNING })
	b := h.agent("node-b", 4)

	// 0.1 → 0.3 cores: node-a has room (1.5 + 0.3 ≤ 2): in place.
	h.recommend(id, 0.3, controller.DefaultMemoryRequest)
	set = a.next("the request resized in place", func(s *assignmentSet) bool {
		as := hasTask(s, id)
		return as != nil && as.GetCpuRequestCores() == 0.3
	})
	if tk := h.task(job, 0); tk.GetNode() != "node-a" || tk.GetGeneration() != 2 || !strings.Contains(tk.GetReason(), "in place") {
		t.Errorf("after in-place resize: node %s generation %d reason %q", tk.GetNode(), tk.GetGeneration(), tk.GetReason())
	}
	if n := h.metric("fathom_scheduler_resizes_total", `resource="cpu"`); n != 1 {
		t.Errorf("cpu resizes = %v; want 1", n)
	}

	// 0.3 → 0.6 cores: 0.5 free on node-a, 17% of the new request unmet
	// (under the 0.25 move cost): left as is, and the task says why.
	h.recommend(id, 0.6, controller.DefaultMemoryRequest)
	eventually(t, "the task saying its resize was left", func() bool {
		return strings.Contains(h.task(job, 0).GetReason(), "left as is")
	})
	if tk := h.task(job, 0); tk.GetNode() != "node-a" || tk.GetCpuRequestCores() != 0.3 {
		t.Errorf("left resize: node %s request %v; want node-a, 0.3", tk.GetNode(), tk.GetCpuRequestCores())
	} else {
		t.Logf("left: %s", tk.GetReason())
	}

	// 0.3 → 1 core: 0.5 free on node-a, half the new request unmet (> the
	// 0.25 move cost): moved to node-b.
	h.recommend(id, 1, controller.DefaultMemoryRequest)
	nb := b.next("the task moved to node-b", func(s *assignmentSet) bool { return hasTask(s, id) != nil })
	if as := hasTask(nb, id); as.GetCpuRequestCores() != 1 {
		t.Errorf("moved with cpu request %v; want 1", as.GetCpuRequestCores())
	}
	tk := h.task(job, 0)
	if tk.GetNode() != "node-b" || !strings.Contains(tk.GetReason(), "moved from node-a") {
		t.Errorf("after the move: node %s reason %q", tk.GetNode(), tk.GetReason())
	}
	t.Logf("move: %s", tk.GetReason())
	if last := a.lastSet(500 * time.Millisecond); last != nil && hasTask(last, id) == nil {
		t.Errorf("node-a dropped the old copy before the new one runs")
	}
	b.report(running(id, hasTask(nb, id).GetGeneration()))
	a.next("the old copy stopped", func(s *assignmentSet) bool { return hasTask(s, id) == nil })
	if n := h.metric("fathom_scheduler_reschedules_total", `reason="resize"`); n != 1 {
		t.Errorf("reschedules for resize = %v; want 1", n)
	}
}

// TestReconcileConsolidates: with Consolidate on, of two under-used nodes one
// is drained onto the other (a move, the old copy kept until the new one
// runs), and the next rounds leave things as they are (no flapping).
func TestReconcileConsolidates(t *testing.T) {
	h := startServer(t, Options{Controller: controller.Config{HeartbeatTimeout: time.Minute, Consolidate: true,
		Sizing: controller.SizingPolicy{MinTaskAge: time.Millisecond}}})
	a := h.agent("node-a", 4)
	one := h.submit(&fathomv1.JobSpec{Name: "one", Type: "service", Priority: "batch", Replicas: proto.Int32(1),
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}}})
	sa := a.next("one on node-a", func(s *assignmentSet) bool { return len(s.GetAssignments()) == 1 })
	a.report(running(one+"-0", sa.GetAssignments()[0].GetGeneration()))
	b := h.agent("node-b", 4)
	// node-a is cordoned while the second job is placed, so that it lands on
	// node-b; then both nodes run one small task each.
	if _, err := h.nodes.CordonNode(t.Context(), &fathomv1.CordonNodeRequest{Name: "node-a"}); err != nil {
		t.Fatal(err)
	}
	two := h.submit(&fathomv1.JobSpec{Name: "two", Type: "service", Priority: "batch", Replicas: proto.Int32(1),
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}}})
	sb := b.next("two on node-b", func(s *assignmentSet) bool { return hasTask(s, two+"-0") != nil })
	b.report(running(two+"-0", hasTask(sb, two+"-0").GetGeneration()))
	if _, err := h.nodes.CordonNode(t.Context(), &fathomv1.CordonNodeRequest{Name: "node-a", Uncordon: true}); err != nil {
		t.Fatal(err)
	}
	// One of the two is drained onto the other.
	var moved *fathomv1.Task
	eventually(t, "a consolidation move", func() bool {
		for _, id := range []string{one, two} {
			if tk := h.task(id, 0); strings.Contains(tk.GetReason(), "consolidation drains") {
				moved = tk
				return true
			}
		}
		return false
	})
	t.Logf("%s: %s", moved.GetId(), moved.GetReason())
	target := a
	if moved.GetNode() == "node-b" {
		target = b
	}
	set := target.next("the moved task", func(s *assignmentSet) bool { return hasTask(s, moved.GetId()) != nil })
	target.report(running(moved.GetId(), hasTask(set, moved.GetId()).GetGeneration()))
	for range 10 { // ten more rounds: nothing moves again
		h.round()
	}
	if n := h.metric("fathom_scheduler_reschedules_total", `reason="consolidation"`); n != 1 {
		t.Errorf("consolidation moves = %v; want exactly 1 (no flapping)", n)
	}
	if x, y := h.task(one, 0), h.task(two, 0); x.GetNode() != y.GetNode() {
		t.Errorf("tasks on %s and %s; want both on one node", x.GetNode(), y.GetNode())
	}
}
