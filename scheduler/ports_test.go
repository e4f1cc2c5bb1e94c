package scheduler

import (
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestStaticPortConflictIsFiltered(t *testing.T) {
	nodes := []Node{{Name: "a", Capacity: Resources{8, 8}}, {Name: "b", Capacity: Resources{1, 1}}}
	web := func(id string) Task {
		return Task{ID: id, Request: Resources{0.5, 0.5}, Ports: []Port{{Name: "http", Static: 8080}}}
	}
	p, err := Place(ClusterView{Nodes: nodes}, []Task{web("w1"), web("w2"), web("w3")}, Options{KeepOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Placements) != 2 || p.Placements[0].Node == p.Placements[1].Node {
		t.Fatalf("two tasks with static 8080 must go to different nodes: %+v", p.Placements)
	}
	for _, pl := range p.Placements {
		if pl.Ports["http"] != 8080 {
			t.Errorf("%s ports %v, want http=8080", pl.TaskID, pl.Ports)
		}
	}
	if len(p.Unplaced) != 1 || !strings.Contains(p.Unplaced[0].Reason, "ports=2") {
		t.Fatalf("third task must wait with a ports reason: %+v", p.Unplaced)
	}
}

func TestDynamicPortsAreDistinctAndDeterministic(t *testing.T) {
	nodes := []Node{{Name: "a", Capacity: Resources{8, 8}, PortRange: PortRange{20000, 20003}}}
	var tasks []Task
	for i := range 3 {
		tasks = append(tasks, Task{ID: fmt.Sprint("t", i), Request: Resources{0.1, 0.1}, Ports: []Port{{Name: "http"}, {Name: "admin"}}})
	}
	p1, _ := Place(ClusterView{Nodes: nodes}, tasks, Options{})
	p2, _ := Place(ClusterView{Nodes: nodes}, tasks, Options{})
	if len(p1.Placements) != 2 || len(p1.Unplaced) != 1 || !strings.Contains(p1.Unplaced[0].Reason, "ports=1") {
		t.Fatalf("a range of 4 holds two tasks of 2 ports: %+v", p1)
	}
	seen := map[int]bool{}
	for i, pl := range p1.Placements {
		if fmt.Sprint(pl.Ports) != fmt.Sprint(p2.Placements[i].Ports) {
			t.Errorf("not deterministic: %v vs %v", pl.Ports, p2.Placements[i].Ports)
		}
		for _, v := range pl.Ports {
			if seen[v] || v < 20000 || v > 20003 {
				t.Errorf("port %d reused or out of range", v)
			}
			seen[v] = true
		}
	}
	// A node without a range takes no dynamic ports.
	p, _ := Place(ClusterView{Nodes: []Node{{Name: "b", Capacity: Resources{8, 8}}}}, tasks[:1], Options{})
	if len(p.Unplaced) != 1 {
		t.Errorf("no range: %+v", p)
	}
}

func TestParsePortRange(t *testing.T) {
	if r, err := ParsePortRange("20000-32000"); err != nil || r.Size() != 12001 {
		t.Errorf("%v %v", r, err)
	}
	for _, bad := range []string{"1", "0-5", "9-3", "1-70000", "a-b"} {
		if _, err := ParsePortRange(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestPortsProperty checks the packer against the obvious rule: after any
// sequence of placements and removals, no node holds one port twice and
// every dynamic port lies in its node's range.
func TestPortsProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		nn := rapid.IntRange(1, 3).Draw(rt, "nodes")
		var nodes []Node
		for i := range nn {
			lo := 30000 + 10*i
			nodes = append(nodes, Node{Name: fmt.Sprint("n", i), Capacity: Resources{100, 100}, PortRange: PortRange{lo, lo + rapid.IntRange(0, 5).Draw(rt, "w")}})
		}
		s, err := NewState(ClusterView{Nodes: nodes})
		if err != nil {
			rt.Fatal(err)
		}
		holders := map[string]Placement{}
		for step := range rapid.IntRange(1, 30).Draw(rt, "steps") {
			if len(holders) > 0 && rapid.Bool().Draw(rt, "remove") {
				for id := range holders {
					s.Remove(id)
					delete(holders, id)
					break
				}
				continue
			}
			tk := Task{ID: fmt.Sprint("t", step), Request: Resources{1, 1}}
			for k := range rapid.IntRange(0, 2).Draw(rt, "ports") {
				pt := Port{Name: fmt.Sprint("p", k)}
				if rapid.Bool().Draw(rt, "static") {
					pt.Static = 8000 + rapid.IntRange(0, 2).Draw(rt, "sp")*10 + k
				}
				tk.Ports = append(tk.Ports, pt)
			}
			p, err := s.Place([]Task{tk}, Options{})
			if err != nil {
				rt.Fatal(err)
			}
			for _, pl := range p.Placements {
				if len(pl.Ports) != len(tk.Ports) {
					rt.Fatalf("placed %s with ports %v, want %d", pl.TaskID, pl.Ports, len(tk.Ports))
				}
				holders[pl.TaskID] = pl
			}
			used := map[string]bool{}
			for _, h := range holders {
				n, _ := s.Node(h.Node)
				for name, v := range h.Ports {
					key := fmt.Sprint(h.Node, ":", v)
					if used[key] {
						rt.Fatalf("port %s held twice", key)
					}
					used[key] = true
					if !strings.HasPrefix(name, "p") {
						rt.Fatal(name)
					}
					if v < 8000 || v > 8100 {
						if !n.PortRange.Contains(v) {
							rt.Fatalf("dynamic port %d outside %v", v, n.PortRange)
						}
					}
				}
			}
		}
	})
}
