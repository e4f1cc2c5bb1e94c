package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fathom-scheduler/fathom/agent/cgroups"
)

// Config is everything `fathom agent` and `fathom dev` pass to Run.
type Config struct {
	// Server is the control plane's gRPC address (host:port; a scheme is ignored).
	Server string
	// Name of the node. Default: the host name.
	Name string
	// CPU (cores) and Memory (bytes) offered to tasks. Default: the machine's.
	CPU    float64
	Memory int64
	// Labels are registered with the node.
	Labels map[string]string
	// PortRange is "LO-HI", the dynamic ports the scheduler may give this
	// node's tasks ("" = none). The agent checks each port is free before
	// it starts a task and passes it as FATHOM_PORT_<NAME>.
	PortRange string
	// MetricsAddr is where the agent's HTTP server listens (/metrics,
	// /healthz, /v1/tasks/{id}/logs). Default ":7072".
	MetricsAddr string
	// AdvertiseAddr is the host:port the server uses to reach the agent's
	// HTTP server. Default: the host name with MetricsAddr's port.
	AdvertiseAddr string
	// DataDir keeps task state and logs across agent restarts.
	// Default /var/lib/fathom/agent.
	DataDir string
	// CgroupParent is the parent cgroup of task groups, relative to the
	// agent's own cgroup unless it starts with "/". Default "fathom".
	CgroupParent string
	// CgroupMode is auto | cgroup2 | cgroup1 | none. Default auto.
	CgroupMode string
	// RemoteWriteURL receives usage. Default: what the server names on
	// registration, else http://<Server>/api/v1/write.
	RemoteWriteURL string
	// SampleInterval (default 1s) and PushInterval (default 10s).
	SampleInterval, PushInterval time.Duration
	// RemoteWriteBuffer bounds the samples held while the endpoint is down.
	// Default 50000.
	RemoteWriteBuffer int
	// EvictionThreshold is the fraction of memory above which best-effort and
	// then batch tasks are evicted. Default 0.95; negative disables.
	EvictionThreshold float64
	// GracePeriod between SIGTERM and SIGKILL. Default 10s.
	GracePeriod time.Duration
	// LogMaxSize rotates a task's output.log when it reaches this many
	// bytes (default 10 MiB; negative = never); LogMaxFiles rotated files
	// are kept (default 3). See logrotate.go.
	LogMaxSize  int64
	LogMaxFiles int
	// TaskRetention is how long the directory (state and logs) of a task
	// that left this node is kept (0 = forever). See Executor.SweepTaskDirs.
	TaskRetention time.Duration
	// StopTasksOnExit stops every task when Run returns (for `fathom dev`).
	// Default false: tasks outlive the agent and are re-attached on restart.
	StopTasksOnExit bool
	// Registry receives the agent's metrics and is served on /metrics.
	// Default: a new registry.
	Registry *prometheus.Registry
	// ControlPlane overrides the gRPC client dialled to Server.
	ControlPlane ControlPlane
	// Version is reported on registration.
	Version string
	// Log receives operational messages. Default slog.Default().
	Log *slog.Logger
	// Ready, if set, is called once the HTTP server listens, with its address.
	Ready func(httpAddr string)
}

func (c *Config) defaults() error {
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no --name given and no host name: %w", err)
		}
		c.Name = h
	}
	mcpu, mmem := MachineCapacity()
	if c.CPU == 0 {
		c.CPU = mcpu
	}
	if c.Memory == 0 {
		c.Memory = mmem
	}
	if c.CPU < 0 || c.Memory < 0 {
		return fmt.Errorf("--cpu %v and --memory %d must not be negative", c.CPU, c.Memory)
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = ":7072"
	}
	if c.DataDir == "" {
		c.DataDir = "/var/lib/fathom/agent"
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "fathom"
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = time.Second
	}
	if c.PushInterval <= 0 {
		c.PushInterval = 10 * time.Second
	}
	if c.LogMaxSize == 0 {
		c.LogMaxSize = 10 << 20
	}
	if c.LogMaxFiles <= 0 {
		c.LogMaxFiles = 3
	}
	if c.EvictionThreshold == 0 {
		c.EvictionThreshold = 0.95
	}
	if c.EvictionThreshold > 1 {
		return fmt.Errorf("--eviction-threshold %v must be a fraction of memory (0.95 = 95%%)", c.EvictionThreshold)
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Server == "" && c.ControlPlane == nil {
		return errors.New("--server is required: the control plane's gRPC address, e.g. 127.0.0.1:7071")
	}
	return nil
}

