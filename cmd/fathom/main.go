// Command fathom is the one Fathom binary: control plane, agent, CLI, simulator
// and benchmarks. Each sub-command lives in its own file and registers itself
// with register() from an init function, so that parts of the project can add
// commands without touching this file.
package main

import (
	"fmt"
	"os"
	"strings"

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
	root.SetOut(g.Stdout) // help and --version go where commands print
	root.SetErr(g.Stderr)
	for _, f := range commands {
		root.AddCommand(f(g))
	}
	// --version prints what `fathom version` prints.
	root.Version = versionLine()
	root.SetVersionTemplate("{{.Version}}\n")
	rejectUnknownSubcommands(root)
	return root
}

// rejectUnknownSubcommands makes every command group below the root (job,
// node, ...) refuse an argument that names none of its sub-commands: a
// usage error (exit 2) with cobra's suggestions, as the root already does,
// instead of printing help and exiting 0. Without arguments a group prints
// its help.
func rejectUnknownSubcommands(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c == root || !c.HasSubCommands() || c.Run != nil || c.RunE != nil {
			return
		}
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2 // cobra's own default, set only where it looks up
		}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return cli.UsageErrorf("%s (run '%s --help' for its commands)", msg, cmd.CommandPath())
		}
	}
	walk(root)
}

func main() {
	cli.Exit(newRootCmd().Execute())
}
