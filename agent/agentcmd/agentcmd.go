// Package agentcmd holds the command lines of the node agent and the burn
// workload, shared by the `fathom` binary (`fathom agent`, `fathom burn`) and
// the slim `fathom-agent` binary, so both accept exactly the same flags.
//
// The agent normally runs as the slim binary: it links only the agent, so the
// process the operator keeps on every machine does not map and initialise the
// server, the embedded etcd, the TSDB and the simulator that the one `fathom`
// binary carries. `fathom agent` execs fathom-agent (same pid, same flags)
// when it finds it beside itself or on PATH, and otherwise runs the agent in
// its own process with a one-line warning.
package agentcmd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fathom-scheduler/fathom/agent"
	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// Long is the agent command's description.
const Long = `The agent runs on every machine. It registers the machine's capacity with the
control plane (--server: the server's address, whose HTTP port also serves gRPC,
or its --grpc-addr), runs the tasks assigned to it as
processes in their own cgroups with the assigned memory limit and CPU quota,
samples their usage every second, serves /metrics and task logs on
--metrics-addr, pushes usage by Prometheus remote write every 10 s, and evicts
best-effort then batch tasks when memory runs short. Task output goes to
per-task log files rotated by size (--log-max-size, --log-max-files).

Tasks outlive the agent: a restarted agent re-attaches to them from --data-dir.
With --assignments FILE the agent runs the tasks listed in FILE and needs no server.`

// Flags are the agent's command-line flags. Bind registers them on a flag
// set; Config turns what was given into an agent.Config.
type Flags struct {
	cfg                   agent.Config
	cpu, memory           string
	logMaxSize            string
	labels                []string
	assignments, logLevel string
}

// Bind registers the agent's flags on fs.
func (fl *Flags) Bind(fs *pflag.FlagSet) {
	c := &fl.cfg
	fs.StringVar(&c.Name, "name", "", "node name (default: the host name)")
	fs.StringVar(&fl.cpu, "cpu", "", "CPU cores offered to tasks, e.g. 8 or 7500m (default: the machine's)")
	fs.StringVar(&fl.memory, "memory", "", "memory offered to tasks, e.g. 256Gi or 68719476736 (default: the machine's)")
	fs.StringArrayVar(&fl.labels, "label", nil, "node label key=value (repeatable)")
	fs.StringVar(&c.PortRange, "port-range", agent.DefaultPortRange, "dynamic ports given to tasks' named ports (task.ports without static), LO-HI; empty: none")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", ":7072", "listen address of the agent's HTTP server (/metrics, /healthz, task logs)")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", "", "host:port the server uses to reach the agent's HTTP server (default: host name and --metrics-addr port)")
	fs.StringVar(&c.DataDir, "data-dir", "/var/lib/fathom/agent", "task state and logs; keep it across restarts to re-attach to running tasks")
	fs.StringVar(&c.CgroupParent, "cgroup-parent", "fathom", "parent cgroup of the task cgroups; relative to the agent's own cgroup unless it starts with /")
	fs.StringVar(&c.CgroupMode, "cgroup-mode", "auto", "enforcement: auto, cgroup2, cgroup1 or none")
	fs.StringVar(&c.RemoteWriteURL, "remote-write-url", "", "Prometheus remote-write endpoint for usage (default: what the server names, else http://<server>/api/v1/write)")
	fs.IntVar(&c.RemoteWriteBuffer, "remote-write-buffer", 50000, "samples held while the remote-write endpoint is unreachable; older ones are dropped and counted")
	fs.Float64Var(&c.EvictionThreshold, "eviction-threshold", 0.95, "fraction of memory in use above which best-effort, then batch tasks are evicted (negative disables)")
	fs.DurationVar(&c.GracePeriod, "grace-period", 10*time.Second, "time between SIGTERM and SIGKILL when stopping a task")
	fs.DurationVar(&c.SampleInterval, "sample-interval", time.Second, "how often task usage is sampled")
	fs.DurationVar(&c.PushInterval, "push-interval", 10*time.Second, "how often usage is pushed by remote write")
	fs.StringVar(&fl.logMaxSize, "log-max-size", "10Mi", "rotate a task's output.log when it reaches this size, e.g. 10Mi (0 = never rotate)")
	fs.IntVar(&c.LogMaxFiles, "log-max-files", 3, "rotated task log files kept besides output.log (output.log.1 is the newest)")
	fs.DurationVar(&c.TaskRetention, "task-retention", 24*time.Hour, "how long the directory (logs) of a task that left this node is kept, so `fathom job logs` still reads it (0 = keep forever)")
	fs.StringVar(&fl.assignments, "assignments", "", "run the tasks listed in this YAML/JSON file instead of asking a server")
	fs.BoolVar(&c.StopTasksOnExit, "stop-tasks-on-exit", false, "stop all tasks when the agent exits (default: leave them running for the next agent)")
	fs.StringVar(&fl.logLevel, "log-level", "info", "debug, info, warn or error")
}

