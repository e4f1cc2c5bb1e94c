package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/store"
)

// fakeClock is the server's clock in these tests: the cooldowns and delays
// are minutes long, and the tests step over them.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testLog sends the server's log to the test's.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// providerHarness is a real server (embedded etcd) with a real shell-script
// hook, driven through observeAutoscale as the reconcile loop drives it.
// The reconcile loop itself does not run (Serve is not called), so every
// report is the test's; the node-provider loop runs on its own goroutine.
type providerHarness struct {
	t     *testing.T
	srv   *Server
	reg   *prometheus.Registry
	clock *fakeClock
	calls string // the hook appends one line per call: its arguments
	ctx   context.Context
	stop  func() // stops the server and closes its store (also at cleanup)
}

// hookScript writes a hook that logs "$*" to calls (and its environment to
// calls.env), then runs body.
func hookScript(t *testing.T, body string) (command, calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	script := filepath.Join(dir, "hook.sh")
	src := "#!/bin/sh\nlog=$1; shift\necho \"$*\" >> \"$log\"\n" +
		"echo \"$FATHOM_NODE_PROVIDER_ACTION|$FATHOM_ADD|$FATHOM_NODES|$FATHOM_MACHINES_NEEDED|$FATHOM_NODE_CPU_CORES|$FATHOM_NODE_MEMORY_BYTES\" >> \"$log.env\"\n" + body + "\n"
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	// The command carries an argument of its own, as an operator's would.
	return script + " " + calls, calls
}

func newProviderHarness(t *testing.T, hookBody string, po NodeProviderOptions) *providerHarness {
	t.Helper()
	var calls string
	if hookBody != "-" {
		po.Command, calls = hookScript(t, hookBody)
	}
	return newProviderHarnessAt(t, t.TempDir(), calls, po)
}

// newProviderHarnessAt starts the server on the etcd data in dir.
func newProviderHarnessAt(t *testing.T, dir, calls string, po NodeProviderOptions) *providerHarness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	srv, err := New(ctx, Options{Store: st, Registerer: reg, Gatherer: reg, Now: clock.Now, NodeProvider: po,
		HeartbeatTimeout: 1000 * time.Hour, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.autoscaleLoop(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			st.Close()
		})
	}
	t.Cleanup(stop)
	return &providerHarness{t: t, srv: srv, reg: reg, clock: clock, calls: calls, ctx: ctx, stop: stop}
}

