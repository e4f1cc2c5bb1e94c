package agentcmd

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/agent"
	"github.com/fathom-scheduler/fathom/agent/burn"
	"github.com/fathom-scheduler/fathom/internal/cli"
)

// NewBurnCommand returns `burn`, the workload generator for tests and demos.
func NewBurnCommand(g *cli.Globals) *cobra.Command {
	var (
		c           burn.Config
		cpu, memory string
	)
	cmd := &cobra.Command{
		Use:   "burn",
		Short: "Burn real CPU and memory in a chosen shape (a workload for tests and demos)",
		Long: `burn uses real CPU (busy loops duty-cycled to the requested cores, paid in
thread CPU time) and real memory (mapped and every page touched), shaped over
time by --pattern:

  steady  constant at --cpu and --memory
  sine    target × (1 + ½·sin(2πt/period)): mean at the target, from ½× to 1½×
  spiky   the target, spiking to 3× for the first tenth of every period
  leak    CPU steady; memory grows linearly, reaching --memory after one period and going on

It stops after --duration (0 = until interrupted) or on SIGTERM/SIGINT.`,
		Example: `  fathom burn --cpu 0.5 --memory 200Mi
  fathom burn --cpu 1 --memory 1Gi --pattern sine --period 10m --duration 1h
  fathom burn --memory 64Mi --pattern leak --period 1m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if c.CPU, err = agent.ParseCores(cpu); err != nil {
				return cli.UsageErrorf("--cpu: %v", err)
			}
			if c.Memory, err = agent.ParseBytes(memory); err != nil {
				return cli.UsageErrorf("--memory: %v", err)
			}
			if err := c.Validate(); err != nil {
				return cli.UsageErrorf("%v", err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(g.Stderr, "burn: pid %d, cpu %g cores, memory %d bytes, pattern %s, period %s, duration %s\n",
				os.Getpid(), c.CPU, c.Memory, c.Pattern, c.Period, c.Duration)
			return burn.Run(ctx, c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cpu, "cpu", "0", "cores to burn, e.g. 0.5 or 500m")
	f.StringVar(&memory, "memory", "0", "memory to hold, e.g. 200Mi")
	f.StringVar(&c.Pattern, "pattern", burn.Steady, "steady, sine, spiky or leak")
	f.DurationVar(&c.Period, "period", 10*time.Minute, "period of the pattern")
	f.DurationVar(&c.Duration, "duration", 0, "how long to run (0 = until interrupted)")
	return cmd
}
