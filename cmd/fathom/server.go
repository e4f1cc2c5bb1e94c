package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/server"
	"github.com/fathom-scheduler/fathom/store"
)

func init() { register(newServerCmd) }

// serverConfig is what `fathom server`, `fathom dev` and `fathom bench submit`
// run.
type serverConfig struct {
	DataDir          string
	HTTPAddr         string
	GRPCAddr         string
	DNSAddr          string
	EtcdEndpoints    []string
	PrometheusURL    string
	Retention        time.Duration
	RuleInterval     time.Duration
	HeartbeatTimeout time.Duration
	FailoverGrace    time.Duration
	// Reconcile: the control loop's knobs (partition rate limit, moves,
	// consolidation, the risk bound).
	Reconcile reconcileFlags
	// Sizing: scheduler ε and the right-sizing loop (sizing.go).
	Sizing sizingConfig
	// NodeProvider: the hook that adds and removes machines (node.go).
	NodeProvider server.NodeProviderOptions
	// NoMetricsStore skips the embedded TSDB (bench submit).
	NoMetricsStore bool
	// CPUProfile and HeapProfile, when set, are where the server writes
	// its CPU profile over its life and its heap profile as it stops
	// (fathom bench cluster profiles the server with them).
	CPUProfile, HeapProfile string
	Log                     *slog.Logger
	// Ready is called with the bound HTTP and gRPC addresses once serving.
	Ready func(httpAddr, grpcAddr string)
}

func (c *serverConfig) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.DataDir, "data-dir", "/var/lib/fathom/server", "directory for the embedded etcd (data-dir/etcd) and metrics TSDB (data-dir/metrics)")
	f.StringVar(&c.HTTPAddr, "http-addr", ":7070", "REST API, /metrics, /healthz, /readyz, the Prometheus-compatible /api/v1/ and gRPC (h2c)")
	f.StringVar(&c.GRPCAddr, "grpc-addr", ":7071", "gRPC only (agents and gRPC clients); empty = disable")
	f.StringVar(&c.DNSAddr, "dns-addr", "127.0.0.1:8600", "answer DNS (UDP and TCP) for <job>.<namespace>.service.fathom (A, SRV) with the healthy endpoints of service jobs; empty = disable")
	f.StringSliceVar(&c.EtcdEndpoints, "etcd-endpoints", nil, "external etcd endpoints (comma-separated); empty = embedded single-member etcd in --data-dir")
	f.StringVar(&c.PrometheusURL, "prometheus-url", "", "use this Prometheus instead of the embedded TSDB: /api/v1/ is proxied to it and agents remote-write to it (it needs --web.enable-remote-write-receiver)")
	f.DurationVar(&c.Retention, "retention", 15*24*time.Hour, "how long the embedded TSDB keeps samples")
	f.DurationVar(&c.RuleInterval, "rule-interval", 0, "evaluate every recording-rule group of the embedded TSDB at this interval (default: the rule file's, 30s for node/namespace aggregates and 5m for the per-task series Job right-sizing reads); a few seconds for tests and demos")
	f.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", 10*time.Second, "a node without a heartbeat for this long is down and its tasks are placed again")
	f.DurationVar(&c.FailoverGrace, "failover-grace", 30*time.Second, "after this server starts (or takes over), every node has this long to reconnect before any is declared down (never less than --heartbeat-timeout)")
	f.StringVar(&c.CPUProfile, "cpu-profile", "", "write a CPU profile of the server's whole life to this file (go tool pprof)")
	f.StringVar(&c.HeapProfile, "heap-profile", "", "write a heap profile to this file as the server stops (go tool pprof)")
	c.Reconcile.bind(f)
	c.Sizing.bind(f)
	bindNodeProvider(f, &c.NodeProvider)
}

