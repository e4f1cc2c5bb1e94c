package scheduler

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// Port is one named network port a task needs on its node. Static asks for
// that exact number; otherwise the scheduler picks one from the node's
// PortRange when it places the task. Value is the number the task holds
// (Static for a static port, the chosen one for a dynamic port; 0 for a
// dynamic port not chosen yet).
type Port struct {
	Name   string
	Static int
	Value  int
}

// PortRange is the inclusive range of dynamic ports a node gives out
// (`fathom agent --port-range 20000-32000`). The zero range gives none: a
// task with a dynamic port does not fit there; static ports still do.
type PortRange struct {
	Lo, Hi int
}

// Size is how many ports the range holds.
func (r PortRange) Size() int {
	if r.Lo <= 0 || r.Hi < r.Lo {
		return 0
	}
	return r.Hi - r.Lo + 1
}

// Contains reports whether p is in the range.
func (r PortRange) Contains(p int) bool { return r.Size() > 0 && p >= r.Lo && p <= r.Hi }

func (r PortRange) String() string {
	if r.Size() == 0 {
		return ""
	}
	return strconv.Itoa(r.Lo) + "-" + strconv.Itoa(r.Hi)
}

// ParsePortRange reads "LO-HI" (1 ≤ LO ≤ HI ≤ 65535); "" is the empty range.
func ParsePortRange(s string) (PortRange, error) {
	if s == "" {
		return PortRange{}, nil
	}
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return PortRange{}, fmt.Errorf("port range %q: write LO-HI with 1 ≤ LO ≤ HI ≤ 65535, e.g. 20000-32000", s)
	}
	return PortRange{lo, hi}, nil
}

// PortMap returns the task's ports by name (those with a value).
func (t *Task) PortMap() map[string]int {
	if len(t.Ports) == 0 {
		return nil
	}
	m := make(map[string]int, len(t.Ports))
	for _, p := range t.Ports {
		if p.Value > 0 {
			m[p.Name] = p.Value
		}
	}
	return m
}

// validatePorts checks names and numbers.
func (t *Task) validatePorts() error {
	for i, p := range t.Ports {
		if p.Name == "" {
			return fmt.Errorf("%w: task %s: port %d has no name", ErrInvalid, t.ID, i)
		}
		if p.Static < 0 || p.Static > 65535 || p.Value < 0 || p.Value > 65535 {
			return fmt.Errorf("%w: task %s: port %s must be in 1..65535", ErrInvalid, t.ID, p.Name)
		}
		for _, q := range t.Ports[:i] {
			if q.Name == p.Name {
				return fmt.Errorf("%w: task %s: port %s is named twice", ErrInvalid, t.ID, p.Name)
			}
			if p.Static > 0 && q.Static == p.Static {
				return fmt.Errorf("%w: task %s: ports %s and %s are both static %d", ErrInvalid, t.ID, q.Name, p.Name, p.Static)
			}
		}
	}
	return nil
}

// portKey is the class signature of a task's ports: the static numbers
// and how many dynamic ones it needs.
func portKey(ps []Port) string {
	if len(ps) == 0 {
		return ""
	}
	var b strings.Builder
	dyn := 0
	for _, p := range ps {
		if p.Static > 0 {
			b.WriteString(strconv.Itoa(p.Static) + ",")
		} else {
			dyn++
		}
	}
	return b.String() + "+" + strconv.Itoa(dyn)
}

// portsFilter keeps two tasks from holding the same port on one node: a
// static port must be free there, and the node's range must have a free
// port for every dynamic one.
type portsFilter struct{}

var _ Filter = portsFilter{}

func (portsFilter) Name() string { return "ports" }
func (portsFilter) Filter(c *placeCtx, t *Task, n int32) Reason {
	if len(t.Ports) == 0 {
		return ReasonNone
	}
	ns := &c.s.nodes[n]
	dyn := 0
	for _, p := range t.Ports {
		if p.Static > 0 {
			if ns.ports[p.Static] > 0 {
				return ReasonPorts
			}
		} else {
			dyn++
		}
	}
	if dyn > 0 {
		// Static ports of this task inside the range take room too.
		in := 0
		for _, p := range t.Ports {
			if p.Static > 0 && ns.PortRange.Contains(p.Static) {
				in++
			}
		}
		if ns.PortRange.Size()-ns.portsInRange-in < dyn {
			return ReasonPorts
		}
	}
	return ReasonNone
}

// choosePorts gives every dynamic port of t a free number on node n: the
// first free port from an offset that a hash of the task ID and port name
// picks in the node's range (deterministic; a task placed again tends to
// get another number than the one just freed). A dynamic port whose value
// is already set and free on n keeps it. The filter has checked there is
// room.
func (s *State) choosePorts(t *Task, n int32) {
	if len(t.Ports) == 0 {
		return
	}
	t.Ports = slices.Clone(t.Ports)
	ns := &s.nodes[n]
	taken := map[int]bool{}
	for i := range t.Ports {
		p := &t.Ports[i]
		if p.Static > 0 {
			p.Value = p.Static
			taken[p.Value] = true
		}
	}
	for i := range t.Ports {
		p := &t.Ports[i]
		if p.Static > 0 {
			continue
		}
		if p.Value > 0 && ns.PortRange.Contains(p.Value) && ns.ports[p.Value] == 0 && !taken[p.Value] {
			taken[p.Value] = true
			continue
		}
		p.Value = 0
		size := ns.PortRange.Size()
		if size == 0 {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(t.ID + "\x00" + p.Name))
		off := int(h.Sum64() % uint64(size))
		for k := range size {
			v := ns.PortRange.Lo + (off+k)%size
			if ns.ports[v] == 0 && !taken[v] {
				p.Value = v
				taken[v] = true
				break
			}
		}
	}
}

// holdPorts counts t's ports on node n (d = 1) or releases them (d = -1).
func (s *State) holdPorts(t *Task, n int32, d int32) {
	ns := &s.nodes[n]
	for _, p := range t.Ports {
		if p.Value <= 0 {
			continue
		}
		if ns.ports == nil {
			ns.ports = map[int]int32{}
		}
		if ns.PortRange.Contains(p.Value) {
			if d > 0 && ns.ports[p.Value] == 0 {
				ns.portsInRange++
			} else if d < 0 && ns.ports[p.Value] == 1 {
				ns.portsInRange--
			}
		}
		if ns.ports[p.Value] += d; ns.ports[p.Value] <= 0 {
			delete(ns.ports, p.Value)
		}
	}
}

// NodePorts returns the ports held on a node, ascending.
func (s *State) NodePorts(name string) []int {
	i, ok := s.byName[name]
	if !ok {
		return nil
	}
	out := make([]int, 0, len(s.nodes[i].ports))
	for p := range s.nodes[i].ports {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
