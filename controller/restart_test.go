package controller

import (
	"testing"
	"time"
)

// TestDecideRestart walks Nomad's semantics: attempts within an interval
// that begins at the placement, the delay between, mode fail vs delay, and
// a fresh interval once the old one has passed.
func TestDecideRestart(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := RestartPolicy{Attempts: 2, Interval: 10 * time.Minute, Delay: 15 * time.Second, Mode: RestartModeFail}
	var st restartState
	type step struct {
		at      time.Duration // since t0
		restart bool
		due     time.Duration // since t0, when restart
		count   int32
	}
	for i, s := range []step{
		{at: time.Minute, restart: true, due: time.Minute + 15*time.Second, count: 1},
		{at: 2 * time.Minute, restart: true, due: 2*time.Minute + 15*time.Second, count: 2},
		{at: 3 * time.Minute, restart: false, count: 2}, // third exit inside the interval: failed
	} {
		d := decideRestart(p, st, t0, t0.Add(s.at))
		if d.Restart != s.restart || (s.restart && !d.At.Equal(t0.Add(s.due))) || d.Next.Attempts != s.count {
			t.Fatalf("step %d: %+v; want restart=%v at %s count %d", i, d, s.restart, s.due, s.count)
		}
		if !d.Next.WindowStart.Equal(t0) {
			t.Fatalf("step %d: window starts %s; want the placement %s", i, d.Next.WindowStart, t0)
		}
		st = d.Next
	}
	// After the interval, counting starts again.
	d := decideRestart(p, restartState{Attempts: 2, WindowStart: t0}, t0, t0.Add(11*time.Minute))
	if !d.Restart || d.Next.Attempts != 1 || !d.Next.WindowStart.Equal(t0.Add(11*time.Minute)) {
		t.Fatalf("after the interval: %+v; want restart 1 in a new interval", d)
	}
	// Mode delay: past the attempts, wait for the interval's end.
	p.Mode = RestartModeDelay
	d = decideRestart(p, restartState{Attempts: 2, WindowStart: t0}, t0, t0.Add(3*time.Minute))
	if !d.Restart || !d.At.Equal(t0.Add(10*time.Minute)) || d.Next.Attempts != 0 || !d.Next.WindowStart.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("mode delay: %+v; want a restart at the interval's end, counting again from there", d)
	}
	// ... but never sooner than the delay.
	d = decideRestart(p, restartState{Attempts: 2, WindowStart: t0}, t0, t0.Add(10*time.Minute-time.Second))
	if !d.At.Equal(t0.Add(10*time.Minute - time.Second + 15*time.Second)) {
		t.Fatalf("mode delay near the end: at %s; want now + delay", d.At)
	}
	// Attempts 0: never, whatever the mode.
	if d := decideRestart(RestartPolicy{Mode: RestartModeDelay, Interval: time.Minute}, restartState{}, t0, t0); d.Restart {
		t.Fatalf("attempts 0 restarted: %+v", d)
	}
}

func TestDefaultRestartPolicies(t *testing.T) {
	if p := DefaultRestartPolicy(TypeBatch); p != (RestartPolicy{3, 24 * time.Hour, 15 * time.Second, RestartModeFail}) {
		t.Errorf("batch default %v", p)
	}
	if p := DefaultRestartPolicy(TypeCron); p != DefaultRestartPolicy(TypeBatch) {
		t.Errorf("cron default %v; want batch's", p)
	}
	if p := DefaultRestartPolicy(TypeService); p != (RestartPolicy{2, 30 * time.Minute, 15 * time.Second, RestartModeFail}) {
		t.Errorf("service default %v", p)
	}
}