// report publishes rep as a reconcile round would and waits until the
// node-provider loop has acted on it (including any hook call).
func (h *providerHarness) report(rep scheduler.AutoscaleReport) {
	h.t.Helper()
	h.srv.observeAutoscale(rep, h.clock.Now())
	a := &h.srv.autoscale
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		done := a.done >= a.gen
		a.mu.Unlock()
		if done {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatal("the node-provider loop did not act on the report within 30s")
}

// hookCalls returns the hook's calls so far, one "action args..." each.
func (h *providerHarness) hookCalls() []string {
	b, err := os.ReadFile(h.calls)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (h *providerHarness) wantCalls(want ...string) {
	h.t.Helper()
	if got := h.hookCalls(); !slices.Equal(got, want) {
		h.t.Fatalf("hook calls %q, want %q", got, want)
	}
}

func (h *providerHarness) register(names ...string) {
	h.t.Helper()
	for _, n := range names {
		if _, err := h.srv.Register(h.ctx, &fathomv1.RegisterNodeRequest{Name: n, CpuCores: 2, MemoryBytes: 4 << 30, Enforcement: "none"}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *providerHarness) nodes() (map[string]*fathomv1.Node, *fathomv1.AutoscaleReport) {
	h.t.Helper()
	resp, err := h.srv.ListNodes(h.ctx, &fathomv1.ListNodesRequest{})
	if err != nil {
		h.t.Fatal(err)
	}
	m := map[string]*fathomv1.Node{}
	for _, n := range resp.GetNodes() {
		m[n.GetName()] = n
	}
	return m, resp.GetAutoscale()
}

func (h *providerHarness) counter(action, outcome string) int {
	return int(testutil.ToFloat64(h.srv.autoscale.metrics.calls.WithLabelValues(action, outcome)))
}

// placeTask stores a job with one task placed on node, as a reconcile round
// would have.
func (h *providerHarness) placeTask(node string) string {
	h.t.Helper()
	r := int32(1)
	resp, err := h.srv.CreateJob(h.ctx, &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{Name: "late-" + node, Replicas: &r,
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}}}})
	if err != nil {
		h.t.Fatal(err)
	}
	id := TaskID(resp.GetId(), 0)
	t := &fathomv1.Task{Id: id, JobId: resp.GetId(), Namespace: "default", JobName: "late-" + node, Index: 0,
		State: fathomv1.TaskState_TASK_STATE_PLACED, Node: node, DesiredState: fathomv1.DesiredState_DESIRED_STATE_RUN,
		CpuRequestCores: 0.5, MemoryRequestBytes: 64 << 20, Generation: 1}
	h.srv.wmu.Lock()
	err = h.srv.commit(h.ctx, &batch{tasks: []*fathomv1.Task{withHistory(t, h.clock.Now(), "placed on "+node)}})
	h.srv.wmu.Unlock()
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

func TestNodeProviderAddWithCooldown(t *testing.T) {
	h := newProviderHarness(t, "", NodeProviderOptions{Cooldown: 5 * time.Minute})
	h.register("n1")
	h.report(scheduler.AutoscaleReport{NodesUp: 1, MachinesUsed: 1, MachinesNeeded: 3, LowerBound: 3, Add: 2})
	h.wantCalls("add 2")
	env, _ := os.ReadFile(h.calls + ".env")
	if got := strings.TrimSpace(string(env)); got != "add|2||3|2|4294967296" {
		t.Errorf("hook environment %q, want action|add|nodes|needed|cpu|memory = add|2||3|2|4294967296", got)
	}
	// The same decision a minute later: the machines are on their way.
	h.clock.Add(time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 1, MachinesUsed: 1, MachinesNeeded: 3, LowerBound: 3, Add: 2})
	h.wantCalls("add 2")
	_, rep := h.nodes()
	if rep.GetMachinesNeeded() != 3 || rep.GetAdd() != 2 || !rep.GetNodeProvider().GetConfigured() ||
		rep.GetNodeProvider().GetLastCall().GetOutcome() != "ok" || rep.GetNodeProvider().GetNextAddAt() == nil {
		t.Errorf("report in node list: %v", rep)
	}
	// After the cooldown the hook is asked again.
	h.clock.Add(4 * time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 1, MachinesUsed: 1, MachinesNeeded: 2, LowerBound: 2, Add: 1})
	h.wantCalls("add 2", "add 1")
	if n := h.counter("add", "ok"); n != 2 {
		t.Errorf("fathom_scheduler_node_provider_calls_total{action=add,outcome=ok} = %d, want 2", n)
	}
	if n := testutil.CollectAndCount(h.srv.autoscale.metrics.duration); n != 1 {
		t.Errorf("duration histogram has %d series, want 1 (add/ok)", n)
	}
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(`
# HELP fathom_scheduler_machines_needed Machines the current work needs: those in use plus fresh machines of the common node shape for the tasks waiting for room (latest autoscaling report).
# TYPE fathom_scheduler_machines_needed gauge
fathom_scheduler_machines_needed 2
# HELP fathom_scheduler_machines_to_add Machines of the common shape to add for the tasks waiting for room (latest autoscaling report).
# TYPE fathom_scheduler_machines_to_add gauge
fathom_scheduler_machines_to_add 1
`), "fathom_scheduler_machines_needed", "fathom_scheduler_machines_to_add"); err != nil {
		t.Error(err)
	}
}