// reconcileFlags are the operator's knobs of the control loop (package
// controller).
type reconcileFlags struct {
	MassFailureFraction float64
	MassFailureRate     int
	MoveCost            float64
	MinTaskAge          time.Duration
	Consolidate         bool
	ConsolidateBelow    float64
	DrainBudget         int
	JobRetention        time.Duration
	MaxFinishedJobs     int
	// RiskModel and Correlation choose the overload-risk bound (parsed by
	// validate into risk and corr).
	RiskModel, Correlation string
	risk                   scheduler.RiskModel
	corr                   scheduler.Resources
	online                 bool
}

func (r *reconcileFlags) bind(f *pflag.FlagSet) {
	f.Float64Var(&r.MassFailureFraction, "mass-failure-fraction", 0.3, "when at least this share of nodes is down at once (a likely partition), re-placement of their tasks is rate-limited")
	f.IntVar(&r.MassFailureRate, "mass-failure-rate", 50, "lost tasks re-placed per reconcile round (about one a second) during a mass failure")
	f.Float64Var(&r.MoveCost, "move-cost", 0.25, "move a running task whose grown request does not fit its node when more than this share of the new request has no room there")
	f.DurationVar(&r.MinTaskAge, "min-task-age", 5*time.Minute, "tasks placed more recently are not moved by resizes or consolidation")
	f.DurationVar(&r.JobRetention, "job-retention", 4*time.Hour, "a finished job (every task ended; a cron job once stopped) is deleted with its tasks this long after it finished; negative = keep until --max-finished-jobs")
	f.IntVar(&r.MaxFinishedJobs, "max-finished-jobs", 10000, "keep at most this many finished jobs, deleting the longest finished first, whatever --job-retention says")
	f.BoolVar(&r.Consolidate, "consolidate", false, "drain under-used nodes whose tasks fit on other nodes in use (pair with --node-provider-cmd so emptied machines are removed)")
	f.Float64Var(&r.ConsolidateBelow, "consolidate-below", 0.3, "with --consolidate: only nodes whose largest requested share is below this are drained")
	f.IntVar(&r.DrainBudget, "drain-budget", 10, "with --consolidate: most tasks moved by consolidation per reconcile round")
	f.StringVar(&r.RiskModel, "risk-model", "gaussian", "overload-risk bound: gaussian|bernstein|cantelli (docs/scheduler.md)")
	f.StringVar(&r.Correlation, "risk-correlation", "online", "ρ, the mean pairwise correlation of co-located tasks' usage, for the gaussian and cantelli bounds: online (estimated from the usage the predictor has seen, as fathom sim does), one value, or cpu,memory (0: independent)")
}

func (r *reconcileFlags) validate() error {
	switch {
	case !(r.MassFailureFraction > 0 && r.MassFailureFraction <= 1):
		return cli.UsageErrorf("--mass-failure-fraction %v must be in (0, 1], e.g. 0.3", r.MassFailureFraction)
	case r.MassFailureRate < 1:
		return cli.UsageErrorf("--mass-failure-rate %d must be at least 1", r.MassFailureRate)
	case !(r.MoveCost > 0):
		return cli.UsageErrorf("--move-cost %v must be > 0, e.g. 0.25", r.MoveCost)
	case r.MinTaskAge <= 0:
		return cli.UsageErrorf("--min-task-age %s must be positive, e.g. 5m", r.MinTaskAge)
	case !(r.ConsolidateBelow > 0 && r.ConsolidateBelow <= 1):
		return cli.UsageErrorf("--consolidate-below %v must be in (0, 1], e.g. 0.3", r.ConsolidateBelow)
	case r.DrainBudget < 1:
		return cli.UsageErrorf("--drain-budget %d must be at least 1", r.DrainBudget)
	case r.JobRetention >= 0 && r.JobRetention < time.Minute:
		return cli.UsageErrorf("--job-retention %s is too short; use at least 1m (or a negative value to keep jobs until --max-finished-jobs)", r.JobRetention)
	case r.MaxFinishedJobs < 1:
		return cli.UsageErrorf("--max-finished-jobs %d must be at least 1", r.MaxFinishedJobs)
	}
	var err error
	if r.risk, err = scheduler.ParseRiskModel(r.RiskModel); err != nil {
		return cli.UsageErrorf("--risk-model: %v", err)
	}
	r.online = r.Correlation == "online"
	if r.online {
		return nil
	}
	if r.corr, err = scheduler.ParseCorrelation(r.Correlation); err != nil {
		return cli.UsageErrorf("--risk-correlation: %v (or online)", err)
	}
	if err := scheduler.CheckCorrelation(r.corr, r.risk); err != nil {
		return cli.UsageErrorf("--risk-model %s --risk-correlation %s: %v", r.RiskModel, r.Correlation, err)
	}
	return nil
}