// Config checks the flags and returns the agent's configuration; the server
// is the global --server (g.Server), and serverGiven says whether it was set
// explicitly.
func (fl *Flags) Config(g *cli.Globals, serverGiven bool, version string) (agent.Config, error) {
	cfg := fl.cfg
	var err error
	if fl.cpu != "" {
		if cfg.CPU, err = agent.ParseCores(fl.cpu); err != nil {
			return cfg, cli.UsageErrorf("--cpu: %v", err)
		}
	}
	if fl.memory != "" {
		if cfg.Memory, err = agent.ParseBytes(fl.memory); err != nil {
			return cfg, cli.UsageErrorf("--memory: %v", err)
		}
	}
	if _, err := scheduler.ParsePortRange(cfg.PortRange); err != nil {
		return cfg, cli.UsageErrorf("--port-range: %v", err)
	}
	if cfg.LogMaxSize, err = agent.ParseBytes(fl.logMaxSize); err != nil {
		return cfg, cli.UsageErrorf("--log-max-size: %v", err)
	}
	switch {
	case cfg.LogMaxSize == 0:
		cfg.LogMaxSize = -1 // never (agent.Config's 0 means its default)
	case cfg.LogMaxSize < 4096:
		return cfg, cli.UsageErrorf("--log-max-size %s is too small: use at least 4Ki, or 0 to never rotate", fl.logMaxSize)
	}
	if cfg.TaskRetention < 0 {
		return cfg, cli.UsageErrorf("--task-retention %s: use a duration such as 24h, or 0 to keep task directories forever", cfg.TaskRetention)
	}
	if cfg.LogMaxFiles < 1 {
		return cfg, cli.UsageErrorf("--log-max-files %d: keep at least 1 rotated file (use --log-max-size 0 to disable rotation)", cfg.LogMaxFiles)
	}
	cfg.Labels = map[string]string{}
	for _, l := range fl.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return cfg, cli.UsageErrorf("--label %q must look like key=value", l)
		}
		cfg.Labels[k] = v
	}
	if cfg.EvictionThreshold > 1 {
		return cfg, cli.UsageErrorf("--eviction-threshold %v must be a fraction of memory, such as 0.95", cfg.EvictionThreshold)
	}
	switch cfg.CgroupMode {
	case "auto", "cgroup2", "cgroup1", "none":
	default:
		return cfg, cli.UsageErrorf("--cgroup-mode %q is not one of auto, cgroup2, cgroup1, none", cfg.CgroupMode)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(fl.logLevel)); err != nil {
		return cfg, cli.UsageErrorf("--log-level %q is not one of debug, info, warn, error", fl.logLevel)
	}
	cfg.Log = slog.New(slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Server = g.Server
	if fl.assignments != "" {
		if _, err := agent.LoadAssignments(fl.assignments); err != nil {
			return cfg, cli.UsageErrorf("--assignments: %v", err)
		}
		cfg.ControlPlane = &agent.StaticControlPlane{Path: fl.assignments, Log: cfg.Log}
		if cfg.RemoteWriteURL == "" && !serverGiven {
			cfg.RemoteWriteURL = "http://127.0.0.1:7070/api/v1/write"
		}
	}
	cfg.Version = version
	return cfg, nil
}

// Options say how NewAgentCommand behaves in the binary that builds it.
type Options struct {
	// Use is the command's name and usage line ("agent" or "fathom-agent").
	Use string
	// Version is reported on registration.
	Version string
	// Exec, when set, is tried before running in-process: it may replace the
	// process (syscall.Exec) and only returns if it did not.
	Exec func(cmd *cobra.Command) error

	run func(context.Context, agent.Config) error // agent.Run; tests replace it
}

// NewAgentCommand returns the agent's command.
func NewAgentCommand(g *cli.Globals, o Options) *cobra.Command {
	var fl Flags
	if o.run == nil {
		o.run = agent.Run
	}
	name := o.Use // how the examples spell the command
	if o.Use == "agent" {
		name = "fathom agent"
	}
	cmd := &cobra.Command{
		Use:   o.Use,
		Short: "Run the node agent: run assigned tasks in cgroups and stream their usage",
		Long:  Long,
		Example: strings.ReplaceAll(`  NAME --server http://10.0.0.1:7070
  NAME --server 10.0.0.1:7071 --remote-write-url http://10.0.0.1:7070/api/v1/write --name rack1-07 --cpu 30 --memory 120Gi
  NAME --assignments tasks.yaml --data-dir /tmp/fathom-agent`, "NAME", name),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := fl.Config(g, cmd.Flags().Changed("server"), o.Version)
			if err != nil {
				return err
			}
			if o.Exec != nil {
				if err := o.Exec(cmd); err != nil {
					fmt.Fprintf(g.Stderr, "warning: %v; running the agent inside this binary (more memory)\n", err)
				}
			}
			setMemoryGoal()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Ready = func(addr string) {
				fmt.Fprintf(g.Stderr, "fathom agent: HTTP on %s (/metrics, /healthz, /v1/tasks/{id}/logs)\n", addr)
			}
			return o.run(ctx, cfg)
		},
	}
	fl.Bind(cmd.Flags())
	return cmd
}

// setMemoryGoal keeps the agent's heap small: a dedicated agent process
// holds a few MiB of live data, and the Go default (GOGC=100, no limit) lets
// the heap double before collecting. A soft memory limit makes the collector
// work harder only as the process nears it, so it costs no CPU while the
// agent is small. GOGC and GOMEMLIMIT in the environment win.
func setMemoryGoal() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(agentMemoryLimit)
	}
}

// agentMemoryLimit is the soft limit on the Go runtime's memory in the agent
// process (heap, stacks, runtime structures; not the binary's pages).
const agentMemoryLimit = 16 << 20
