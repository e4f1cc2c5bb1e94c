package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
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

// providerState is the hook runner's memory: the last call and the ones
// under way. The decisions (when to add, which node to remove) are the
// controller's (controller/provider.go); the server only runs the command.
type providerState struct {
	mu      sync.Mutex
	last    *fathomv1.NodeProviderCall
	wg      sync.WaitGroup
	metrics *autoscaleMetrics
}

func (p *providerState) lastCall() *fathomv1.NodeProviderCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// initAutoscale registers the autoscaling metrics. Called by New.
func (s *Server) initAutoscale(reg prometheus.Registerer) error {
	m, err := newAutoscaleMetrics(reg, s)
	if err != nil {
		return err
	}
	s.prov.metrics = m
	return nil
}

// callProvider runs the hook for a call the controller asked for, on its
// own goroutine so that a slow or hanging hook never holds up the loop, and
// reports the outcome back to the controller.
func (s *Server) callProvider(ctx context.Context, pc *controller.ProviderCall) {
	if s.o.NodeProvider.Command == "" {
		return
	}
	s.prov.wg.Add(1)
	go func() {
		defer s.prov.wg.Done()
		call := s.runProvider(ctx, pc.Action, pc.Args, providerEnv(pc))
		s.prov.mu.Lock()
		s.prov.last = call
		s.prov.mu.Unlock()
		s.prov.metrics.calls.WithLabelValues(call.GetAction(), call.GetOutcome()).Inc()
		s.prov.metrics.duration.WithLabelValues(call.GetAction(), call.GetOutcome()).Observe(call.GetDurationSeconds())
		ok := call.GetOutcome() == "ok"
		// With ctx: a server shutting down does not wait for the record.
		if err := s.do(ctx, func(c *controller.Controller, now time.Time) error {
			c.ProviderDone(pc, ok, now)
			return nil
		}); err != nil && ctx.Err() == nil {
			s.log.Warn("node provider outcome not recorded", "err", err)
		}
	}()
}

// providerEnv is the environment of a hook call beyond the server's own.
func providerEnv(c *controller.ProviderCall) []string {
	rep := c.Report
	return []string{
		"FATHOM_NODE_PROVIDER_ACTION=" + c.Action,
		"FATHOM_ADD=" + strconv.Itoa(c.Count),
		"FATHOM_NODES=" + strings.Join(c.Nodes, " "),
		"FATHOM_MACHINES_NEEDED=" + strconv.Itoa(rep.MachinesNeeded),
		"FATHOM_MACHINES_USED=" + strconv.Itoa(rep.MachinesUsed),
		"FATHOM_LOWER_BOUND=" + strconv.Itoa(rep.LowerBound),
		"FATHOM_NODE_CPU_CORES=" + strconv.FormatFloat(rep.Shape[0], 'g', -1, 64),
		"FATHOM_NODE_MEMORY_BYTES=" + strconv.FormatInt(int64(rep.Shape[1]), 10),
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
	s := c.s
	s.mu.RLock()
	a := s.c.AutoscaleView(s.now())
	s.mu.RUnlock()
	if !a.Valid {
		return
	}
	r := a.Report
	g := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	g(asNeededDesc, r.MachinesNeeded)
	g(asUsedDesc, r.MachinesUsed)
	g(asLowerDesc, r.LowerBound)
	g(asRemovableDesc, len(r.CouldRemove))
	g(asAddDesc, r.Add)
	g(asUnfittableDesc, r.Unfittable)
	ch <- prometheus.MustNewConstMetric(asTimeDesc, prometheus.GaugeValue, float64(a.At.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(asRemovingDesc, prometheus.GaugeValue, float64(len(a.Removing)), "cordoned")
	ch <- prometheus.MustNewConstMetric(asRemovingDesc, prometheus.GaugeValue, float64(len(a.Handed)), "handed")
}
