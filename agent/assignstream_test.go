package agent

import (
	"testing"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// The per-task stream assembles into whole sets: nothing before the first
// synced (the agent must not stop what it runs on a half-sent set), every
// change after it, and a resend replaces the set only when complete.
func TestAssignmentStreamAssemblesSets(t *testing.T) {
	up := func(id string, gen int64) *fathomv1.AssignmentUpdate {
		return &fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Upsert{Upsert: &fathomv1.Assignment{TaskId: id, Generation: gen}}}
	}
	rm := func(id string) *fathomv1.AssignmentUpdate {
		return &fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Remove{Remove: id}}
	}
	reset := &fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Reset_{Reset_: true}}
	synced := &fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Synced{Synced: true}}
	ids := func(s AssignmentSet) (out []string) {
		for _, a := range s.Assignments {
			out = append(out, a.TaskID)
		}
		return out
	}
	var s AssignmentStream
	for _, m := range []*fathomv1.AssignmentUpdate{reset, up("a", 1), up("b", 1)} {
		if _, ok := s.Apply(m); ok {
			t.Fatal("a set before synced")
		}
	}
	set, ok := s.Apply(synced)
	if !ok || len(set.Assignments) != 2 {
		t.Fatalf("after synced: %v %v", ids(set), ok)
	}
	set, ok = s.Apply(up("c", 1))
	if !ok || len(set.Assignments) != 3 {
		t.Fatalf("after an upsert: %v", ids(set))
	}
	set, ok = s.Apply(rm("a"))
	if !ok || len(set.Assignments) != 2 || set.Assignments[0].TaskID != "b" {
		t.Fatalf("after a remove: %v", ids(set))
	}
	// A resend: the old set stands until it is complete; then only b and d.
	for _, m := range []*fathomv1.AssignmentUpdate{reset, up("b", 2), up("d", 1)} {
		if _, ok := s.Apply(m); ok {
			t.Fatal("a set in the middle of a resend")
		}
	}
	set, ok = s.Apply(synced)
	if !ok || len(set.Assignments) != 2 || set.Assignments[0].TaskID != "b" || set.Assignments[0].Generation != 2 || set.Assignments[1].TaskID != "d" {
		t.Fatalf("after the resend: %+v", set.Assignments)
	}
}
