package main

import (
	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/internal/cli"
)

// benchCommands are the `fathom bench` sub-commands, added by init functions
// in their own files (bench_submit.go, bench_schedule.go, ...).
var benchCommands []func(*cli.Globals) *cobra.Command

// addBenchCommand adds a `fathom bench` sub-command. Call it from an init
// function, like register for top-level commands.
func addBenchCommand(f func(*cli.Globals) *cobra.Command) {
	benchCommands = append(benchCommands, f)
}

func init() { register(newBenchCmd) }

func newBenchCmd(g *cli.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks that print figures (submissions, scheduling)",
		Long: `Benchmarks of Fathom's parts. Each prints its figures as a table, or as JSON
with -o json. 'make bench' runs them with the settings in scripts/bench.d.`,
	}
	for _, f := range benchCommands {
		cmd.AddCommand(f(g))
	}
	return cmd
}
