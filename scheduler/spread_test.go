package scheduler

import (
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestConstrainedNeverOnNonMatchingNode: whatever else is on the cluster,
// a task with constraints is only ever placed on a node whose labels
// satisfy every one of them (checked by the case-by-case twin).
func TestConstrainedNeverOnNonMatchingNode(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes, tasks := genCluster(t)
		s, err := NewState(ClusterView{Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		plan, err := s.Place(tasks, Options{Seed: rapid.Uint64().Draw(t, "seed"), OverloadRisk: 0.01})
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]Node{}
		for _, n := range nodes {
			byName[n.Name] = n
		}
		byID := map[string]Task{}
		for _, tk := range tasks {
			byID[tk.ID] = tk
		}
		for _, n := range nodes {
			for _, id := range s.NodeTasks(n.Name) {
				for _, c := range byID[id].Constraints {
					if !naiveHolds(c, n.Labels) {
						t.Fatalf("task %s (constraint %s) is on %s with labels %v", id, c, n.Name, n.Labels)
					}
				}
			}
		}
		for _, u := range plan.Unplaced {
			if u.Why.Filtered[ReasonConstraint] > 0 && !strings.Contains(u.Reason, "constraints zone") {
				t.Fatalf("unplaced %s: the reason %q does not name the constraints that ruled nodes out", u.TaskID, u.Reason)
			}
		}
	})
}

// spreadCounts counts the tasks of job per zone over the State (the twin:
// from the node lists, not from the State's counters).
func spreadCounts(s *State, nodes []Node, job string) map[string]int {
	out := map[string]int{}
	for _, n := range nodes {
		if v, ok := n.Labels["zone"]; ok && n.schedulable() {
			out[v] += 0
		}
		for _, id := range s.NodeTasks(n.Name) {
			if tk, _ := s.Task(id); tk.Job == job {
				if v, ok := n.Labels["zone"]; ok {
					out[v]++
				}
			}
		}
	}
	return out
}

func (n Node) schedulable() bool { return !n.Down && !n.Cordoned && !n.Draining }

// TestSpreadGreedyLeastUsed: a task with Spread goes to a value of the label
// that holds the fewest of its job's tasks among the values with a feasible
// node, and to a node without the label only when no labelled node is
// feasible (checked against the naive twin's feasibility, one placement at
// a time, with other work interleaved).
func TestSpreadGreedyLeastUsed(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes, others := genCluster(t)
		s, err := NewState(ClusterView{Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		nv := &naive{nodes: map[string]Node{}, on: map[string][]Task{}, risk: newRiskParams(RiskGaussian, 0.01)}
		for _, n := range nodes {
			nv.nodes[n.Name] = n
		}
		opts := Options{Seed: rapid.Uint64().Draw(t, "seed"), OverloadRisk: 0.01, NoPreemption: true, KeepOrder: true, Candidates: rapid.IntRange(1, 8).Draw(t, "k")}
		nspread := rapid.IntRange(1, 30).Draw(t, "spread tasks")
		for i := 0; i < nspread; i++ {
			if len(others) > 0 && rapid.Bool().Draw(t, "other first") {
				o := others[0]
				others = others[1:]
				if p, _ := s.Place([]Task{o}, opts); len(p.Placements) == 1 {
					nv.on[p.Placements[0].Node] = append(nv.on[p.Placements[0].Node], o)
				}
			}
			req := Resources{rapid.Float64Range(0.1, 4).Draw(t, "cpu"), rapid.Float64Range(0.1, 16).Draw(t, "mem")}
			tk := Task{ID: fmt.Sprintf("s%d", i), Job: "spread", Priority: Batch, Request: req, Spread: "zone"}
			before := spreadCounts(s, nodes, "spread")
			p, err := s.Place([]Task{tk}, opts)
			if err != nil {
				t.Fatal(err)
			}
			// Values with a feasible node, by count.
			best := -1
			anyLabelled := false
			for _, n := range nodes {
				v, ok := n.Labels["zone"]
				if !ok || !nv.feasible(tk, n.Name) {
					continue
				}
				anyLabelled = true
				if best < 0 || before[v] < best {
					best = before[v]
				}
			}
			if len(p.Placements) == 0 {
				continue
			}
			node := p.Placements[0].Node
			v, ok := nv.nodes[node].Labels["zone"]
			switch {
			case !ok && anyLabelled:
				t.Fatalf("%s placed on unlabelled %s although a labelled node was feasible (%s)", tk.ID, node, p.Placements[0].Why)
			case ok && before[v] != best:
				t.Fatalf("%s placed in zone %s holding %d of the job's tasks; a feasible zone held %d (counts %v; %s)", tk.ID, v, before[v], best, before, p.Placements[0].Why)
			}
			nv.on[node] = append(nv.on[node], tk)
			// The State's own counters agree with the twin's.
			got := s.SpreadCounts("spread", "zone")
			want := spreadCounts(s, nodes, "spread")
			for k, n := range want {
				if got[k] != n {
					t.Fatalf("State counts %v, twin counts %v", got, want)
				}
			}
		}
	})
}

