package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/agent/agentbench"
	"github.com/fathom-scheduler/fathom/agent/agentcmd"
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
		Long: `Starts 'fathom agent' (this binary, which execs the slim fathom-agent beside it,
as operators run it) as a separate process with --tasks long-running
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
				fmt.Fprintf(w, "    private (anon)\t%.1f MiB\t(Go heap in use %.1f, runtime total %.1f)\n", r.RSSAnonMiB, r.GoHeapInuseMiB, r.GoSysMiB)
				fmt.Fprintf(w, "    file-backed (binary pages)\t%.1f MiB\n", r.RSSFileMiB)
				fmt.Fprintf(w, "  PSS\t%.1f MiB\n", r.PSSMiB)
				fmt.Fprintf(w, "  binary measured\t%s\n", r.AgentBinary)
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

// newAgentCmd is `fathom agent`. Its flags are agentcmd's, shared with the
// slim fathom-agent binary, which it execs when it can (same pid, same flags).
func newAgentCmd(g *cli.Globals) *cobra.Command {
	return agentcmd.NewAgentCommand(g, agentcmd.Options{Use: "agent", Version: version,
		Exec: func(cmd *cobra.Command) error { return agentcmd.ExecSlim(cmd, version) }})
}