func TestNodeProviderRemoveAfterDelayCordonsDrainsThenHands(t *testing.T) {
	h := newProviderHarness(t, "", NodeProviderOptions{RemovalDelay: 10 * time.Minute, Cooldown: 5 * time.Minute})
	h.register("n1", "n2", "n3", "n4")
	// A stale report lists n3, where a task has just landed.
	task := h.placeTask("n3")
	rep := scheduler.AutoscaleReport{NodesUp: 4, MachinesUsed: 1, MachinesNeeded: 1, LowerBound: 1, CouldRemove: []string{"n2", "n3", "n4"}}
	h.report(rep)
	h.clock.Add(5 * time.Minute)
	// n4 drops out of the report once: its wait starts again.
	h.report(scheduler.AutoscaleReport{NodesUp: 4, MachinesUsed: 1, CouldRemove: []string{"n2", "n3"}})
	h.report(rep)
	nodes, ar := h.nodes()
	if !nodes["n2"].GetRemovable() || nodes["n1"].GetRemovable() || !strings.Contains(nodes["n2"].GetRemoval(), "removable for 5m") {
		t.Fatalf("n1 %v, n2 %v %q: want n2 removable for 5m", nodes["n1"].GetRemovable(), nodes["n2"].GetRemovable(), nodes["n2"].GetRemoval())
	}
	if !slices.Equal(ar.GetCouldRemove(), []string{"n2", "n3", "n4"}) {
		t.Errorf("could_remove %v", ar.GetCouldRemove())
	}
	h.wantCalls()

	h.clock.Add(5 * time.Minute) // n2, n3 removable for 10 min; n4 for 5
	h.report(rep)
	h.wantCalls() // cordoned now, handed at the next report at the earliest
	nodes, _ = h.nodes()
	for _, n := range []string{"n2", "n3"} {
		if nodes[n].GetSchedulable() || nodes[n].GetRemovalRequestedAt() == nil {
			t.Fatalf("%s: schedulable %v, removal_requested_at %v; want cordoned for removal", n, nodes[n].GetSchedulable(), nodes[n].GetRemovalRequestedAt())
		}
	}
	if !nodes["n4"].GetSchedulable() || !nodes["n1"].GetSchedulable() {
		t.Fatal("n1 and n4 must stay schedulable")
	}
	// n3's task was moved away (back to pending, to be placed elsewhere).
	jobID, _, _ := splitTaskID(task)
	h.srv.mu.RLock()
	tk := h.srv.jobs[jobID].tasks[0]
	h.srv.mu.RUnlock()
	if tk.GetNode() != "" || tk.GetState() != fathomv1.TaskState_TASK_STATE_PENDING || !strings.Contains(tk.GetReason(), "emptied for removal from node n3") {
		t.Fatalf("task on n3 after cordon: node %q state %v reason %q", tk.GetNode(), tk.GetState(), tk.GetReason())
	}
	if got := testutil.ToFloat64(prometheusGauge(t, h.reg, "fathom_scheduler_node_provider_removing_nodes", "cordoned")); got != 2 {
		t.Errorf("removing_nodes{stage=cordoned} = %v, want 2", got)
	}

	h.clock.Add(time.Second)
	h.report(scheduler.AutoscaleReport{NodesUp: 4, MachinesUsed: 0, CouldRemove: nil, Add: 0})
	h.wantCalls("remove n2 n3")
	env, _ := os.ReadFile(h.calls + ".env")
	if !strings.Contains(string(env), "remove|0|n2 n3|") {
		t.Errorf("hook environment %q lacks FATHOM_NODES=n2 n3", env)
	}
	nodes, ar = h.nodes()
	if !strings.Contains(nodes["n2"].GetRemoval(), "handed to the node provider") || !slices.Equal(ar.GetNodeProvider().GetHanded(), []string{"n2", "n3"}) {
		t.Fatalf("after the hook: n2 %q, handed %v", nodes["n2"].GetRemoval(), ar.GetNodeProvider().GetHanded())
	}
	// n4 is cordoned next, and a task shows up there before the hand-off
	// (a placement decided before the cordon): it is moved first, and n4 is
	// handed over only at the following report.
	h.report(scheduler.AutoscaleReport{NodesUp: 4, CouldRemove: []string{"n4"}})
	h.clock.Add(10 * time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 4, CouldRemove: []string{"n4"}})
	task4 := h.placeTask("n4")
	nodes, _ = h.nodes()
	if !strings.Contains(nodes["n4"].GetRemoval(), "waiting for 1 task(s) to move") {
		t.Errorf("n4 with a task: removal %q", nodes["n4"].GetRemoval())
	}
	h.report(scheduler.AutoscaleReport{NodesUp: 4})
	h.wantCalls("remove n2 n3")
	jobID, _, _ = splitTaskID(task4)
	h.srv.mu.RLock()
	tk = h.srv.jobs[jobID].tasks[0]
	h.srv.mu.RUnlock()
	if tk.GetNode() != "" || !strings.Contains(tk.GetReason(), "emptied for removal from node n4") {
		t.Fatalf("task on n4: node %q reason %q", tk.GetNode(), tk.GetReason())
	}
	h.report(scheduler.AutoscaleReport{NodesUp: 4})
	h.wantCalls("remove n2 n3", "remove n4")
	// Not asked twice.
	h.clock.Add(time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 4})
	h.wantCalls("remove n2 n3", "remove n4")

	// The machine is gone: n2 goes down. Its record is uncordoned so that a
	// new machine under that name is schedulable.
	h.srv.mu.RLock()
	n2 := cloneNode(h.srv.nodes["n2"].node)
	h.srv.mu.RUnlock()
	n2.State = fathomv1.NodeState_NODE_STATE_DOWN
	h.srv.wmu.Lock()
	if err := h.srv.commit(h.ctx, &batch{nodes: []*fathomv1.Node{n2}}); err != nil {
		t.Fatal(err)
	}
	h.srv.wmu.Unlock()
	h.report(scheduler.AutoscaleReport{NodesUp: 3})
	nodes, ar = h.nodes()
	if nodes["n2"].GetRemovalRequestedAt() != nil || !nodes["n2"].GetSchedulable() || slices.Contains(ar.GetNodeProvider().GetHanded(), "n2") {
		t.Fatalf("n2 down after removal: removal_requested_at %v schedulable %v handed %v", nodes["n2"].GetRemovalRequestedAt(), nodes["n2"].GetSchedulable(), ar.GetNodeProvider().GetHanded())
	}
	if n := h.counter("remove", "ok"); n != 2 {
		t.Errorf("calls_total{remove,ok} = %d, want 2", n)
	}
}