func serverHostPort(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	return strings.TrimRight(s, "/")
}

// DegradedLabel is the node label that says what a cgroup back end with
// missing controllers does not enforce (registered with the node, so that
// `fathom node list -o json` and the scheduler's operators can see it).
const DegradedLabel = "fathom.io/enforcement-degraded"

// agentRuntime is one running agent.
type agentRuntime struct {
	cfg     Config
	log     *slog.Logger
	exec    *Executor
	sampler *Sampler
	rw      *RemoteWriter
	rep     *reporter
	// pushEvery carries a new push interval to pushLoop (the server may ask
	// for pushes more often than --push-interval; see setPushInterval).
	pushEvery chan time.Duration

	// sessionsEnded counts control plane sessions that ended other than by
	// the agent's own shutdown (the server went away, a stream broke).
	sessionsEnded prometheus.Counter

	mu     sync.Mutex
	nodeID string
	push   time.Duration // the push interval in effect
}

// Run is the node agent: it registers with the control plane, heartbeats,
// reconciles its tasks to the assignments it watches, reports task states,
// samples usage every second, serves /metrics and task logs, pushes usage by
// remote write, and evicts under memory pressure. It survives the server
// being away (backoff, re-register, re-report) and returns when ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	log := cfg.Log.With("node", cfg.Name)
	cg, err := cgroups.New(cfg.CgroupMode, cfg.CgroupParent)
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	if err := cg.SetParentCPU(cfg.CPU); err != nil {
		log.Warn("could not weigh the task parent cgroup by the node's CPU capacity", "err", err)
	}
	if cg.Mode() == cgroups.ModeNone {
		log.Warn("no writable cgroup hierarchy: tasks run without enforcement, usage measured from /proc", "enforcement", "none")
	}
	enforcement := cgroups.Enforcement(cg)
	if d := cgroups.Degraded(cg); d != "" {
		// Degraded, not failed: tasks run in their cgroups and are measured,
		// killed and frozen there; the node says what is not enforced.
		log.Warn("degraded enforcement: "+d, "backend", cg.Mode(), "enforcement", enforcement)
		labels := make(map[string]string, len(cfg.Labels)+1)
		for k, v := range cfg.Labels {
			labels[k] = v
		}
		labels[DegradedLabel] = d
		cfg.Labels = labels
	}
	a := &agentRuntime{cfg: cfg, log: log, rep: newReporter(10000), pushEvery: make(chan time.Duration, 1), push: cfg.PushInterval}
	a.exec, err = NewExecutor(ExecutorConfig{DataDir: cfg.DataDir, Cgroups: cg, Node: cfg.Name, GracePeriod: cfg.GracePeriod,
		LogMaxSize: cfg.LogMaxSize, LogMaxFiles: cfg.LogMaxFiles, TaskRetention: cfg.TaskRetention, OnStatus: a.rep.add, Log: log})
	if err != nil {
		return err
	}
	a.sampler = NewSampler(cfg.Name, a.exec, cfg.CPU, cfg.Memory, cfg.EvictionThreshold)
	a.sampler.SetEnforcement(string(enforcement), string(cg.Mode()), strings.Join(cg.Missing(), ","))
	rwURL := cfg.RemoteWriteURL
	if rwURL == "" && cfg.Server != "" {
		rwURL = "http://" + serverHostPort(cfg.Server) + "/api/v1/write"
	}
	a.rw = NewRemoteWriter(rwURL, cfg.RemoteWriteBuffer, cfg.Registry, log)
	a.sessionsEnded = prometheus.NewCounter(prometheus.CounterOpts{Name: "fathom_agent_control_plane_sessions_ended_total",
		Help: "Sessions with the control plane (register, heartbeats, reports, the assignment stream) that ended and were retried."})
	cfg.Registry.MustRegister(a.sampler, a.sessionsEnded, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())

	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("agent HTTP server on %s: %w", cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /v1/tasks/{task_id}/logs", a.serveLogs)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr().String())
	}

	if err := a.exec.Recover(); err != nil {
		log.Error("re-attaching to tasks", "err", err)
	}

	cp := cfg.ControlPlane
	if cp == nil {
		g, err := DialControlPlane(cfg.Server)
		if err != nil {
			return err
		}
		defer g.Close()
		cp = g
	}

	var wg sync.WaitGroup
	loop := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	loop(a.sampleLoop)
	loop(a.pushLoop)
	loop(a.rw.Run)
	a.sessions(ctx, cp, advertise(cfg, ln.Addr().String()), enforcement)

	wg.Wait()
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	if cfg.StopTasksOnExit {
		a.exec.StopAll()
		// Nothing of the agent's is left in the parent cgroup: remove it
		// rather than leave an empty group on the machine per run.
		if err := cg.RemoveParent(); err != nil {
			log.Warn("could not remove the task parent cgroup", "err", err)
		}
	} else {
		a.exec.Close()
	}
	return nil
}