// TestSpreadWithinOneWhenRoomAllows: with room everywhere, the per-value
// counts of a spread job never differ by more than one, whatever the
// zones' sizes and node counts.
func TestSpreadWithinOneWhenRoomAllows(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var nodes []Node
		zones := rapid.IntRange(1, 4).Draw(t, "zones")
		for z := 0; z < zones; z++ {
			for i := rapid.IntRange(1, 5).Draw(t, "nodes per zone"); i > 0; i-- {
				nodes = append(nodes, Node{Name: fmt.Sprintf("z%d-n%d", z, i), Capacity: Resources{1000, 1000},
					Labels: map[string]string{"zone": fmt.Sprintf("z%d", z)}})
			}
		}
		s, err := NewState(ClusterView{Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		n := rapid.IntRange(1, 40).Draw(t, "tasks")
		for i := 0; i < n; i++ {
			tk := Task{ID: fmt.Sprintf("t%d", i), Job: "web", Priority: Prod, Request: Resources{rapid.Float64Range(0.1, 4).Draw(t, "cpu"), 1}, Spread: "zone"}
			if p, err := s.Place([]Task{tk}, Options{Seed: uint64(i)}); err != nil || len(p.Placements) != 1 {
				t.Fatalf("task %d not placed: %v %+v", i, err, p)
			}
			c := spreadCounts(s, nodes, "web")
			lo, hi := 1<<30, 0
			for _, k := range c {
				lo, hi = min(lo, k), max(hi, k)
			}
			if hi-lo > 1 {
				t.Fatalf("after %d placements the zone counts are %v: more than one apart", i+1, c)
			}
		}
	})
}

// TestSpreadExplains: a placement that had to go past the least-used
// values says so, and the explanation names the label.
func TestSpreadExplains(t *testing.T) {
	nodes := []Node{
		{Name: "a1", Capacity: Resources{1, 1}, Labels: map[string]string{"zone": "a"}},
		{Name: "b1", Capacity: Resources{8, 8}, Labels: map[string]string{"zone": "b"}},
	}
	s, err := NewState(ClusterView{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	var whys []string
	for i := 0; i < 4; i++ {
		p, err := s.Place([]Task{{ID: fmt.Sprintf("t%d", i), Job: "web", Request: Resources{1, 1}, Spread: "zone"}}, Options{Seed: 1})
		if err != nil || len(p.Placements) != 1 {
			t.Fatalf("not placed: %v %+v", err, p)
		}
		whys = append(whys, p.Placements[0].Node+": "+p.Placements[0].Why.String())
	}
	// t0 and t1 one per zone, t2 to b (a1 is full), t3: a holds fewer but
	// has no room, so b again, widened once.
	got := s.SpreadCounts("web", "zone")
	if got["a"] != 1 || got["b"] != 3 {
		t.Fatalf("counts %v; want a=1 b=2\n%s", got, strings.Join(whys, "\n"))
	}
	if !strings.Contains(whys[3], "spread over zone: the least-used values had no room (widened 1×)") {
		t.Errorf("fourth placement: %s", whys[3])
	}
	if !strings.Contains(whys[0], "spread over zone: a least-used value") {
		t.Errorf("first placement: %s", whys[0])
	}
}
