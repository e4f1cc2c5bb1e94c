package scheduler

import (
	"fmt"
	"testing"
)

// The report counts the machines waiting tasks would fill, one filled
// before the next is opened: three half-core tasks need two 1-core
// machines, not three (the placement score's stranding term alone would
// spread them), and nothing is removable while they wait.
func TestAutoscaleCountsFilledMachines(t *testing.T) {
	shape := Resources{1, 8 << 30}
	s, err := NewState(ClusterView{Nodes: []Node{{Name: "n1", Capacity: shape}, {Name: "n2", Capacity: shape}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Assign(Task{ID: "run", Job: "a", Priority: Batch, Request: Resources{1, 1 << 30}}, "n1"); err != nil {
		t.Fatal(err)
	}
	var waiting []Task
	for i := range 7 {
		waiting = append(waiting, Task{ID: fmt.Sprintf("w%d", i), Job: "j", Priority: Batch,
			Request: Resources{0.5, 512 << 20}, Limit: Resources{0.5, 512 << 20}})
	}
	waiting = append(waiting, Task{ID: "huge", Job: "h", Priority: Batch, Request: Resources{3, 1 << 30}})
	r := s.Autoscale(waiting, 1, Options{})
	// Seven half-core tasks: four machines; the 3-core task fits none.
	if r.Add != 4 || r.MachinesNeeded != 5 || r.MachinesUsed != 1 || r.Unfittable != 1 || len(r.CouldRemove) != 0 {
		t.Errorf("report %+v: want add 4, needed 5, used 1, unfittable 1, nothing removable", r)
	}
	if r.LowerBound != 5 { // ⌈(1 + 7·0.5) / 1⌉
		t.Errorf("lower bound %d, want 5", r.LowerBound)
	}
	// Without waiting work the empty node beyond the spare could go.
	if r := s.Autoscale(nil, 0, Options{}); len(r.CouldRemove) != 1 || r.CouldRemove[0] != "n2" || r.Add != 0 {
		t.Errorf("idle report %+v: want n2 removable", r)
	}
}
