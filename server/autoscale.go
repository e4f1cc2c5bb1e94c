package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// NodeProviderOptions configure the node-provider hook: a command the server
// runs to add machines when tasks wait for room, and to remove machines the
// scheduler reports could go.
//
// The command is run through /bin/sh -c with the action and its arguments
// appended, so it may carry its own flags:
//
//	COMMAND add N              add N machines of the common node shape
//	COMMAND remove NODE...     these nodes are cordoned and empty: remove them
//
// with the server's environment plus FATHOM_NODE_PROVIDER_ACTION, FATHOM_ADD,
// FATHOM_NODES (space-separated), FATHOM_MACHINES_NEEDED,
// FATHOM_MACHINES_USED, FATHOM_LOWER_BOUND, FATHOM_NODE_CPU_CORES and
// FATHOM_NODE_MEMORY_BYTES. Exit status 0 means done (or under way); any
// other status, or running past Timeout, is a failure that is logged,
// counted, and retried after Cooldown. The command must be idempotent: after
// a server restart a removal may be asked again.
type NodeProviderOptions struct {
	// Command; "" = no hook: the report is published (metrics, node list)
	// but nothing is called.
	Command string
	// Timeout kills the command (its whole process group) after this long
	// (2 min).
	Timeout time.Duration
	// Cooldown is the least time between two add calls, and before a failed
	// removal is asked again (5 min): new machines take time to register.
	Cooldown time.Duration
	// RemovalDelay is how long a node must stay removable, report after
	// report, before it is cordoned for removal (10 min).
	RemovalDelay time.Duration
}

func (o *NodeProviderOptions) normalize() error {
	o.Command = strings.TrimSpace(o.Command)
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Cooldown == 0 {
		o.Cooldown = 5 * time.Minute
	}
	if o.RemovalDelay == 0 {
		o.RemovalDelay = 10 * time.Minute
	}
	switch {
	case o.Timeout < 0:
		return fmt.Errorf("node provider: timeout %s must be positive", o.Timeout)
	case o.Cooldown < 0:
		return fmt.Errorf("node provider: cooldown %s must not be negative", o.Cooldown)
	case o.RemovalDelay < 0:
		return fmt.Errorf("node provider: removal delay %s must not be negative", o.RemovalDelay)
	}
	return nil
}

// autoscaleState keeps the scheduler's latest autoscaling report: how many
// machines the current work needs and which could go. The reconcile loop
// publishes it with observeAutoscale; `fathom node list`, the metrics and the
// node-provider hook read it. It also holds the hook's memory.
//
// Lock order: autoscale.mu is never held together with Server.mu or wmu.
type autoscaleState struct {
	mu  sync.Mutex
	rep scheduler.AutoscaleReport
	at  time.Time
	ok  bool
	gen uint64 // reports observed

	wake    chan struct{} // a new report for the provider loop
	done    uint64        // gen of the last report the provider loop handled
	prov    providerMemory
	last    *fathomv1.NodeProviderCall
	calling bool
	metrics *autoscaleMetrics
}

// observeAutoscale records the report computed by a reconcile round at now.
// It never blocks: the node-provider loop picks the report up on its own
// goroutine.
func (s *Server) observeAutoscale(rep scheduler.AutoscaleReport, now time.Time) {
	s.autoscale.mu.Lock()
	defer s.autoscale.mu.Unlock()
	rep.CouldRemove = append([]string(nil), rep.CouldRemove...)
	s.autoscale.rep, s.autoscale.at, s.autoscale.ok = rep, now, true
	s.autoscale.gen++
	select {
	case s.autoscale.wake <- struct{}{}:
	default:
	}
}

// autoscaleReport returns the latest report and when it was computed; ok is
// false until a reconcile round has run.
func (s *Server) autoscaleReport() (rep scheduler.AutoscaleReport, at time.Time, ok bool) {
	s.autoscale.mu.Lock()
	defer s.autoscale.mu.Unlock()
	rep = s.autoscale.rep
	rep.CouldRemove = append([]string(nil), rep.CouldRemove...)
	return rep, s.autoscale.at, s.autoscale.ok
}

