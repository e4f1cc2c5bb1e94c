package scheduler

import (
	"fmt"
	"math"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// genCluster draws a small heterogeneous cluster and a batch of tasks.
func genCluster(t *rapid.T) ([]Node, []Task) {
	nn := rapid.IntRange(1, 12).Draw(t, "nodes")
	nodes := make([]Node, nn)
	for i := range nodes {
		nodes[i] = Node{
			Name:     fmt.Sprintf("n%d", i),
			Capacity: Resources{float64(rapid.IntRange(1, 16).Draw(t, "cpu")), float64(rapid.IntRange(1, 64).Draw(t, "mem"))},
			Labels:   map[string]string{"zone": rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "zone")},
			Cordoned: rapid.Float64Range(0, 1).Draw(t, "cordon") < 0.1,
		}
		if rapid.Float64Range(0, 1).Draw(t, "unlabelled") < 0.15 {
			nodes[i].Labels = nil
		}
	}
	nt := rapid.IntRange(0, 60).Draw(t, "tasks")
	tasks := make([]Task, nt)
	for i := range tasks {
		req := Resources{rapid.Float64Range(0.05, 6).Draw(t, "rcpu"), rapid.Float64Range(0.05, 20).Draw(t, "rmem")}
		tk := Task{ID: fmt.Sprintf("t%d", i), Job: fmt.Sprintf("j%d", rapid.IntRange(0, 4).Draw(t, "job")), Request: req}
		tk.Priority = rapid.SampledFrom([]Priority{BestEffort, Batch, Prod}).Draw(t, "prio")
		if rapid.Bool().Draw(t, "haslimit") {
			f := rapid.Float64Range(1, 2).Draw(t, "limf")
			tk.Limit = Resources{req[0] * f, req[1] * f}
		}
		if rapid.Bool().Draw(t, "hasdist") {
			for r := range tk.Usage {
				tk.Usage[r] = Dist{Mean: req[r] * rapid.Float64Range(0.3, 1).Draw(t, "mf"), StdDev: req[r] * rapid.Float64Range(0, 0.5).Draw(t, "sf")}
			}
		}
		if rapid.Float64Range(0, 1).Draw(t, "spread") < 0.2 {
			tk.MaxPerNode = 1
		}
		if rapid.Float64Range(0, 1).Draw(t, "cons") < 0.3 {
			tk.Constraints = []Constraint{genConstraint(t)}
			if rapid.Bool().Draw(t, "two") {
				tk.Constraints = append(tk.Constraints, genConstraint(t))
			}
		}
		if rapid.Float64Range(0, 1).Draw(t, "spreadlabel") < 0.2 {
			tk.Spread = "zone"
		}
		tasks[i] = tk
	}
	return nodes, tasks
}

// genConstraint draws one constraint on the zone label with any operator.
func genConstraint(t *rapid.T) Constraint {
	c := Constraint{Label: "zone", Op: rapid.SampledFrom([]Op{OpEqual, OpNotEqual, OpIn, OpExists}).Draw(t, "op")}
	switch c.Op {
	case OpEqual, OpNotEqual:
		c.Value = rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "value")
	case OpIn:
		c.Values = rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"a", "b", "c"}), 1, 3, rapid.ID[string]).Draw(t, "values")
	}
	return c
}

// naiveHolds is the constraint check written out case by case.
func naiveHolds(c Constraint, labels map[string]string) bool {
	v, ok := labels[c.Label]
	switch c.Op {
	case OpEqual:
		return ok && v == c.Value
	case OpNotEqual:
		return !(ok && v == c.Value)
	case OpExists:
		return ok
	case OpIn:
		for _, w := range c.Values {
			if ok && w == v {
				return true
			}
		}
	}
	return false
}

// naive is the dumb twin: it recomputes a node's load from scratch from the
// list of tasks on it and checks every rule with plain loops.
type naive struct {
	nodes map[string]Node
	on    map[string][]Task
	risk  riskParams
}

func (nv *naive) feasible(t Task, node string) bool {
	n := nv.nodes[node]
	if n.Down || n.Cordoned || n.Draining {
		return false
	}
	for _, c := range t.Constraints {
		if !naiveHolds(c, n.Labels) {
			return false
		}
	}
	same := 0
	for _, o := range nv.on[node] {
		if o.Job == t.Job {
			same++
		}
	}
	if t.MaxPerNode > 0 && same >= t.MaxPerNode {
		return false
	}
	return nv.loadOK(append(append([]Task(nil), nv.on[node]...), t), n)
}

// loadOK checks requests, prod limits and the risk bound of a set of tasks
// on node n.
func (nv *naive) loadOK(tasks []Task, n Node) bool {
	for r := Resource(0); r < NumResources; r++ {
		var req, prod, mu, v, b float64
		for _, t := range tasks {
			req += t.Request[r]
			if t.Priority.IsProd() {
				l := t.Limit[r]
				if l == 0 {
					l = t.Request[r]
				}
				prod += l
			}
			d := t.Usage[r]
			if d == (Dist{}) {
				d.Mean = t.Request[r]
			}
			mu += d.Mean
			v += d.StdDev * d.StdDev
			c := n.Capacity[r]
			if t.Limit[r] > 0 {
				c = math.Min(t.Limit[r], c)
			}
			b = math.Max(b, c-d.Mean)
		}
		tol := 1e-9 * n.Capacity[r]
		if req > n.Capacity[r]+tol || prod > n.Capacity[r]+tol {
			return false
		}
		// Alone, a task cannot overload its node (usage is capped).
		if len(tasks) > 1 && mu+nv.risk.margin(v, b) > n.Capacity[r]+tol {
			return false
		}
	}
	return true
}