func TestNodeProviderWaitingWorkUncordonsBeforeAdding(t *testing.T) {
	h := newProviderHarness(t, "", NodeProviderOptions{RemovalDelay: time.Minute})
	h.register("n1", "n2")
	h.report(scheduler.AutoscaleReport{NodesUp: 2, CouldRemove: []string{"n2"}})
	h.clock.Add(time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 2, CouldRemove: []string{"n2"}})
	nodes, _ := h.nodes()
	if nodes["n2"].GetSchedulable() {
		t.Fatal("n2 not cordoned for removal")
	}
	// Work arrives that needs a machine: n2 comes back instead of a new one.
	h.clock.Add(time.Second)
	h.report(scheduler.AutoscaleReport{NodesUp: 2, MachinesUsed: 1, MachinesNeeded: 2, Add: 1})
	h.wantCalls()
	nodes, _ = h.nodes()
	if !nodes["n2"].GetSchedulable() || nodes["n2"].GetRemovalRequestedAt() != nil || nodes["n2"].GetDraining() {
		t.Fatalf("n2 after work arrived: %v", nodes["n2"])
	}
	// If the work still does not fit, machines are added.
	h.report(scheduler.AutoscaleReport{NodesUp: 2, MachinesUsed: 2, MachinesNeeded: 3, Add: 1})
	h.wantCalls("add 1")
}

func TestNodeProviderFailureIsCountedAndRetriedAfterCooldown(t *testing.T) {
	h := newProviderHarness(t, `echo "quota exceeded for n1-standard-2" >&2; exit 3`, NodeProviderOptions{Cooldown: 2 * time.Minute, RemovalDelay: time.Minute})
	h.register("n1", "n2")
	h.report(scheduler.AutoscaleReport{NodesUp: 2, MachinesUsed: 2, MachinesNeeded: 3, Add: 1})
	h.wantCalls("add 1")
	_, rep := h.nodes()
	lc := rep.GetNodeProvider().GetLastCall()
	if lc.GetOutcome() != "failed" || lc.GetExitCode() != 3 || !strings.Contains(lc.GetStderr(), "quota exceeded") {
		t.Fatalf("last call %v; want failed, exit 3, stderr kept", lc)
	}
	if n := h.counter("add", "failed"); n != 1 {
		t.Errorf("calls_total{add,failed} = %d, want 1", n)
	}
	h.clock.Add(time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 2, MachinesUsed: 2, MachinesNeeded: 3, Add: 1})
	h.wantCalls("add 1")
	h.clock.Add(time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 2, MachinesUsed: 2, MachinesNeeded: 3, Add: 1})
	h.wantCalls("add 1", "add 1")

	// A removal that fails keeps the node cordoned and is asked again after
	// the cooldown.
	h.report(scheduler.AutoscaleReport{NodesUp: 2, CouldRemove: []string{"n2"}})
	h.clock.Add(time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 2, CouldRemove: []string{"n2"}})
	h.clock.Add(time.Second)
	h.report(scheduler.AutoscaleReport{NodesUp: 2})
	h.wantCalls("add 1", "add 1", "remove n2")
	nodes, _ := h.nodes()
	if nodes["n2"].GetSchedulable() || !strings.Contains(nodes["n2"].GetRemoval(), "failed to remove it") {
		t.Fatalf("n2 after a failed removal: schedulable %v, removal %q", nodes["n2"].GetSchedulable(), nodes["n2"].GetRemoval())
	}
	h.clock.Add(time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 2})
	h.wantCalls("add 1", "add 1", "remove n2")
	h.clock.Add(time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 2})
	h.wantCalls("add 1", "add 1", "remove n2", "remove n2")
	if n := h.counter("remove", "failed"); n != 2 {
		t.Errorf("calls_total{remove,failed} = %d, want 2", n)
	}
}