// initAutoscale validates the node-provider options and registers the
// autoscaling metrics. Called by New.
func (s *Server) initAutoscale(reg prometheus.Registerer) error {
	if err := s.o.NodeProvider.normalize(); err != nil {
		return err
	}
	s.autoscale.wake = make(chan struct{}, 1)
	s.autoscale.prov = newProviderMemory()
	m, err := newAutoscaleMetrics(reg, s)
	if err != nil {
		return err
	}
	s.autoscale.metrics = m
	return nil
}

// autoscaleLoop runs the node-provider hook on the reports the reconcile
// loop publishes, until ctx ends. It runs on its own goroutine so that a
// slow or hanging hook never holds up scheduling. Started by Run when
// Options.NodeProvider.Command is set.
func (s *Server) autoscaleLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.autoscale.wake:
		}
		s.providerStep(ctx)
	}
}

// providerStep acts once on the latest report: cordon (and drain) nodes that
// stayed removable for RemovalDelay, hand empty cordoned nodes to the hook,
// or ask the hook for machines when tasks wait for room.
func (s *Server) providerStep(ctx context.Context) {
	a := &s.autoscale
	a.mu.Lock()
	rep, ok, gen := a.rep, a.ok, a.gen
	rep.CouldRemove = slices.Clone(rep.CouldRemove)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.done = max(a.done, gen)
		a.mu.Unlock()
	}()
	if !ok {
		return
	}
	now := s.now()
	in := providerInput{now: now, rep: rep, nodes: s.providerNodes()}
	a.mu.Lock()
	plan := a.prov.decide(in, s.o.NodeProvider)
	a.mu.Unlock()

	for _, name := range plan.cancel {
		if err := s.cancelRemoval(ctx, name); err != nil {
			s.log.Warn("autoscaling: could not uncordon a node kept for the waiting work", "node", name, "err", err)
		} else {
			s.log.Info("autoscaling: work waits for room; node kept and uncordoned", "node", name)
		}
	}
	for _, name := range plan.clear {
		if err := s.cancelRemoval(ctx, name); err != nil {
			s.log.Warn("autoscaling: could not clear the removal mark of a removed node", "node", name, "err", err)
		}
	}
	for _, name := range plan.drain {
		moved, err := s.drainForRemoval(ctx, name)
		if err != nil {
			s.log.Warn("autoscaling: could not move tasks off a node cordoned for removal", "node", name, "err", err)
			continue
		}
		s.log.Info("autoscaling: tasks moved off a node cordoned for removal", "node", name, "tasks_moved", moved)
	}
	for _, name := range plan.mark {
		moved, err := s.markForRemoval(ctx, name, now)
		if err != nil {
			s.log.Warn("autoscaling: could not cordon a node for removal", "node", name, "err", err)
			continue
		}
		s.log.Info("autoscaling: node cordoned for removal", "node", name, "tasks_moved", moved)
	}
	if plan.call == nil {
		return
	}
	c := plan.call
	a.mu.Lock()
	a.calling = true
	a.mu.Unlock()
	call := s.runProvider(ctx, c.action, c.args, providerEnv(c, rep, in.nodes))
	a.mu.Lock()
	a.calling = false
	a.last = call
	a.prov.record(c, call.GetOutcome() == "ok", s.now(), s.o.NodeProvider)
	a.mu.Unlock()
	a.metrics.calls.WithLabelValues(call.GetAction(), call.GetOutcome()).Inc()
	a.metrics.duration.WithLabelValues(call.GetAction(), call.GetOutcome()).Observe(call.GetDurationSeconds())
}

// providerNode is what the provider decision sees of one node.
type providerNode struct {
	name        string
	up          bool
	schedulable bool
	draining    bool
	marked      bool // cordoned for removal (removal_requested_at set)
	tasks       int  // tasks placed there and not finished
	cpu         float64
	memory      int64
}

// providerNodes snapshots the nodes for a provider step, sorted by name.
func (s *Server) providerNodes() []providerNode {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.providerNodesLocked()
}