func advertise(cfg Config, listen string) string {
	if cfg.AdvertiseAddr != "" {
		return cfg.AdvertiseAddr
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

// sessionHost is what a control-plane session drives: the agent's executor,
// sampler and remote writer (agentRuntime), or a hollow node's stand-ins
// (hollow.go). The session itself — register, heartbeat, report, watch the
// assignment stream, retry — is the same code for both.
type sessionHost interface {
	// registered is told each successful registration.
	registered(Registration)
	// reconcile applies the whole desired set.
	reconcile([]Assignment)
	// statuses is every task's current status (the snapshot reported on
	// each new session).
	statuses() []TaskStatus
	// usage is the node's liveness and usage for a heartbeat (NodeID is
	// filled in by the session).
	usage() NodeHeartbeat
}

func (a *agentRuntime) registered(reg Registration) {
	a.mu.Lock()
	a.nodeID = reg.NodeID
	a.mu.Unlock()
	if a.cfg.RemoteWriteURL == "" && reg.RemoteWriteURL != "" {
		a.rw.SetURL(reg.RemoteWriteURL)
	}
	a.setPushInterval(reg.MaxPushInterval)
	a.log.Info("usage pushed by remote write", "url", a.rw.URL(), "every", a.pushInterval())
}

func (a *agentRuntime) reconcile(set []Assignment) { a.exec.Reconcile(set) }
func (a *agentRuntime) statuses() []TaskStatus     { return a.exec.Statuses() }
func (a *agentRuntime) usage() NodeHeartbeat {
	n := a.sampler.Node()
	return NodeHeartbeat{CPUUsedCores: n.CPUUsedCores, MemoryUsedBytes: n.MemoryUsed, MemoryAvailableBytes: n.MemoryAvailable, MemoryPressure: n.MemoryPressure,
		TaskCPUUsedCores: n.TasksCPUCores, TaskMemoryUsedBytes: n.TasksWorkingSet}
}

// sessions keeps a session with the control plane alive: register, then
// heartbeat, report and watch until any of them fails, then back off and
// start over. Tasks keep running throughout.
func (a *agentRuntime) sessions(ctx context.Context, cp ControlPlane, addr string, mode cgroups.Mode) {
	info := NodeInfo{Name: a.cfg.Name, CPUCores: a.cfg.CPU, MemoryBytes: a.cfg.Memory, Labels: a.cfg.Labels,
		Enforcement: string(mode), AgentAddress: addr, Version: a.cfg.Version, PortRange: a.cfg.PortRange}
	runSessions(ctx, cp, info, a.rep, a, a.log, a.sessionsEnded)
}

// runSessions keeps host's session with the control plane alive until ctx
// ends (see session and retrySessions); ended, when not nil, counts the
// sessions that ended.
func runSessions(ctx context.Context, cp ControlPlane, info NodeInfo, rep *reporter, host sessionHost, log *slog.Logger, ended prometheus.Counter) {
	retrySessions(ctx, func(ctx context.Context) error { return session(ctx, cp, info, rep, host, log) }, func(err error, in time.Duration) {
		if ended != nil {
			ended.Inc()
		}
		log.Warn("control plane session ended; reconnecting", "err", err, "in", in)
	})
}

// retrySessions runs session until ctx ends, waiting between two runs a
// jittered backoff that starts at 500 ms and doubles up to
// maxSessionBackoff (back to 500 ms after a session that worked for a
// while): tasks keep running meanwhile, and a restarted server gives nodes
// only a short grace to come back before it places their tasks again, so an
// agent is back within a second or two of its server. ended is told each
// failure and the wait before the next try.
func retrySessions(ctx context.Context, session func(context.Context) error, ended func(err error, in time.Duration)) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		if backoff > 0 {
			// Full jitter, so 10,000 agents do not return in step.
			d := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errSessionHealthy) {
			backoff = 500 * time.Millisecond
		} else {
			backoff = min(max(2*backoff, 500*time.Millisecond), maxSessionBackoff)
		}
		ended(err, backoff)
	}
}

