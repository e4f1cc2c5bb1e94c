package scheduler

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// longLivedCluster is 20 nodes with 150 tasks placed an hour ago; every
// seventh task's recommendation grew by 40% (grow) or none did.
func longLivedCluster(t *testing.T, grow bool) (ClusterState, time.Time) {
	nodes := benchNodes(20)
	tasks := benchTasks(150, 5)
	p, err := Place(ClusterView{Nodes: nodes}, tasks, Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Task{}
	for _, tk := range tasks {
		byID[tk.ID] = tk
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var st ClusterState
	for _, n := range nodes {
		st.Nodes = append(st.Nodes, NodeStatus{Node: n, LastHeartbeat: now})
	}
	for i, pl := range p.Placements {
		ts := TaskStatus{Task: byID[pl.TaskID], Phase: Running, Node: pl.Node, Attempt: 1, Since: now.Add(-time.Hour)}
		if grow && i%7 == 0 {
			ts.Applied, ts.AppliedLimit = ts.Request, ts.Limit
			for r := range ts.Request {
				ts.Request[r] *= 1.4
				ts.Limit[r] *= 1.4
			}
		}
		st.Tasks = append(st.Tasks, ts)
	}
	return st, now
}

// stateOf is a long-lived State holding st's nodes and running tasks with
// the sizes in effect.
func stateOf(t *testing.T, st ClusterState) *State {
	view := ClusterView{}
	for _, n := range st.Nodes {
		view.Nodes = append(view.Nodes, n.Node)
	}
	s, err := NewState(view)
	if err != nil {
		t.Fatal(err)
	}
	for i := range st.Tasks {
		if err := s.Assign(applied(&st.Tasks[i]), st.Tasks[i].Node); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestLongLivedResizeMatchesReconcile(t *testing.T) {
	st, now := longLivedCluster(t, true)
	opts := ReconcileOptions{Options: Options{Seed: 9}}
	want, err := Reconcile(st, now, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := stateOf(t, st)
	rs, ps, err := s.Resize(st.Tasks, now, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Resize) == 0 {
		t.Fatal("the scenario resizes nothing")
	}
	if !reflect.DeepEqual(rs, want.Resize) || !reflect.DeepEqual(ps, want.Place) {
		t.Errorf("long-lived Resize differs from Reconcile:\n got %d resizes, %d placements\nwant %d, %d", len(rs), len(ps), len(want.Resize), len(want.Place))
	}
	inPlace := 0
	for _, r := range rs {
		if r.InPlace {
			inPlace++
			if got, _ := s.Task(r.TaskID); got.Request != r.To {
				t.Errorf("%s: State holds request %v after an in-place resize to %v", r.TaskID, got.Request, r.To)
			}
		}
	}
	t.Logf("%d resizes (%d in place), %d moves", len(rs), inPlace, len(ps))
	// Bad input names what to fix.
	bad := []TaskStatus{{Task: Task{ID: "nope"}, Phase: Running, Node: "n0"}}
	if _, _, err := s.Resize(bad, now, opts); err == nil {
		t.Error("Resize accepted a task that is not in the State")
	}
}

func TestLongLivedConsolidateMatchesReconcile(t *testing.T) {
	st, now := longLivedCluster(t, false)
	// Five more nodes, each lightly used by one small task: they can be
	// drained onto the nodes in use.
	for i := range 5 {
		name := fmt.Sprintf("light%d", i)
		st.Nodes = append(st.Nodes, NodeStatus{Node: Node{Name: name, Capacity: Resources{16, 64}}, LastHeartbeat: now})
		st.Tasks = append(st.Tasks, TaskStatus{Task: Task{ID: "small" + name, Job: "small", Priority: Batch, Request: Resources{0.5, 1}},
			Phase: Running, Node: name, Attempt: 1, Since: now.Add(-time.Hour)})
	}
	opts := ReconcileOptions{Options: Options{Seed: 4}, Consolidate: true}
	want, err := Reconcile(st, now, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := stateOf(t, st)
	ds, ps, err := s.Consolidate(st.Tasks, now, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Drain) == 0 {
		t.Fatal("the scenario drains nothing")
	}
	if !reflect.DeepEqual(ds, want.Drain) || !reflect.DeepEqual(ps, want.Place) {
		t.Errorf("long-lived Consolidate differs from Reconcile:\n got %+v\nwant %+v", ds, want.Drain)
	}
	t.Logf("%d drains, %d moves", len(ds), len(ps))
}