// providerNodesLocked is providerNodes for a caller that holds mu (read).
func (s *Server) providerNodesLocked() []providerNode {
	out := make([]providerNode, 0, len(s.nodes))
	for name, ne := range s.nodes {
		n := ne.node
		out = append(out, providerNode{
			name: name, up: n.GetState() == fathomv1.NodeState_NODE_STATE_UP,
			schedulable: n.GetSchedulable(), draining: n.GetDraining(), marked: n.GetRemovalRequestedAt() != nil,
			tasks: s.activeTasksOn(name), cpu: n.GetCpuCores(), memory: n.GetMemoryBytes(),
		})
	}
	slices.SortFunc(out, func(a, b providerNode) int { return strings.Compare(a.name, b.name) })
	return out
}

// activeTasksOn counts the unfinished tasks placed on a node. Caller holds
// mu (read).
func (s *Server) activeTasksOn(name string) int {
	n := 0
	for id := range s.byNode[name] {
		jobID, idx, _ := splitTaskID(id)
		if e := s.jobs[jobID]; e != nil && int(idx) < len(e.tasks) {
			if t := e.tasks[idx]; t != nil && t.GetNode() == name && !terminal(t.GetState()) {
				n++
			}
		}
	}
	return n
}

// commonShape is the most common node capacity (ties: the smaller), the
// shape the scheduler's report counts machines in.
func commonShape(nodes []providerNode) (cpu float64, memory int64) {
	type shape struct {
		cpu float64
		mem int64
	}
	count := map[shape]int{}
	var best shape
	for _, n := range nodes {
		sh := shape{n.cpu, n.memory}
		count[sh]++
		c, b := count[sh], count[best]
		if c > b || (c == b && (sh.cpu < best.cpu || (sh.cpu == best.cpu && sh.mem < best.mem))) {
			best = sh
		}
	}
	return best.cpu, best.mem
}

// providerInput is one step's view: the latest report and the nodes.
type providerInput struct {
	now   time.Time
	rep   scheduler.AutoscaleReport
	nodes []providerNode
}

// providerPlan is what one step does. At most one hook call per step.
type providerPlan struct {
	mark   []string // cordon (and drain) for removal
	drain  []string // cordoned for removal but a task is there: move it
	cancel []string // marked, not yet handed: uncordon, work waits for room
	clear  []string // handed and now down: clear the mark
	call   *providerCall
}

type providerCall struct {
	action string // "add" | "remove"
	args   []string
	count  int      // add
	nodes  []string // remove
}

// providerMemory is the hook's state between steps. decide is pure: the
// same memory, input and options give the same plan.
type providerMemory struct {
	removableSince map[string]time.Time // first report in an unbroken run that listed the node
	handed         map[string]time.Time // nodes the hook was asked to remove, and when
	retryAt        map[string]time.Time // failed removals: not before
	markedAt       map[string]time.Time // nodes this server cordoned for removal, and when
	nextAddAt      time.Time
}

func newProviderMemory() providerMemory {
	return providerMemory{removableSince: map[string]time.Time{}, handed: map[string]time.Time{},
		retryAt: map[string]time.Time{}, markedAt: map[string]time.Time{}}
}