// maxSessionBackoff caps the wait between two sessions with the server.
const maxSessionBackoff = 2 * time.Second

// errSessionHealthy marks a session that worked for a while before ending.
var errSessionHealthy = errors.New("session ended after working")

// session is one session with the control plane: register, then heartbeat,
// report (a full snapshot first, then every change) and watch the
// assignment stream until one of them fails or ctx ends.
func session(ctx context.Context, cp ControlPlane, info NodeInfo, rep *reporter, host sessionHost, log *slog.Logger) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	reg, err := cp.Register(rctx, info)
	cancel()
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	host.registered(reg)
	hb := time.Duration(reg.HeartbeatInterval) * time.Second
	if hb <= 0 {
		hb = 5 * time.Second
	}
	log.Info("registered", "node_id", reg.NodeID, "heartbeat", hb, "enforcement", info.Enforcement)
	started := time.Now()

	sctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		stop(heartbeats(sctx, cp, reg.NodeID, hb, host))
	}()
	go func() {
		defer wg.Done()
		stop(fmt.Errorf("report status: %w", rep.run(sctx, cp, reg.NodeID, host.statuses)))
	}()
	err = cp.WatchAssignments(sctx, reg.NodeID, func(set AssignmentSet) {
		log.Debug("assignments", "revision", set.Revision, "tasks", len(set.Assignments))
		host.reconcile(set.Assignments)
	})
	if cause := context.Cause(sctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	stop(nil)
	wg.Wait()
	if time.Since(started) > time.Minute {
		return fmt.Errorf("%w: %v", errSessionHealthy, err)
	}
	return fmt.Errorf("watch assignments: %w", err)
}

func heartbeats(ctx context.Context, cp ControlPlane, nodeID string, every time.Duration, host sessionHost) error {
	// The first beat comes at a random point of the first interval, so
	// agents that registered together do not beat in step.
	t := time.NewTimer(time.Duration(rand.Int64N(int64(every))) + time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		t.Reset(every)
		h := host.usage()
		h.NodeID = nodeID
		// A beat may take up to three intervals (about the server's
		// heartbeat timeout) before the session is given up: a server
		// busy for a moment must not make every agent register again.
		hctx, cancel := context.WithTimeout(ctx, 3*every)
		rereg, err := cp.Heartbeat(hctx, h)
		cancel()
		if err != nil {
			return fmt.Errorf("heartbeat: %w", err)
		}
		if rereg {
			return errors.New("server asked the agent to register again")
		}
	}
}

// sampleLoop samples every SampleInterval, acts on memory pressure and
// rotates task logs that reached their size.
func (a *agentRuntime) sampleLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.SampleInterval)
	defer t.Stop()
	var cooldown time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.sampler.Tick(now)
			a.exec.RotateLogs()
			if a.cfg.EvictionThreshold > 0 && now.After(cooldown) {
				if ev := a.sampler.Evictions(); len(ev) > 0 {
					for _, e := range ev {
						a.exec.Evict(e.TaskID, e.Reason, e.WorkingSet)
					}
					// Let memory counters settle before judging again.
					cooldown = now.Add(3 * a.cfg.SampleInterval)
				}
			}
		}
	}
}

// setPushInterval applies the server's bound on the push interval: the
// interval is --push-interval, or max when the server asks for pushes more
// often (its usage windows must hold several pushes). bound 0 = none.
func (a *agentRuntime) setPushInterval(bound time.Duration) {
	want := a.cfg.PushInterval
	if bound > 0 && bound < want {
		want = bound
	}
	a.mu.Lock()
	changed := want != a.push
	a.push = want
	a.mu.Unlock()
	if !changed {
		return
	}
	a.log.Info("push interval set by the server's usage window", "push_interval", want, "flag", a.cfg.PushInterval)
	select {
	case <-a.pushEvery: // drop a value pushLoop has not taken yet
	default:
	}
	a.pushEvery <- want
}

// pushInterval is the push interval in effect.
func (a *agentRuntime) pushInterval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.push
}

// pushLoop hands a batch to the remote writer every push interval.
func (a *agentRuntime) pushLoop(ctx context.Context) {
	t := time.NewTicker(a.pushInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-a.pushEvery:
			t.Reset(d)
		case now := <-t.C:
			a.rw.Enqueue(a.sampler.Batch(now))
		}
	}
}
