// Command fathom is the one Fathom binary: control plane, agent, CLI, simulator
// and benchmarks. Each sub-command lives in its own file and registers itself
// with register() from an init function, so that parts of the project can add
// commands without touching this file.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/internal/cli"
)

// commands are the top-level sub-commands, added by init functions.
var commands []func(*cli.Globals) *cobra.Command

// register adds a top-level sub-command. Call it from an init function.
func register(f func(*cli.Globals) *cobra.Command) { commands = append(commands, f) }

func newRootCmd() *cobra.Command {
	g := cli.NewGlobals(os.Stdout, os.Stderr)
	root := &cobra.Command{
		Use:   "fathom",
		Short: "Fathom: a cluster scheduler that sizes your jobs for you",
		Long: `Fathom runs jobs you submit without sizing them. Agents run the tasks in
cgroups and stream their usage to Prometheus; a predictor learns what each task
needs; a packing scheduler places tasks on those learned sizes.

Start a laptop cluster with 'fathom dev', then submit with 'fathom job run FILE'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	g.Bind(root)
	for _, f := range commands {
		root.AddCommand(f(g))
	}
	return root
}

func main() {
	cli.Exit(newRootCmd().Execute())
}
