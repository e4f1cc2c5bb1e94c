package controller

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var epoch = time.Unix(0, 0).UTC()

// TestResizeDecisionDeadbandAndDelay drives a noisy recommendation stream
// through the sizing policy for a day and counts resizes: the deadband and
// the shrink delay keep them few, and every raise goes through at once.
func TestResizeDecisionDeadbandAndDelay(t *testing.T) {
	p := SizingPolicy{}
	c := Config{Sizing: p}
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	p = c.Sizing
	rng := rand.New(rand.NewPCG(7, 7))
	const gib = 1 << 30
	cur := Sizing{Sizes: Sizes{CPURequest: 1, CPULimit: 1, MemoryRequest: gib, MemoryLimit: gib}}
	last := epoch
	resizes := 0
	for i := range 288 {
		now := epoch.Add(time.Duration(i) * 5 * time.Minute)
		f, g := 1+0.08*(rng.Float64()-0.5), 1+0.08*(rng.Float64()-0.5)
		want := Sizing{Sizes: Sizes{CPURequest: f, CPULimit: f, MemoryRequest: int64(gib * g), MemoryLimit: int64(gib * g)}}
		next, changed, why := p.resizeDecision(cur, want, last, now)
		if changed {
			resizes++
			last = now
			if why == "" {
				t.Fatal("a resize without a reason")
			}
		}
		cur = next
	}
	if resizes > 0 {
		t.Errorf("%d resizes for ±4%% noise, want none (10%% deadband)", resizes)
	}
	up, changed, _ := p.resizeDecision(cur, Sizing{Sizes: Sizes{CPURequest: cur.CPURequest, CPULimit: cur.CPULimit, MemoryRequest: 2 * gib, MemoryLimit: 2 * gib}}, epoch, epoch)
	if !changed || up.MemoryLimit != 2*gib {
		t.Errorf("a raise to 2 GiB right after a resize was held back: %+v", up)
	}
	down, changed, _ := p.resizeDecision(Sizing{Sizes: Sizes{CPURequest: 2, CPULimit: 2, MemoryRequest: gib, MemoryLimit: gib}}, Sizing{Sizes: Sizes{CPURequest: 1, CPULimit: 1, MemoryRequest: gib, MemoryLimit: gib}}, epoch, epoch.Add(10*time.Minute))
	if changed || down.CPULimit != 2 {
		t.Errorf("a decrease 10 min after a resize (shrink delay %s) went through: %+v", p.ShrinkDelay, down)
	}
	down, changed, _ = p.resizeDecision(Sizing{Sizes: Sizes{CPURequest: 2, CPULimit: 2, MemoryRequest: gib, MemoryLimit: gib}}, Sizing{Sizes: Sizes{CPURequest: 1, CPULimit: 1, MemoryRequest: gib, MemoryLimit: gib}}, epoch, epoch.Add(20*time.Minute))
	if !changed || down.CPULimit != 1 {
		t.Errorf("a decrease after the shrink delay was held back: %+v", down)
	}
}

// TestNoFlapping runs the whole loop for an hour of 10-s rounds while
// recommendations jitter: inside the deadband nothing changes; at ±30% a
// task is grown at once but shrunk at most once per shrink delay and moved
// at most once per minimum task age; consolidation settles.
func TestNoFlapping(t *testing.T) {
	h := newHarness(t)
	h.cfg.Consolidate = true
	h.cfg.Sizing.MinTaskAge = 5 * time.Minute
	for i := range 4 {
		h.run1(t, fmt.Sprintf("add-node name=n%d", i))
	}
	h.run1(t, "submit job=j replicas=8 cpu=0.9 mem=1 limit-cpu=0.9 limit-mem=1 type=batch")
	h.tick(time.Second)
	h.tick(time.Second)
	c := h.controller()
	count := func(ticks int, jitter float64) (resizes, moves, drains int) {
		for k := range ticks {
			for i := range 8 {
				f := 1 + jitter
				if (k+i)%2 == 1 {
					f = 1 - jitter
				}
				id := fmt.Sprintf("j-id-%d", i)
				h.run1(t, fmt.Sprintf("recommend task=%s cpu=%g limit-cpu=%g", id, 0.9*f, 0.9*f))
			}
			h.now = h.now.Add(10 * time.Second)
			for _, name := range h.order {
				c.Heartbeat(name, Usage{}, h.now)
				if ag := h.agents[name]; len(ag.queue) > 0 {
					_ = c.Report(name, ag.queue, h.now)
					ag.queue = nil
				}
			}
			c.Tick(h.now)
			rd := c.Ready()
			h.store.apply(&rd)
			resizes += rd.Stats.Resized
			moves += rd.Stats.Moved
			drains += rd.Stats.MovedBy["consolidation"]
			for _, ch := range rd.Assign {
				ag := h.agents[ch.Node]
				if ch.Assignment == nil {
					delete(ag.set, ch.TaskID)
				} else {
					ag.set[ch.TaskID] = *ch.Assignment
				}
			}
			for _, name := range h.order {
				h.agents[name].reconcile(h)
			}
		}
		return
	}
	if r, m, _ := count(60, 0.04); r != 0 || m != 0 {
		t.Errorf("jitter inside the deadband: %d resizes, %d moves; want 0, 0", r, m)
	}
	r, m, d := count(360, 0.3)
	t.Logf("±30%% jitter every 10 s for an hour: %d resizes, %d moves, %d consolidation moves (8 tasks)", r, m, d)
	if r == 0 {
		t.Errorf("no resizes for ±30%% changes")
	}
	// Up at once, down at most once per shrink delay (15 min): about two
	// resizes per task per 15 minutes, plus the first.
	if limit := 8 * (2*(60/15) + 2); r > limit {
		t.Errorf("%d resizes in an hour for 8 tasks; want at most %d: the shrink delay does not hold", r, limit)
	}
	if limit := 8 * (60/5 + 1); m > limit {
		t.Errorf("%d moves in an hour for 8 tasks; want at most one per task per %s", m, h.cfg.Sizing.MinTaskAge)
	}
}

// run1 runs one harness command.
func (h *harness) run1(t *testing.T, cmd string) {
	t.Helper()
	d := parseCmd(t, cmd)
	if out, err := h.run(d); err != nil || (len(out) > 6 && out[:6] == "error:") {
		t.Fatalf("%s: %v %s", cmd, err, out)
	}
}

// TestResizeWhyIsReadable: the reason a person reads in `fathom job status`
// and the console names memory in MiB, never raw bytes (3.355e+07).
func TestResizeWhyIsReadable(t *testing.T) {
	p := SizingPolicy{Deadband: 0.1}
	cur := Sizing{Sizes: Sizes{CPURequest: 0.25, MemoryRequest: 32 << 20, MemoryLimit: 64 << 20}}
	want := Sizing{Sizes: Sizes{CPURequest: 0.5, MemoryRequest: 33554432 + 8<<20, MemoryLimit: 96 << 20}}
	_, changed, why := p.resizeDecision(cur, want, epoch, epoch)
	if exp := "cpu request 0.25→0.5, memory request 32 MiB→40 MiB, memory limit 64 MiB→96 MiB"; !changed || why != exp {
		t.Errorf("why %q (changed %v), want %q", why, changed, exp)
	}
}
