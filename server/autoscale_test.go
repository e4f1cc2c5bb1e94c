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

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
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

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
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

// providerHarness is a real server (embedded etcd, the control loop
// running) with a real shell-script hook, on a fake clock: the test moves
// time and asks for rounds; the controller decides, the server runs the hook.
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
		Controller: controller.Config{HeartbeatTimeout: 1000 * time.Hour}, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Run(ctx) }()
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

// round runs a control-loop round at the fake clock's time and waits until
// any hook call it asked for is done (and recorded).
func (h *providerHarness) round() {
	h.t.Helper()
	if err := h.srv.do(h.ctx, func(c *controller.Controller, now time.Time) error {
		c.Tick(now)
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	h.srv.prov.wg.Wait()
	// The outcome is recorded by an op of its own: one more pass of the
	// loop makes sure it was applied.
	if err := h.srv.do(h.ctx, func(*controller.Controller, time.Time) error { return nil }); err != nil {
		h.t.Fatal(err)
	}
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
	return int(testutil.ToFloat64(h.srv.prov.metrics.calls.WithLabelValues(action, outcome)))
}

// submit stores a job of n tasks of cpu cores each.
func (h *providerHarness) submit(name string, n int32, cpu string) string {
	h.t.Helper()
	resp, err := h.srv.CreateJob(h.ctx, &fathomv1.CreateJobRequest{Spec: &fathomv1.JobSpec{Name: name, Type: "batch", Replicas: &n,
		Task: &fathomv1.TaskSpec{Command: []string{"sleep", "600"}, Resources: &fathomv1.Resources{Cpu: cpu, Memory: "64Mi"}}}})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetId()
}

// TestNodeProviderAddWithCooldown: tasks wait for room, so the controller
// asks for machines of the common shape; the hook is called with the
// report in its environment, at most once per cooldown.
func TestNodeProviderAddWithCooldown(t *testing.T) {
	h := newProviderHarness(t, "", NodeProviderOptions{Cooldown: 5 * time.Minute})
	h.register("n1")
	h.submit("big", 3, "1500m") // one fits n1; two wait, one per fresh 2-core node
	h.round()
	h.wantCalls("add 2")
	env, _ := os.ReadFile(h.calls + ".env")
	if got := strings.TrimSpace(string(env)); got != "add|2||3|2|4294967296" {
		t.Errorf("hook environment %q, want action|add|nodes|needed|cpu|memory = add|2||3|2|4294967296", got)
	}
	// The same decision a minute later: the machines are on their way.
	h.clock.Add(time.Minute)
	h.round()
	h.wantCalls("add 2")
	_, rep := h.nodes()
	if rep.GetMachinesNeeded() != 3 || rep.GetAdd() != 2 || !rep.GetNodeProvider().GetConfigured() ||
		rep.GetNodeProvider().GetLastCall().GetOutcome() != "ok" || rep.GetNodeProvider().GetNextAddAt() == nil {
		t.Errorf("report in node list: %v", rep)
	}
	// One machine arrived; after the cooldown the hook is asked for the other.
	h.register("n2")
	h.clock.Add(4 * time.Minute)
	h.round()
	h.wantCalls("add 2", "add 1")
	if n := h.counter("add", "ok"); n != 2 {
		t.Errorf("fathom_scheduler_node_provider_calls_total{action=add,outcome=ok} = %d, want 2", n)
	}
	if n := testutil.CollectAndCount(h.srv.prov.metrics.duration); n != 1 {
		t.Errorf("duration histogram has %d series, want 1 (add/ok)", n)
	}
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(`
# HELP fathom_scheduler_machines_needed Machines the current work needs: those in use plus fresh machines of the common node shape for the tasks waiting for room (latest autoscaling report).
# TYPE fathom_scheduler_machines_needed gauge
fathom_scheduler_machines_needed 3
# HELP fathom_scheduler_machines_to_add Machines of the common shape to add for the tasks waiting for room (latest autoscaling report).
# TYPE fathom_scheduler_machines_to_add gauge
fathom_scheduler_machines_to_add 1
`), "fathom_scheduler_machines_needed", "fathom_scheduler_machines_to_add"); err != nil {
		t.Error(err)
	}
}

// TestNodeProviderRemoveAfterDelayCordonsThenHands: idle nodes that stay
// removable for the removal delay are cordoned for removal and, a round
// later, handed to the hook; once gone (down), their records are cleared.
func TestNodeProviderRemoveAfterDelayCordonsThenHands(t *testing.T) {
	h := newProviderHarness(t, "", NodeProviderOptions{RemovalDelay: 10 * time.Minute, Cooldown: 5 * time.Minute})
	h.register("n1", "n2", "n3", "n4")
	h.submit("small", 1, "500m")
	h.round()
	nodes, ar := h.nodes()
	var busy string
	for name, n := range nodes {
		if n.GetTaskCount() == 1 {
			busy = name
		}
	}
	if busy == "" || len(ar.GetCouldRemove()) != 2 {
		t.Fatalf("nodes %v, could remove %v: want one busy node and two of three idle ones removable (one spare)", nodes, ar.GetCouldRemove())
	}
	removable := ar.GetCouldRemove()
	h.clock.Add(5 * time.Minute)
	h.round()
	nodes, _ = h.nodes()
	if n := nodes[removable[0]]; !n.GetRemovable() || !strings.Contains(n.GetRemoval(), "removable for 5m") {
		t.Fatalf("%s: removable %v %q: want removable for 5m", removable[0], n.GetRemovable(), n.GetRemoval())
	}
	h.wantCalls()
	h.clock.Add(5 * time.Minute)
	h.round()
	h.wantCalls() // cordoned now, handed at the next round at the earliest
	nodes, _ = h.nodes()
	for _, n := range removable {
		if nodes[n].GetSchedulable() || nodes[n].GetRemovalRequestedAt() == nil {
			t.Fatalf("%s: schedulable %v, removal_requested_at %v; want cordoned for removal", n, nodes[n].GetSchedulable(), nodes[n].GetRemovalRequestedAt())
		}
	}
	if got := testutil.ToFloat64(prometheusGauge(t, h.reg, "fathom_scheduler_node_provider_removing_nodes", "cordoned")); got != 2 {
		t.Errorf("removing_nodes{stage=cordoned} = %v, want 2", got)
	}
	h.clock.Add(time.Second)
	h.round()
	h.wantCalls("remove " + strings.Join(removable, " "))
	env, _ := os.ReadFile(h.calls + ".env")
	if !strings.Contains(string(env), "remove|0|"+strings.Join(removable, " ")+"|") {
		t.Errorf("hook environment %q lacks FATHOM_NODES", env)
	}
	nodes, ar = h.nodes()
	if !strings.Contains(nodes[removable[0]].GetRemoval(), "handed to the node provider") || !slices.Equal(ar.GetNodeProvider().GetHanded(), removable) {
		t.Fatalf("after the hook: %q, handed %v", nodes[removable[0]].GetRemoval(), ar.GetNodeProvider().GetHanded())
	}
	// Not asked twice.
	h.clock.Add(time.Minute)
	h.round()
	h.wantCalls("remove " + strings.Join(removable, " "))
	if n := h.counter("remove", "ok"); n != 1 {
		t.Errorf("calls_total{remove,ok} = %d, want 1", n)
	}
}

// TestNodeProviderFailureIsCountedAndRetriedAfterCooldown: a hook that
// fails is counted with its stderr kept, and asked again after the cooldown.
func TestNodeProviderFailureIsCountedAndRetriedAfterCooldown(t *testing.T) {
	h := newProviderHarness(t, `echo "quota exceeded for n1-standard-2" >&2; exit 3`, NodeProviderOptions{Cooldown: 2 * time.Minute, RemovalDelay: time.Minute})
	h.register("n1")
	h.submit("big", 2, "1500m")
	h.round()
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
	h.round()
	h.wantCalls("add 1")
	h.clock.Add(time.Minute)
	h.round()
	h.wantCalls("add 1", "add 1")
}

// TestNodeProviderTimeoutNeverBlocks: a hook that hangs is killed at the
// timeout with everything it started, counted, and meanwhile the loop runs
// rounds, the API answers and jobs are accepted.
func TestNodeProviderTimeoutNeverBlocks(t *testing.T) {
	h := newProviderHarness(t, `sleep 60 & echo $! > "$log.pid"; wait`, NodeProviderOptions{Timeout: 500 * time.Millisecond})
	h.register("n1")
	h.submit("big", 2, "1500m")
	start := time.Now()
	if err := h.srv.do(h.ctx, func(c *controller.Controller, now time.Time) error { c.Tick(now); return nil }); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a round took %v with a hanging hook", d)
	}
	eventually(t, "the hook to start", func() bool {
		_, err := os.Stat(h.calls + ".pid")
		return err == nil
	})
	// While the hook hangs: the node list and a submission.
	_, rep := h.nodes()
	if !rep.GetNodeProvider().GetCalling() {
		t.Errorf("while the hook runs: calling %v; want true", rep.GetNodeProvider().GetCalling())
	}
	h.submit("more", 1, "100m")
	h.round()
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
	h.register("n1", "n2", "n3")
	h.submit("small", 1, "500m")
	h.round()
	h.clock.Add(time.Hour)
	h.round()
	nodes, rep := h.nodes()
	removable := 0
	for _, n := range nodes {
		if !n.GetSchedulable() {
			t.Errorf("report only: %s cordoned", n.GetName())
		}
		if n.GetRemovable() {
			removable++
		}
	}
	if removable != 1 || rep.GetNodeProvider().GetConfigured() || rep.GetNodeCpuCores() != 2 || rep.GetNodeMemoryBytes() != 4<<30 {
		t.Errorf("report: %d removable, %v", removable, rep)
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

// TestExampleNodeProviderScript runs deploy/node-provider/fathom-nodes.sh
// (its log backend) as the hook.
func TestExampleNodeProviderScript(t *testing.T) {
	script, err := filepath.Abs("../deploy/node-provider/fathom-nodes.sh")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FATHOM_NODES_BACKEND", "log")
	h := newProviderHarness(t, "-", NodeProviderOptions{Command: script, RemovalDelay: time.Minute, Cooldown: time.Minute})
	h.register("n1")
	h.submit("big", 2, "1500m")
	h.round()
	_, rep := h.nodes()
	if lc := rep.GetNodeProvider().GetLastCall(); lc.GetOutcome() != "ok" || lc.GetAction() != "add" {
		t.Fatalf("add through the example script: %v", lc)
	}
	t.Setenv("FATHOM_NODES_BACKEND", "no-such-cloud")
	h.clock.Add(time.Hour)
	h.round()
	_, rep = h.nodes()
	if lc := rep.GetNodeProvider().GetLastCall(); lc.GetOutcome() != "failed" || lc.GetExitCode() != 2 || !strings.Contains(lc.GetStderr(), "unknown backend") {
		t.Fatalf("unknown backend: %v", lc)
	}
}

// TestNodeProviderResumesAfterRestart: the cordon for removal is stored, so
// a restarted server hands the node over without waiting the delay again;
// an operator's uncordon cancels it.
func TestNodeProviderResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	cmd, calls := hookScript(t, "")
	po := NodeProviderOptions{Command: cmd, RemovalDelay: 10 * time.Minute}
	h := newProviderHarnessAt(t, dir, calls, po)
	h.register("n1", "n2", "n3")
	h.submit("small", 1, "500m")
	h.round()
	_, ar := h.nodes()
	if len(ar.GetCouldRemove()) != 1 {
		t.Fatalf("could remove %v; want one node", ar.GetCouldRemove())
	}
	victim := ar.GetCouldRemove()[0]
	h.clock.Add(10 * time.Minute)
	h.round()
	h.wantCalls()
	h.stop()

	h = newProviderHarnessAt(t, dir, calls, po)
	h.clock.Add(11 * time.Minute)
	nodes, _ := h.nodes()
	if nodes[victim].GetSchedulable() || nodes[victim].GetRemovalRequestedAt() == nil {
		t.Fatalf("%s after a restart: %v", victim, nodes[victim])
	}
	h.register("n1", "n2", "n3") // the agents reconnect
	h.round()
	h.wantCalls("remove " + victim)
	if _, err := h.srv.CordonNode(h.ctx, &fathomv1.CordonNodeRequest{Name: victim, Uncordon: true}); err != nil {
		t.Fatal(err)
	}
	// The cordon is gone; a round that ran since may already describe a
	// new plan for the (still empty) node, whose delay starts over.
	nodes, _ = h.nodes()
	n := nodes[victim]
	if r := n.GetRemoval(); n.GetRemovalRequestedAt() != nil || !n.GetSchedulable() || (r != "" && !strings.HasPrefix(r, "removable for 0s")) {
		t.Errorf("%s after uncordon: %v", victim, n)
	}
}