// TestNodeProviderTimeoutNeverBlocks: a hook that hangs is killed at the
// timeout with everything it started, counted, and meanwhile reports are
// taken, the API answers and jobs are accepted.
func TestNodeProviderTimeoutNeverBlocks(t *testing.T) {
	h := newProviderHarness(t, `sleep 60 & echo $! > "$log.pid"; wait`, NodeProviderOptions{Timeout: 500 * time.Millisecond})
	h.register("n1")
	start := time.Now()
	h.srv.observeAutoscale(scheduler.AutoscaleReport{NodesUp: 1, MachinesUsed: 1, MachinesNeeded: 2, Add: 1}, h.clock.Now())
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("observeAutoscale took %v with a hanging hook", d)
	}
	eventually(t, "the hook to start", func() bool {
		_, err := os.Stat(h.calls + ".pid")
		return err == nil
	})
	// While the hook hangs: more reports, the node list and a submission.
	for i := range 3 {
		start = time.Now()
		h.srv.observeAutoscale(scheduler.AutoscaleReport{NodesUp: 1, MachinesNeeded: 2, Add: 1 + i}, h.clock.Now())
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("observeAutoscale took %v while the hook hangs", d)
		}
	}
	_, rep := h.nodes()
	if !rep.GetNodeProvider().GetCalling() || rep.GetAdd() != 3 {
		t.Errorf("while the hook runs: calling %v, add %d; want true, the latest report (3)", rep.GetNodeProvider().GetCalling(), rep.GetAdd())
	}
	h.placeTask("n1")
	h.report(scheduler.AutoscaleReport{NodesUp: 1, MachinesNeeded: 2, Add: 1})
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the hook was not killed at its 500ms timeout: %v", d)
	}
	_, rep = h.nodes()
	if lc := rep.GetNodeProvider().GetLastCall(); lc.GetOutcome() != "timeout" || !strings.Contains(lc.GetStderr(), "timeout") {
		t.Errorf("last call %v, want a timeout", lc)
	}
	if n := h.counter("add", "timeout"); n != 1 {
		t.Errorf("calls_total{add,timeout} = %d, want 1", n)
	}
	b, err := os.ReadFile(h.calls + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	eventually(t, "the hook's child to be killed with it", func() bool {
		return pid > 0 && syscall.Kill(pid, 0) != nil
	})
}

func TestNodeProviderOptionsAndReportOnly(t *testing.T) {
	bad := NodeProviderOptions{Command: "true", Timeout: -time.Second}
	if err := bad.normalize(); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("negative timeout: %v", err)
	}
	// Without a command the report is shown and exported; nothing is cordoned.
	h := newProviderHarness(t, "-", NodeProviderOptions{RemovalDelay: time.Minute})
	h.register("n1", "n2")
	if _, rep := h.nodes(); rep != nil {
		t.Errorf("report before any reconcile round: %v", rep)
	}
	h.srv.providerStep(h.ctx) // no loop runs without a command
	h.srv.observeAutoscale(scheduler.AutoscaleReport{NodesUp: 2, MachinesUsed: 1, MachinesNeeded: 1, LowerBound: 1, CouldRemove: []string{"n2"}}, h.clock.Now())
	h.clock.Add(time.Hour)
	h.srv.providerStep(h.ctx)
	nodes, rep := h.nodes()
	if !nodes["n2"].GetSchedulable() || !nodes["n2"].GetRemovable() || nodes["n1"].GetRemovable() {
		t.Errorf("report only: n2 schedulable %v removable %v", nodes["n2"].GetSchedulable(), nodes["n2"].GetRemovable())
	}
	if rep.GetNodeProvider().GetConfigured() || rep.GetNodeCpuCores() != 2 || rep.GetNodeMemoryBytes() != 4<<30 {
		t.Errorf("report: %v", rep)
	}
	if got := testutil.ToFloat64(prometheusGauge(t, h.reg, "fathom_scheduler_machines_removable", "")); got != 1 {
		t.Errorf("fathom_scheduler_machines_removable = %v, want 1", got)
	}
}