// TestPlaceAgainstNaiveTwin: every placement the fast pipeline makes is one
// the naive twin accepts (so no machine goes over capacity on requests or
// prod limits, and every machine's risk bound holds), and every task the
// pipeline leaves pending has no feasible node in the naive twin either.
func TestPlaceAgainstNaiveTwin(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes, tasks := genCluster(t)
		model := rapid.SampledFrom([]RiskModel{RiskGaussian, RiskBernstein, RiskCantelli}).Draw(t, "model")
		opts := Options{Seed: rapid.Uint64().Draw(t, "seed"), Risk: model, OverloadRisk: 0.01, Candidates: rapid.IntRange(1, 8).Draw(t, "k"), KeepOrder: true, NoPreemption: true}
		s, err := NewState(ClusterView{Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		nv := &naive{nodes: map[string]Node{}, on: map[string][]Task{}, risk: newRiskParams(model, 0.01)}
		for _, n := range nodes {
			nv.nodes[n.Name] = n
		}
		for _, tk := range tasks {
			plan, err := s.Place([]Task{tk}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Placements) == 1 {
				node := plan.Placements[0].Node
				if !nv.feasible(tk, node) {
					t.Fatalf("task %s placed on %s, which the naive twin rejects (%s)", tk.ID, node, plan.Placements[0].Why)
				}
				nv.on[node] = append(nv.on[node], tk)
				continue
			}
			for _, n := range nodes {
				if nv.feasible(tk, n.Name) {
					t.Fatalf("task %s left pending (%s) but fits %s in the naive twin", tk.ID, plan.Unplaced[0].Reason, n.Name)
				}
			}
		}
		// Final state: no node over capacity on requests or prod limits.
		for _, n := range nodes {
			if !nv.loadOK(nv.on[n.Name], n) {
				t.Fatalf("node %s over capacity or risk", n.Name)
			}
		}
	})
}

// TestSameSeedSamePlan: Place is a function of state, tasks and seed.
func TestSameSeedSamePlan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes, tasks := genCluster(t)
		opts := Options{Seed: rapid.Uint64().Draw(t, "seed"), OverloadRisk: 0.01}
		p1, err1 := Place(ClusterView{Nodes: nodes}, tasks, opts)
		p2, err2 := Place(ClusterView{Nodes: nodes}, tasks, opts)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !reflect.DeepEqual(p1, p2) {
			t.Fatalf("same seed, different plans:\n%+v\n%+v", p1, p2)
		}
	})
}

// TestPreemptionKeepsProdSafe: with preemption on, the final state still
// passes the naive twin, and only lower-priority tasks are preempted.
func TestPreemptionKeepsProdSafe(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes, tasks := genCluster(t)
		s, err := NewState(ClusterView{Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		plan, err := s.Place(tasks, Options{Seed: 7, OverloadRisk: 0.01})
		if err != nil {
			t.Fatal(err)
		}
		prio := map[string]Priority{}
		for _, tk := range tasks {
			prio[tk.ID] = tk.Priority
		}
		for _, p := range plan.Preemptions {
			if prio[p.TaskID] >= prio[p.For] {
				t.Fatalf("%s (%s) preempted for %s (%s)", p.TaskID, prio[p.TaskID], p.For, prio[p.For])
			}
		}
		nv := &naive{nodes: map[string]Node{}, on: map[string][]Task{}, risk: newRiskParams(RiskGaussian, 0.01)}
		for _, n := range nodes {
			nv.nodes[n.Name] = n
			for _, id := range s.NodeTasks(n.Name) {
				tk, _ := s.Task(id)
				nv.on[n.Name] = append(nv.on[n.Name], tk)
			}
			if !nv.loadOK(nv.on[n.Name], n) {
				t.Fatalf("node %s over capacity or risk after preemption", n.Name)
			}
		}
	})
}

// TestBatchUnplacedFitsNowhere: in one Place call without preemption,
// capacity only shrinks, so a task left pending (possibly from the
// equivalence-class cache) must fit no node of the final state either.
func TestBatchUnplacedFitsNowhere(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes, tasks := genCluster(t)
		// Repeat some tasks so equivalence classes have members.
		for i := range tasks {
			if i > 0 && rapid.Bool().Draw(t, "same") {
				c := tasks[i-1]
				c.ID = tasks[i].ID
				tasks[i] = c
			}
		}
		s, err := NewState(ClusterView{Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		plan, err := s.Place(tasks, Options{Seed: 3, OverloadRisk: 0.01, NoPreemption: true})
		if err != nil {
			t.Fatal(err)
		}
		nv := &naive{nodes: map[string]Node{}, on: map[string][]Task{}, risk: newRiskParams(RiskGaussian, 0.01)}
		for _, n := range nodes {
			nv.nodes[n.Name] = n
			for _, id := range s.NodeTasks(n.Name) {
				tk, _ := s.Task(id)
				nv.on[n.Name] = append(nv.on[n.Name], tk)
			}
		}
		byID := map[string]Task{}
		for _, tk := range tasks {
			byID[tk.ID] = tk
		}
		for _, u := range plan.Unplaced {
			for _, n := range nodes {
				if nv.feasible(byID[u.TaskID], n.Name) {
					t.Fatalf("task %s left pending (%s) but fits %s at the end", u.TaskID, u.Reason, n.Name)
				}
			}
		}
	})
}
