package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/agent"
	"github.com/fathom-scheduler/fathom/console"
	"github.com/fathom-scheduler/fathom/internal/cli"
)

func init() { register(newDevCmd) }

func newDevCmd(g *cli.Globals) *cobra.Command {
	var (
		c                                  serverConfig
		agentAddr, cpu, memory, cgroupMode string
		logLevel                           string
		noAgent, demo                      bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a one-machine cluster: server, embedded etcd and TSDB, and a local agent",
		Long: `All of Fathom on one machine, for trying it out: the control plane with an
embedded etcd and an embedded Prometheus-compatible TSDB, plus one agent that
runs tasks on this machine. It prints the web console's URL first, then the
API, metrics and Grafana data-source URLs. Ctrl-C stops everything, including the tasks it started.`,
		Example: `  fathom dev
  fathom dev --data-dir /tmp/fathom --cpu 2 --memory 4Gi`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.validate(); err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return cli.UsageErrorf("--log-level %q is not one of debug, info, warn, error", logLevel)
			}
			log := slog.New(slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: level}))
			c.Log = log
			acfg := agent.Config{
				MetricsAddr: agentAddr, DataDir: filepath.Join(c.DataDir, "agent"), CgroupMode: cgroupMode,
				StopTasksOnExit: true, Version: version, Log: log, PortRange: agent.DefaultPortRange,
			}
			var err error
			if cpu != "" {
				if acfg.CPU, err = agent.ParseCores(cpu); err != nil {
					return cli.UsageErrorf("--cpu: %v", err)
				}
			}
			if memory != "" {
				if acfg.Memory, err = agent.ParseBytes(memory); err != nil {
					return cli.UsageErrorf("--memory: %v", err)
				}
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var wg sync.WaitGroup
			var agentErr error
			c.Ready = func(httpAddr, grpcAddr string) {
				api := "http://" + dialable(httpAddr)
				// The console first: it is where a newcomer looks.
				fmt.Fprintf(g.Stdout, "Console: %s\n", console.URL(api, ""))
				fmt.Fprintf(g.Stdout, `Fathom dev cluster is up.
  API (REST, gRPC h2c):  %[1]s   (gRPC also on %[2]s)
  Control-plane metrics: %[1]s/metrics
  Agent metrics:         http://%[3]s/metrics
  Grafana data source:   type Prometheus, URL %[1]s   (PromQL API under /api/v1/)
  Data directory:        %[4]s
`, api, dialable(grpcAddr), dialable(agentAddr), c.DataDir)
				if !demo {
					fmt.Fprintf(g.Stdout, "Submit a job:  FATHOM_ADDR=%s fathom job run examples/web.yaml\n", api)
				}
				fmt.Fprintln(g.Stdout, "Ctrl-C stops everything.")
				if noAgent {
					return
				}
				acfg.Server = dialable(grpcAddr)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := agent.Run(ctx, acfg); err != nil && ctx.Err() == nil {
						agentErr = err
						log.Error("agent stopped", "err", err)
						cancel()
					}
				}()
			}
			err = runServer(ctx, c)
			cancel()
			wg.Wait()
			if err == nil || errors.Is(err, context.Canceled) {
				err = agentErr
			}
			if err == nil {
				fmt.Fprintln(g.Stdout, "stopped")
			}
			return err
		},
	}
	c.bind(cmd)
	f := cmd.Flags()
	f.Lookup("data-dir").DefValue = filepath.Join(os.TempDir(), "fathom-dev")
	c.DataDir = filepath.Join(os.TempDir(), "fathom-dev")
	f.Lookup("http-addr").DefValue = "127.0.0.1:7070"
	c.HTTPAddr = "127.0.0.1:7070"
	f.Lookup("grpc-addr").DefValue = "127.0.0.1:7071"
	c.GRPCAddr = "127.0.0.1:7071"
	c.HeartbeatTimeout = 10 * time.Second
	f.StringVar(&agentAddr, "agent-addr", "127.0.0.1:7072", "the local agent's HTTP address (/metrics, task logs)")
	f.StringVar(&cpu, "cpu", "", "CPU cores the local agent offers (default: the machine's)")
	f.StringVar(&memory, "memory", "", "memory the local agent offers, e.g. 4Gi (default: the machine's)")
	f.StringVar(&cgroupMode, "cgroup-mode", "auto", "auto, cgroup2, cgroup1 or none")
	f.BoolVar(&noAgent, "no-agent", false, "run only the control plane")
	// scripts/demo.sh submits the examples itself and then says what to try.
	f.BoolVar(&demo, "demo", false, "leave the submit hint out of the banner")
	f.MarkHidden("demo")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	return cmd
}