// decide turns a report into actions, with hysteresis:
//   - Work waits for room (Add > 0): nodes cordoned for removal and not yet
//     handed over are uncordoned first (they are cheaper than new machines),
//     and the next report decides again; otherwise `add N` is called, at most
//     once per Cooldown.
//   - A node listed in CouldRemove in every report for RemovalDelay is
//     cordoned (and drained, should a task have landed there meanwhile).
//   - A cordoned node is handed to `remove` once it is empty (tasks found
//     there are moved, and it waits for the next step) and at least one
//     step after it was cordoned (so no placement decided before the cordon
//     can still land on it); a failed removal is asked again after Cooldown.
//   - A handed node that went down is forgotten and its record uncordoned,
//     so that a new machine that registers under its name is schedulable.
//
// Without a command nothing is planned.
func (m *providerMemory) decide(in providerInput, o NodeProviderOptions) providerPlan {
	var plan providerPlan
	if o.Command == "" {
		return plan
	}
	listed := map[string]bool{}
	for _, n := range in.rep.CouldRemove {
		listed[n] = true
		if _, ok := m.removableSince[n]; !ok {
			m.removableSince[n] = in.now
		}
	}
	for n := range m.removableSince {
		if !listed[n] {
			delete(m.removableSince, n)
		}
	}
	known := map[string]bool{}
	var marked []providerNode
	for _, n := range in.nodes {
		known[n.name] = true
		if !n.marked {
			delete(m.handed, n.name)
			delete(m.markedAt, n.name)
			delete(m.retryAt, n.name)
			continue
		}
		if _, ok := m.handed[n.name]; ok {
			if !n.up {
				plan.clear = append(plan.clear, n.name)
				delete(m.handed, n.name)
				delete(m.markedAt, n.name)
			}
			continue
		}
		marked = append(marked, n)
	}
	for _, mm := range []map[string]time.Time{m.handed, m.markedAt, m.retryAt} {
		for n := range mm {
			if !known[n] {
				delete(mm, n)
			}
		}
	}

	if in.rep.Add > 0 {
		for _, n := range marked {
			if n.up {
				plan.cancel = append(plan.cancel, n.name)
			}
		}
		if len(plan.cancel) == 0 && !in.now.Before(m.nextAddAt) {
			plan.call = &providerCall{action: "add", args: []string{strconv.Itoa(in.rep.Add)}, count: in.rep.Add}
		}
		return plan
	}

	var hand []string
	for _, n := range marked {
		if _, ok := m.markedAt[n.name]; !ok {
			// Marked before this server started (or by another one): it has
			// been cordoned for at least one step already.
			m.markedAt[n.name] = time.Time{}
		}
		switch {
		case n.up && n.tasks > 0:
			plan.drain = append(plan.drain, n.name)
		case n.up && !in.now.Before(m.retryAt[n.name]):
			hand = append(hand, n.name)
		}
	}
	for _, n := range in.nodes {
		since, ok := m.removableSince[n.name]
		// A task may have landed since the report: markForRemoval moves it.
		if ok && !n.marked && n.up && n.schedulable && in.now.Sub(since) >= o.RemovalDelay {
			plan.mark = append(plan.mark, n.name)
			m.markedAt[n.name] = in.now
			delete(m.removableSince, n.name)
		}
	}
	if len(hand) > 0 {
		plan.call = &providerCall{action: "remove", args: hand, nodes: hand}
	}
	return plan
}

// record notes the outcome of a call decided by decide.
func (m *providerMemory) record(c *providerCall, ok bool, now time.Time, o NodeProviderOptions) {
	switch c.action {
	case "add":
		m.nextAddAt = now.Add(o.Cooldown)
	case "remove":
		for _, n := range c.nodes {
			if ok {
				m.handed[n] = now
				delete(m.retryAt, n)
			} else {
				m.retryAt[n] = now.Add(o.Cooldown)
			}
		}
	}
}

// providerEnv is the environment of a hook call beyond the server's own.
func providerEnv(c *providerCall, rep scheduler.AutoscaleReport, nodes []providerNode) []string {
	cpu, mem := commonShape(nodes)
	return []string{
		"FATHOM_NODE_PROVIDER_ACTION=" + c.action,
		"FATHOM_ADD=" + strconv.Itoa(c.count),
		"FATHOM_NODES=" + strings.Join(c.nodes, " "),
		"FATHOM_MACHINES_NEEDED=" + strconv.Itoa(rep.MachinesNeeded),
		"FATHOM_MACHINES_USED=" + strconv.Itoa(rep.MachinesUsed),
		"FATHOM_LOWER_BOUND=" + strconv.Itoa(rep.LowerBound),
		"FATHOM_NODE_CPU_CORES=" + strconv.FormatFloat(cpu, 'g', -1, 64),
		"FATHOM_NODE_MEMORY_BYTES=" + strconv.FormatInt(mem, 10),
	}
}

// hookOutputLimit bounds the stdout and stderr kept from a hook call.
const hookOutputLimit = 4 << 10

