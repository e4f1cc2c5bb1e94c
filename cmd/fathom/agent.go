package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/agent"
	"github.com/fathom-scheduler/fathom/agent/agentbench"
	"github.com/fathom-scheduler/fathom/internal/cli"
)

func init() {
	register(newAgentCmd)
	addBenchCommand(newBenchAgentCmd)
}

func newBenchAgentCmd(g *cli.Globals) *cobra.Command {
	var o agentbench.Options
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Node agent overhead: CPU share and RSS with 100 running tasks at 1 s sampling",
		Long: `Starts 'fathom agent' (this binary) as a separate process with --tasks long-running
tasks from an assignments file, 1 s sampling and 10 s remote-write pushes to a local
receiver, waits --warmup, then reads the agent's CPU time and resident memory from
/proc over --duration. Goal: at most 1% of one core and 40 MiB. Needs root and a
writable cgroup hierarchy to measure the cgroup path; otherwise the agent runs with
enforcement "none" and the result says so.`,
		Example: `  fathom bench agent
  fathom bench agent --tasks 100 --duration 60s -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Tasks <= 0 || o.Duration <= 0 {
				return cli.UsageErrorf("--tasks and --duration must be positive")
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Binary = exe
			if g.Output == "table" {
				o.Progress = func(s string) { fmt.Fprintln(g.Stderr, "bench agent:", s) }
			}
			r, err := agentbench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			verdict := func(ok bool) string {
				if ok {
					return "OK"
				}
				return "OVER"
			}
			return g.Print(r, func(w io.Writer) {
				fmt.Fprintf(w, "agent with %d running tasks, %gs sampling, %gs pushes, enforcement %s, over %.0f s:\n", r.Tasks, r.SampleIntervalSeconds, r.PushIntervalSeconds, r.Enforcement, r.Seconds)
				fmt.Fprintf(w, "  CPU\t%.3f%% of one core\t(goal <= %g%%)\t%s\n", r.CPUPercentOfOneCore, r.GoalCPUPercent, verdict(r.CPUPercentOfOneCore <= r.GoalCPUPercent))
				fmt.Fprintf(w, "  RSS\t%.1f MiB (peak %.1f)\t(goal <= %g MiB)\t%s\n", r.RSSMiB, r.RSSPeakMiB, r.GoalRSSMiB, verdict(r.RSSMiB <= r.GoalRSSMiB))
				fmt.Fprintf(w, "    private (anon)\t%.1f MiB\n", r.RSSAnonMiB)
				fmt.Fprintf(w, "    file-backed (binary pages)\t%.1f MiB\n", r.RSSFileMiB)
				fmt.Fprintf(w, "  remote write\t%d requests, %.0f samples sent, %.0f dropped\n", r.RemoteWriteRequests, r.RemoteWriteSamplesSent, r.RemoteWriteDropped)
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Tasks, "tasks", 100, "running tasks (sleep processes)")
	f.DurationVar(&o.Duration, "duration", time.Minute, "measurement window")
	f.DurationVar(&o.Warmup, "warmup", 15*time.Second, "wait after all tasks run, before measuring")
	f.DurationVar(&o.SampleInterval, "sample-interval", time.Second, "the agent's --sample-interval")
	f.DurationVar(&o.PushInterval, "push-interval", 10*time.Second, "the agent's --push-interval")
	return cmd
}

func newAgentCmd(g *cli.Globals) *cobra.Command {
	var (
		cfg                   agent.Config
		cpu, memory           string
		labels                []string
		assignments, logLevel string
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: run assigned tasks in cgroups and stream their usage",
		Long: `The agent runs on every machine. It registers the machine's capacity with the
control plane (--server: the server's address, whose HTTP port also serves gRPC,
or its --grpc-addr), runs the tasks assigned to it as
processes in their own cgroups with the assigned memory limit and CPU quota,
samples their usage every second, serves /metrics and task logs on
--metrics-addr, pushes usage by Prometheus remote write every 10 s, and evicts
best-effort then batch tasks when memory runs short.

Tasks outlive the agent: a restarted agent re-attaches to them from --data-dir.
With --assignments FILE the agent runs the tasks listed in FILE and needs no server.`,
		Example: `  fathom agent --server http://10.0.0.1:7070
  fathom agent --server 10.0.0.1:7071 --remote-write-url http://10.0.0.1:7070/api/v1/write --name rack1-07 --cpu 30 --memory 120Gi
  fathom agent --assignments tasks.yaml --data-dir /tmp/fathom-agent`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cpu != "" {
				if cfg.CPU, err = agent.ParseCores(cpu); err != nil {
					return cli.UsageErrorf("--cpu: %v", err)
				}
			}
			if memory != "" {
				if cfg.Memory, err = agent.ParseBytes(memory); err != nil {
					return cli.UsageErrorf("--memory: %v", err)
				}
			}
			cfg.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return cli.UsageErrorf("--label %q must look like key=value", l)
				}
				cfg.Labels[k] = v
			}
			if cfg.EvictionThreshold > 1 {
				return cli.UsageErrorf("--eviction-threshold %v must be a fraction of memory, such as 0.95", cfg.EvictionThreshold)
			}
			switch cfg.CgroupMode {
			case "auto", "cgroup2", "cgroup1", "none":
			default:
				return cli.UsageErrorf("--cgroup-mode %q is not one of auto, cgroup2, cgroup1, none", cfg.CgroupMode)
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return cli.UsageErrorf("--log-level %q is not one of debug, info, warn, error", logLevel)
			}
			cfg.Log = slog.New(slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: level}))
			cfg.Server = g.Server
			if assignments != "" {
				if _, err := agent.LoadAssignments(assignments); err != nil {
					return cli.UsageErrorf("--assignments: %v", err)
				}
				cfg.ControlPlane = &agent.StaticControlPlane{Path: assignments, Log: cfg.Log}
				if cfg.RemoteWriteURL == "" && !cmd.Flags().Changed("server") {
					cfg.RemoteWriteURL = "http://127.0.0.1:7070/api/v1/write"
				}
			}
			cfg.Version = version
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Ready = func(addr string) {
				fmt.Fprintf(g.Stderr, "fathom agent %s: HTTP on %s (/metrics, /healthz, /v1/tasks/{id}/logs)\n", cfg.Name, addr)
			}
			return agent.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", "", "node name (default: the host name)")
	f.StringVar(&cpu, "cpu", "", "CPU cores offered to tasks, e.g. 8 or 7500m (default: the machine's)")
	f.StringVar(&memory, "memory", "", "memory offered to tasks, e.g. 256Gi or 68719476736 (default: the machine's)")
	f.StringArrayVar(&labels, "label", nil, "node label key=value (repeatable)")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", ":7072", "listen address of the agent's HTTP server (/metrics, /healthz, task logs)")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "host:port the server uses to reach the agent's HTTP server (default: host name and --metrics-addr port)")
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/fathom/agent", "task state and logs; keep it across restarts to re-attach to running tasks")
	f.StringVar(&cfg.CgroupParent, "cgroup-parent", "fathom", "parent cgroup of the task cgroups; relative to the agent's own cgroup unless it starts with /")
	f.StringVar(&cfg.CgroupMode, "cgroup-mode", "auto", "enforcement: auto, cgroup2, cgroup1 or none")
	f.StringVar(&cfg.RemoteWriteURL, "remote-write-url", "", "Prometheus remote-write endpoint for usage (default: what the server names, else http://<server>/api/v1/write)")
	f.IntVar(&cfg.RemoteWriteBuffer, "remote-write-buffer", 50000, "samples held while the remote-write endpoint is unreachable; older ones are dropped and counted")
	f.Float64Var(&cfg.EvictionThreshold, "eviction-threshold", 0.95, "fraction of memory in use above which best-effort, then batch tasks are evicted (negative disables)")
	f.DurationVar(&cfg.GracePeriod, "grace-period", 10*time.Second, "time between SIGTERM and SIGKILL when stopping a task")
	f.DurationVar(&cfg.SampleInterval, "sample-interval", time.Second, "how often task usage is sampled")
	f.DurationVar(&cfg.PushInterval, "push-interval", 10*time.Second, "how often usage is pushed by remote write")
	f.StringVar(&assignments, "assignments", "", "run the tasks listed in this YAML/JSON file instead of asking a server")
	f.BoolVar(&cfg.StopTasksOnExit, "stop-tasks-on-exit", false, "stop all tasks when the agent exits (default: leave them running for the next agent)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
