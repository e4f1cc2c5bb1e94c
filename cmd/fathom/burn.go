package main

import "github.com/fathom-scheduler/fathom/agent/agentcmd"

// `fathom burn` is agentcmd's, shared with `fathom-agent burn`.
func init() { register(agentcmd.NewBurnCommand) }
