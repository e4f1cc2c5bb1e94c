package jobspec

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/fathom-scheduler/fathom/agent"
	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// MaxPorts bounds task.ports.
const MaxPorts = 16

var portFields = []string{"name", "static"}

// portsFromMap reads task.ports: a list of {name, static?}.
func portsFromMap(v any) ([]*fathomv1.Port, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fieldErr("task.ports", "expected a list such as [{name: http}, {name: metrics, static: 9100}], got %s", kind(v))
	}
	var out []*fathomv1.Port
	for i, e := range l {
		field := fmt.Sprintf("task.ports[%d]", i)
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fieldErr(field, "expected a mapping with name and optionally static, got %s", kind(e))
		}
		if err := checkKeys(field+".", m, portFields); err != nil {
			return nil, err
		}
		p := &fathomv1.Port{}
		if n, ok := m["name"]; ok && n != nil {
			s, err := asString(field+".name", n)
			if err != nil {
				return nil, err
			}
			p.Name = s
		}
		if st, ok := m["static"]; ok && st != nil {
			num, ok := st.(json.Number)
			if !ok {
				return nil, fieldErr(field+".static", "expected a port number 1..65535, got %s", kind(st))
			}
			x, err := strconv.ParseInt(string(num), 10, 32)
			if err != nil {
				return nil, fieldErr(field+".static", "%q is not a whole port number 1..65535", string(num))
			}
			p.Static = int32(x)
		}
		out = append(out, p)
	}
	return out, nil
}

// normalizePorts checks task.ports: names are DNS labels of at most 15
// characters (an SRV service name), unique; static numbers 1..65535, unique;
// at most MaxPorts; no task.env variable of the same name as a port's.
func normalizePorts(in []*fathomv1.Port, env map[string]string) ([]*fathomv1.Port, error) {
	if len(in) > MaxPorts {
		return nil, fieldErr("task.ports", "%d ports; the limit is %d", len(in), MaxPorts)
	}
	var out []*fathomv1.Port
	names := map[string]int{}
	statics := map[int32]int{}
	for i, p := range in {
		field := fmt.Sprintf("task.ports[%d]", i)
		n := p.GetName()
		if n == "" {
			return nil, fieldErr(field+".name", "required: a name such as http")
		}
		if len(n) > 15 || !dnsLabel.MatchString(n) {
			return nil, fieldErr(field+".name", "%q is not a port name: use 1-15 lower-case letters, digits and '-', starting and ending with a letter or digit", trunc(n))
		}
		if j, ok := names[n]; ok {
			return nil, fieldErr(field+".name", "%q is already the name of task.ports[%d]; port names must be unique", n, j)
		}
		names[n] = i
		if st := p.GetStatic(); st != 0 {
			if st < 1 || st > 65535 {
				return nil, fieldErr(field+".static", "%d is out of range; allowed 1..65535 (omit it for a port Fathom picks)", st)
			}
			if j, ok := statics[st]; ok {
				return nil, fieldErr(field+".static", "%d is also task.ports[%d].static; a task cannot hold one port twice", st, j)
			}
			statics[st] = i
		}
		if _, ok := env[agent.PortEnv(n)]; ok {
			return nil, fieldErr("task.env."+agent.PortEnv(n), "is set by Fathom to the port %q; remove it from task.env", n)
		}
		out = append(out, &fathomv1.Port{Name: n, Static: p.GetStatic()})
	}
	return out, nil
}