// tailBuffer keeps the last hookOutputLimit bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > hookOutputLimit {
		t.b = append(t.b[:0], t.b[len(t.b)-hookOutputLimit:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(bytes.TrimSpace(t.b)) }

// runProvider runs the hook once and says how it went. The command and every
// process it starts are killed at the timeout.
func (s *Server) runProvider(ctx context.Context, action string, args, env []string) *fathomv1.NodeProviderCall {
	o := s.o.NodeProvider
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	shArgs := append([]string{"-c", o.Command + ` "$@"`, "fathom-node-provider", action}, args...)
	cmd := exec.CommandContext(ctx, "/bin/sh", shArgs...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // a grandchild holding the pipes open does not hold us
	var stdout, stderr tailBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	call := &fathomv1.NodeProviderCall{Action: action, Args: args, StartedAt: timestamppb.New(s.now())}
	start := time.Now()
	err := cmd.Run()
	call.DurationSeconds = time.Since(start).Seconds()
	call.Stderr = stderr.String()
	var exit *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		call.Outcome, call.ExitCode = "timeout", -1
		call.Stderr = strings.TrimSpace(call.Stderr + fmt.Sprintf("\n(killed after the %s timeout)", o.Timeout))
	case err == nil:
		call.Outcome = "ok"
	case errors.As(err, &exit):
		call.Outcome, call.ExitCode = "failed", int32(exit.ExitCode())
	default:
		call.Outcome, call.ExitCode = "error", -1
		call.Stderr = strings.TrimSpace(call.Stderr + "\n" + err.Error())
	}
	attrs := []any{"action", action, "args", strings.Join(args, " "), "outcome", call.Outcome,
		"exit_code", call.ExitCode, "duration", time.Duration(call.DurationSeconds * float64(time.Second)).Round(time.Millisecond)}
	if out := stdout.String(); out != "" {
		attrs = append(attrs, "stdout", out)
	}
	if call.Stderr != "" {
		attrs = append(attrs, "stderr", call.Stderr)
	}
	if call.Outcome == "ok" {
		s.log.Info("node provider hook done", attrs...)
	} else {
		s.log.Warn("node provider hook failed; will ask again after the cooldown", append(attrs, "cooldown", o.Cooldown)...)
	}
	return call
}

// autoscaleView is the report and the provider's state as the API shows
// them (nil before the first report), plus per-node notes: waiting for
// nodes the report lists as removable, removal for nodes the provider
// handed over or failed to remove (valid only while the node is still
// marked for removal; the caller checks).
func (s *Server) autoscaleView(now time.Time) (rep *fathomv1.AutoscaleReport, removable map[string]bool, waiting, removal map[string]string) {
	a := &s.autoscale
	a.mu.Lock()
	defer a.mu.Unlock()
	removable, waiting, removal = map[string]bool{}, map[string]string{}, map[string]string{}
	if !a.ok {
		return nil, removable, waiting, removal
	}
	r := a.rep
	rep = &fathomv1.AutoscaleReport{
		ComputedAt: timestamppb.New(a.at), NodesUp: int32(r.NodesUp), MachinesUsed: int32(r.MachinesUsed),
		MachinesNeeded: int32(r.MachinesNeeded), LowerBound: int32(r.LowerBound), CouldRemove: slices.Clone(r.CouldRemove),
		Add: int32(r.Add), Unfittable: int32(r.Unfittable),
		NodeProvider: &fathomv1.NodeProviderStatus{Configured: s.o.NodeProvider.Command != "", LastCall: a.last, Calling: a.calling},
	}
	if !a.prov.nextAddAt.IsZero() && now.Before(a.prov.nextAddAt) {
		rep.NodeProvider.NextAddAt = timestamppb.New(a.prov.nextAddAt)
	}
	delay := s.o.NodeProvider.RemovalDelay
	for _, n := range r.CouldRemove {
		removable[n] = true
		if since, ok := a.prov.removableSince[n]; ok && s.o.NodeProvider.Command != "" {
			waiting[n] = fmt.Sprintf("removable for %s; cordoned for removal after %s", shortDur(now.Sub(since)), shortDur(delay))
		}
	}
	for n, at := range a.prov.handed {
		removal[n] = "handed to the node provider " + shortDur(now.Sub(at)) + " ago"
	}
	for n, at := range a.prov.retryAt {
		if _, handed := a.prov.handed[n]; !handed && now.Before(at) {
			removal[n] = "node provider failed to remove it; asked again in " + shortDur(at.Sub(now))
		}
	}
	return rep, removable, waiting, removal
}

// shortDur formats a duration as 45s, 3m, 2h10m.
func shortDur(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	h := int(d.Hours())
	if m := int(d.Minutes()) - 60*h; m > 0 {
		return fmt.Sprintf("%dh%dm", h, m)
	}
	return fmt.Sprintf("%dh", h)
}

// autoscaleMetrics are the fathom_scheduler_* autoscaling metrics. The
// report's figures are read at scrape time (metrics observe state); the hook
// calls are counted as they happen.
type autoscaleMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var (
	asNeededDesc     = prometheus.NewDesc("fathom_scheduler_machines_needed", "Machines the current work needs: those in use plus fresh machines of the common node shape for the tasks waiting for room (latest autoscaling report).", nil, nil)
	asUsedDesc       = prometheus.NewDesc("fathom_scheduler_machines_used", "Nodes with at least one task (latest autoscaling report).", nil, nil)
	asLowerDesc      = prometheus.NewDesc("fathom_scheduler_machines_lower_bound", "Max over resources of ceil(sum of requests / capacity of the common node shape) (latest autoscaling report).", nil, nil)
	asRemovableDesc  = prometheus.NewDesc("fathom_scheduler_machines_removable", "Empty schedulable nodes beyond the spare that could be removed (latest autoscaling report).", nil, nil)
	asAddDesc        = prometheus.NewDesc("fathom_scheduler_machines_to_add", "Machines of the common shape to add for the tasks waiting for room (latest autoscaling report).", nil, nil)
	asUnfittableDesc = prometheus.NewDesc("fathom_scheduler_unfittable_tasks", "Waiting tasks that fit no machine of the common node shape (latest autoscaling report).", nil, nil)
	asTimeDesc       = prometheus.NewDesc("fathom_scheduler_autoscale_report_timestamp_seconds", "When the latest autoscaling report was computed (Unix seconds).", nil, nil)
	asRemovingDesc   = prometheus.NewDesc("fathom_scheduler_node_provider_removing_nodes", "Nodes cordoned for removal by the node provider hook, by stage (cordoned: waiting to be empty or handed; handed: the hook was asked to remove them).", []string{"stage"}, nil)
)

// providerActions and providerOutcomes label the hook metrics.
var (
	providerActions  = []string{"add", "remove"}
	providerOutcomes = []string{"ok", "failed", "timeout", "error"}
)

func newAutoscaleMetrics(reg prometheus.Registerer, s *Server) (*autoscaleMetrics, error) {
	m := &autoscaleMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fathom_scheduler_node_provider_calls_total",
			Help: "Calls of the node provider hook (--node-provider-cmd) by action (add, remove) and outcome (ok, failed: non-zero exit, timeout, error: could not start).",
		}, []string{"action", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fathom_scheduler_node_provider_call_duration_seconds",
			Help:    "Run time of the node provider hook by action and outcome.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"action", "outcome"}),
	}
	for _, a := range providerActions {
		for _, o := range providerOutcomes {
			m.calls.WithLabelValues(a, o)
		}
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration, autoscaleCollector{s}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// autoscaleCollector exports the latest report at scrape time; nothing
// before the first report.
type autoscaleCollector struct{ s *Server }

func (c autoscaleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{asNeededDesc, asUsedDesc, asLowerDesc, asRemovableDesc, asAddDesc, asUnfittableDesc, asTimeDesc, asRemovingDesc} {
		ch <- d
	}
}

func (c autoscaleCollector) Collect(ch chan<- prometheus.Metric) {
	a := &c.s.autoscale
	a.mu.Lock()
	r, at, ok := a.rep, a.at, a.ok
	handed, cordoned := len(a.prov.handed), 0
	for n := range a.prov.markedAt {
		if _, h := a.prov.handed[n]; !h {
			cordoned++
		}
	}
	a.mu.Unlock()
	if !ok {
		return
	}
	g := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	g(asNeededDesc, r.MachinesNeeded)
	g(asUsedDesc, r.MachinesUsed)
	g(asLowerDesc, r.LowerBound)
	g(asRemovableDesc, len(r.CouldRemove))
	g(asAddDesc, r.Add)
	g(asUnfittableDesc, r.Unfittable)
	ch <- prometheus.MustNewConstMetric(asTimeDesc, prometheus.GaugeValue, float64(at.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(asRemovingDesc, prometheus.GaugeValue, float64(cordoned), "cordoned")
	ch <- prometheus.MustNewConstMetric(asRemovingDesc, prometheus.GaugeValue, float64(handed), "handed")
}