// apply sets the control loop's configuration from the flags.
func (r *reconcileFlags) apply(c *controller.Config) {
	c.Placement.Risk, c.Placement.Correlation, c.OnlineCorrelation = r.risk, r.corr, r.online && r.risk != scheduler.RiskBernstein
	c.MassFailureFraction, c.MassFailureRate = r.MassFailureFraction, r.MassFailureRate
	c.Sizing.MoveCost, c.Sizing.MinTaskAge = r.MoveCost, r.MinTaskAge
	c.Consolidate, c.ConsolidateBelow, c.DrainBudget = r.Consolidate, r.ConsolidateBelow, r.DrainBudget
	c.JobRetention, c.MaxFinishedJobs = r.JobRetention, r.MaxFinishedJobs
}

func (c *serverConfig) validate() error {
	if c.HTTPAddr == "" {
		return cli.UsageErrorf("--http-addr must not be empty")
	}
	if len(c.EtcdEndpoints) == 0 && c.DataDir == "" {
		return cli.UsageErrorf("--data-dir must not be empty when no --etcd-endpoints are given")
	}
	if c.HeartbeatTimeout < time.Second {
		return cli.UsageErrorf("--heartbeat-timeout %s is too short; use at least 1s", c.HeartbeatTimeout)
	}
	if c.FailoverGrace < 0 {
		return cli.UsageErrorf("--failover-grace must not be negative")
	}
	if err := c.Reconcile.validate(); err != nil {
		return err
	}
	if err := validateNodeProvider(&c.NodeProvider); err != nil {
		return err
	}
	if c.RuleInterval < 0 || c.RuleInterval%time.Millisecond != 0 {
		return cli.UsageErrorf("--rule-interval %s must be positive and whole milliseconds, e.g. 5s (or 0 for the rule file's intervals)", c.RuleInterval)
	}
	if c.Retention <= 0 {
		return cli.UsageErrorf("--retention must be positive, e.g. 15d as 360h")
	}
	if c.PrometheusURL != "" {
		u, err := url.Parse(c.PrometheusURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return cli.UsageErrorf("--prometheus-url %q must be an absolute URL such as http://127.0.0.1:9090", c.PrometheusURL)
		}
	}
	return nil
}

