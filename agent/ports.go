package agent

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// DefaultPortRange is `--port-range`'s default (Nomad's dynamic range).
const DefaultPortRange = "20000-32000"

// PortEnv is the environment variable a task's named port is passed in:
// FATHOM_PORT_<NAME>, upper case, '-' as '_' (server/jobspec refuses a
// task.env variable of that name).
func PortEnv(name string) string {
	return "FATHOM_PORT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// portsInUse checks that every port of an assignment is free on this
// machine (the scheduler only knows Fathom's own tasks): it binds each on
// all addresses over TCP and lets go. It returns "" when all are free,
// else what is taken.
func portsInUse(ports map[string]int32) string {
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	slices.Sort(names)
	var busy []string
	for _, n := range names {
		p := strconv.Itoa(int(ports[n]))
		l, err := net.Listen("tcp", ":"+p)
		if err != nil {
			busy = append(busy, fmt.Sprintf("%s (%s)", p, n))
			continue
		}
		l.Close()
	}
	if len(busy) == 0 {
		return ""
	}
	return "port " + strings.Join(busy, ", ") + " is already in use"
}