// prometheusGauge finds one gathered gauge (by its one label value, or the
// unlabelled one) as a collector testutil can read.
func prometheusGauge(t *testing.T, g prometheus.Gatherer, name, label string) prometheus.Collector {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 && label == "" || len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name}, func() float64 { return m.GetGauge().GetValue() })
			}
		}
	}
	t.Fatalf("%s{%s} not exported", name, label)
	return nil
}

func cloneNode(n *fathomv1.Node) *fathomv1.Node { return proto.Clone(n).(*fathomv1.Node) }

// TestExampleNodeProviderScript runs deploy/node-provider/fathom-nodes.sh
// (its log backend) as the hook.
func TestExampleNodeProviderScript(t *testing.T) {
	script, err := filepath.Abs("../deploy/node-provider/fathom-nodes.sh")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FATHOM_NODES_BACKEND", "log")
	h := newProviderHarness(t, "-", NodeProviderOptions{Command: script, RemovalDelay: time.Minute})
	h.register("n1", "n2")
	h.report(scheduler.AutoscaleReport{NodesUp: 2, MachinesUsed: 2, MachinesNeeded: 3, Add: 1})
	_, rep := h.nodes()
	if lc := rep.GetNodeProvider().GetLastCall(); lc.GetOutcome() != "ok" || lc.GetAction() != "add" {
		t.Fatalf("add through the example script: %v", lc)
	}
	h.report(scheduler.AutoscaleReport{NodesUp: 2, CouldRemove: []string{"n2"}})
	h.clock.Add(time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 2, CouldRemove: []string{"n2"}})
	h.report(scheduler.AutoscaleReport{NodesUp: 2})
	_, rep = h.nodes()
	if lc := rep.GetNodeProvider().GetLastCall(); lc.GetOutcome() != "ok" || lc.GetAction() != "remove" || !slices.Equal(lc.GetArgs(), []string{"n2"}) {
		t.Fatalf("remove through the example script: %v", lc)
	}
	t.Setenv("FATHOM_NODES_BACKEND", "no-such-cloud")
	h.clock.Add(time.Hour)
	h.report(scheduler.AutoscaleReport{NodesUp: 2, MachinesUsed: 2, MachinesNeeded: 3, Add: 1})
	_, rep = h.nodes()
	if lc := rep.GetNodeProvider().GetLastCall(); lc.GetOutcome() != "failed" || lc.GetExitCode() != 2 || !strings.Contains(lc.GetStderr(), "unknown backend") {
		t.Fatalf("unknown backend: %v", lc)
	}
}

// TestNodeProviderResumesAfterRestart: the cordon for removal is stored, so
// a restarted server hands the node over without waiting the delay again.
func TestNodeProviderResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	cmd, calls := hookScript(t, "")
	po := NodeProviderOptions{Command: cmd, RemovalDelay: 10 * time.Minute}
	h := newProviderHarnessAt(t, dir, calls, po)
	h.register("n1", "n2")
	h.report(scheduler.AutoscaleReport{NodesUp: 2, CouldRemove: []string{"n2"}})
	h.clock.Add(10 * time.Minute)
	h.report(scheduler.AutoscaleReport{NodesUp: 2, CouldRemove: []string{"n2"}})
	h.wantCalls()
	h.stop()

	h = newProviderHarnessAt(t, dir, calls, po)
	nodes, _ := h.nodes()
	if nodes["n2"].GetSchedulable() || nodes["n2"].GetRemovalRequestedAt() == nil || !nodes["n2"].GetRemovable() {
		t.Fatalf("n2 after a restart: %v", nodes["n2"])
	}
	h.report(scheduler.AutoscaleReport{NodesUp: 2})
	h.wantCalls("remove n2")
	// An operator's uncordon cancels a removal.
	if _, err := h.srv.CordonNode(h.ctx, &fathomv1.CordonNodeRequest{Name: "n2", Uncordon: true}); err != nil {
		t.Fatal(err)
	}
	nodes, _ = h.nodes()
	if nodes["n2"].GetRemovalRequestedAt() != nil || nodes["n2"].GetRemoval() != "" {
		t.Errorf("n2 after uncordon: %v", nodes["n2"])
	}
}
