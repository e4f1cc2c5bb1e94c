package scheduler

import (
	"fmt"
	"testing"
	"time"
)

// TestNoFlapping counts resizes and moves while recommendations jitter, and
// drains while consolidation runs for an hour of reconciles: changes inside
// the deadband do nothing, a task is moved at most once per MinTaskAge, and
// consolidation settles.
func TestNoFlapping(t *testing.T) {
	h := newHarness()
	h.opts.Consolidate = true
	h.opts.MinTaskAge = 5 * time.Minute
	for i := 0; i < 4; i++ {
		h.nodes = append(h.nodes, NodeStatus{Node: Node{Name: fmt.Sprintf("n%d", i), Capacity: Resources{4, 8}}, LastHeartbeat: h.now})
	}
	for i := 0; i < 8; i++ {
		h.tasks = append(h.tasks, TaskStatus{Task: Task{ID: fmt.Sprintf("t%d", i), Job: "j", Request: Resources{0.9, 1}}})
	}
	if _, err := h.tick(time.Second); err != nil {
		t.Fatal(err)
	}
	count := func(ticks int, jitter float64) (resizes, moves, drains int) {
		for k := 0; k < ticks; k++ {
			for i := range h.tasks {
				f := 1 + jitter
				if (k+i)%2 == 1 {
					f = 1 - jitter
				}
				h.tasks[i].Request = Resources{0.9 * f, 1}
			}
			before := map[string]int{}
			for _, ts := range h.tasks {
				before[ts.ID] = ts.Attempt
			}
			res, err := Reconcile(ClusterState{Nodes: h.nodes, Tasks: h.tasks, Copies: h.copies}, h.now.Add(10*time.Second), h.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, rz := range res.Resize {
				if rz.InPlace {
					resizes++
				}
			}
			drains += len(res.Drain)
			if _, err := h.tick(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			for _, ts := range h.tasks {
				if ts.Attempt != before[ts.ID] {
					moves++
				}
			}
		}
		return
	}
	// ±4% around 0.9 CPU: inside the 10% deadband.
	if r, m, _ := count(60, 0.04); r != 0 || m != 0 {
		t.Errorf("jitter inside the deadband: %d resizes, %d moves; want 0, 0", r, m)
	}
	// ±30%: grown at once, shrunk at most once per ShrinkDelay, and every
	// task moves at most once per MinTaskAge (5 min = 30 ticks of 10 s).
	r, m, d := count(60, 0.3)
	t.Logf("±30%% jitter every 10 s for 10 min: %d resizes, %d moves, %d drains (8 tasks)", r, m, d)
	if r == 0 {
		t.Errorf("no resizes for ±30%% changes")
	}
	if maxResizes := 2 * len(h.tasks) * (60*10/300 + 1); r > maxResizes {
		t.Errorf("%d resizes in 10 minutes for %d tasks: the shrink delay does not hold", r, len(h.tasks))
	}
	if maxMoves := len(h.tasks) * (60*10/300 + 1); m > maxMoves {
		t.Errorf("%d moves in 10 minutes for %d tasks: more than one per task per %s", m, len(h.tasks), h.opts.MinTaskAge)
	}
}