// runServer runs the control plane until ctx ends.
func runServer(ctx context.Context, c serverConfig) error {
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if c.DataDir != "" {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
	}
	st, err := store.Open(ctx, store.Options{DataDir: c.DataDir, Endpoints: c.EtcdEndpoints})
	if err != nil {
		return err
	}
	defer st.Close()

	o := server.Options{Store: st, Registerer: reg, Gatherer: reg, Logger: log, NodeProvider: c.NodeProvider}
	o.Controller.HeartbeatTimeout, o.Controller.FailoverGrace = c.HeartbeatTimeout, c.FailoverGrace
	c.Reconcile.apply(&o.Controller)
	var ms *metrics.Store
	switch {
	case c.PrometheusURL != "":
		u, _ := url.Parse(strings.TrimRight(c.PrometheusURL, "/"))
		o.MetricsHandler = httputil.NewSingleHostReverseProxy(u)
		o.RemoteWriteURL = u.String() + "/api/v1/write"
	case !c.NoMetricsStore:
		ms, err = metrics.OpenStore(metrics.StoreOptions{Dir: filepath.Join(c.DataDir, "metrics"), Retention: c.Retention, RuleInterval: c.RuleInterval, Registerer: reg, Logger: log})
		if err != nil {
			return err
		}
		defer ms.Close()
		o.MetricsHandler = ms.Handler()
	}
	if err := c.Sizing.apply(&o, ms, c.PrometheusURL, log); err != nil {
		return err
	}
	hl, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	defer hl.Close()
	var gl net.Listener
	grpcAddr := hl.Addr().String()
	if c.GRPCAddr != "" {
		if gl, err = net.Listen("tcp", c.GRPCAddr); err != nil {
			return fmt.Errorf("--grpc-addr: %w", err)
		}
		defer gl.Close()
		grpcAddr = gl.Addr().String()
	}
	var dnsUDP net.PacketConn
	var dnsTCP net.Listener
	if c.DNSAddr != "" {
		if dnsUDP, err = net.ListenPacket("udp", c.DNSAddr); err != nil {
			return fmt.Errorf("--dns-addr: %w", err)
		}
		defer dnsUDP.Close()
		if dnsTCP, err = net.Listen("tcp", dnsUDP.LocalAddr().String()); err != nil {
			return fmt.Errorf("--dns-addr (tcp): %w", err)
		}
		defer dnsTCP.Close()
	}
	if ms != nil {
		// Agents push to the embedded TSDB through this server's HTTP port.
		_, o.RemoteWriteHTTPPort, _ = net.SplitHostPort(hl.Addr().String())
	}
	srv, err := server.New(ctx, o)
	if err != nil {
		return err
	}
	if ms != nil {
		go ms.SelfScrape(ctx, reg, 15*time.Second, map[string]string{"job": "fathom-server", "instance": hl.Addr().String()})
	}
	if c.Ready != nil {
		go func() {
			if waitHTTP(ctx, "http://"+dialable(hl.Addr().String())+"/readyz") {
				c.Ready(hl.Addr().String(), grpcAddr)
			}
		}()
	}
	dnsAt := ""
	if dnsUDP != nil {
		dnsAt = dnsUDP.LocalAddr().String()
	}
	log.Info("fathom server listening", "http", hl.Addr().String(), "grpc", grpcAddr, "dns", dnsAt, "data_dir", c.DataDir, "embedded_etcd", st.Embedded())
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	err = srv.Serve(ctx, server.ServeOptions{HTTP: hl, GRPC: gl, DNS: dnsUDP, DNSTCP: dnsTCP})
	if c.HeapProfile != "" {
		// Taken while the server's state is still referenced.
		runtime.GC()
		if f, ferr := os.Create(c.HeapProfile); ferr == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		} else {
			log.Warn("heap profile not written", "err", ferr)
		}
	}
	runtime.KeepAlive(srv)
	return err
}

// dialable turns ":7070" / "[::]:7070" into "127.0.0.1:7070".
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// waitHTTP polls url until it answers 200 or ctx ends.
func waitHTTP(ctx context.Context, u string) bool {
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

func newServerCmd(g *cli.Globals) *cobra.Command {
	var c serverConfig
	var logLevel string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: API, job state on etcd, placement, metrics store",
		Long: `The control plane. It keeps jobs, tasks and nodes in etcd (an embedded
single-member etcd in --data-dir by default, or --etcd-endpoints), serves the
REST API and gRPC on --http-addr (gRPC also on --grpc-addr), tracks agents by
heartbeat, places tasks, and serves a Prometheus-compatible API on /api/v1/
backed by an embedded TSDB (or --prometheus-url).

A submission is acknowledged only after etcd has committed it to disk.`,
		Example: `  fathom server --data-dir /var/lib/fathom/server
  fathom server --etcd-endpoints http://10.0.0.5:2379 --prometheus-url http://10.0.0.6:9090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.validate(); err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return cli.UsageErrorf("--log-level %q is not one of debug, info, warn, error", logLevel)
			}
			c.Log = slog.New(slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			err := runServer(ctx, c)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	c.bind(cmd)
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
