// Command fathom-agent is the node agent alone: the binary that runs on every
// machine (deploy/systemd/fathom-agent.service). It accepts exactly the flags
// of `fathom agent`, which execs it when it sits beside the fathom binary or
// on PATH, and links only the agent and the burn workload, so the resident
// process does not carry the server, embedded etcd, TSDB and simulator that
// the one `fathom` binary links. See docs/agent.md.
package main

import (
	"fmt"
	"os"

	"github.com/fathom-scheduler/fathom/agent/agentcmd"
	"github.com/fathom-scheduler/fathom/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	g := cli.NewGlobals(os.Stdout, os.Stderr)
	root := agentcmd.NewAgentCommand(g, agentcmd.Options{Use: agentcmd.SlimName, Version: version})
	root.Version = version
	root.SilenceUsage, root.SilenceErrors = true, true
	g.Bind(root)
	root.AddCommand(agentcmd.NewBurnCommand(g))
	if pv := os.Getenv(agentcmd.ParentVersionEnv); pv != "" {
		os.Unsetenv(agentcmd.ParentVersionEnv)
		if pv != version {
			fmt.Fprintf(os.Stderr, "warning: fathom %s started fathom-agent %s; install both from the same build\n", pv, version)
		}
	}
	cli.Exit(root.Execute())
}
