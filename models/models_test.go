package models

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2013, 7, 1, 0, 0, 0, 0, time.UTC)

func at(i int) time.Time { return t0.Add(time.Duration(i) * 5 * time.Minute) }

const GiB = 1 << 30

func feed(r Recommender, n int, f func(i int) Window) {
	for i := range n {
		w := f(i)
		w.Start = at(i)
		r.Observe(w)
	}
}

func TestVPAConstantAndFloors(t *testing.T) {
	v := NewVPA(DefaultVPAParams())
	feed(v, 600, func(int) Window { return Window{CPU: 1, Memory: 2 * GiB} })
	l := v.Limit(at(600))
	// p90 is the end of the bucket holding 1.0, at most 5% above it, + 15%.
	if l.CPU < 1.15 || l.CPU > 1.15*1.05 {
		t.Errorf("cpu limit %v for a constant 1 core, want in [1.15, 1.21]", l.CPU)
	}
	if l.Memory < 2*GiB*1.15 || l.Memory > 2*GiB*1.15*1.05 {
		t.Errorf("memory limit %v for constant 2 GiB, want about 2.3 GiB", l.Memory/GiB)
	}
	idle := NewVPA(DefaultVPAParams())
	feed(idle, 600, func(int) Window { return Window{CPU: 0.001, Memory: 1 << 20} })
	if l := idle.Limit(at(600)); l.CPU != 0.025 || l.Memory != 250<<20 {
		t.Errorf("idle task limit %+v, want the VPA floors 25 mCPU and 250 MiB", l)
	}
}

func TestVPAMemoryOnePeakPerDay(t *testing.T) {
	v := NewVPA(DefaultVPAParams())
	// Ten days at 1 GiB with one 4 GiB window per day: one peak per day
	// means every day's histogram sample is 4 GiB.
	feed(v, 10*288, func(i int) Window {
		if i%288 == 100 {
			return Window{Memory: 4 * GiB}
		}
		return Window{Memory: GiB}
	})
	if l := v.Limit(at(10 * 288)); l.Memory < 4*GiB*1.15 {
		t.Errorf("memory limit %.2f GiB, want >= 4.6 GiB (p90 of daily peaks + 15%%)", l.Memory/GiB)
	}
	// CPU, fed every window, would put a once-a-day spike far below p90.
	c := NewVPA(DefaultVPAParams())
	feed(c, 10*288, func(i int) Window {
		if i%288 == 100 {
			return Window{CPU: 4}
		}
		return Window{CPU: 1}
	})
	if l := c.Limit(at(10 * 288)); l.CPU > 1.3 {
		t.Errorf("cpu limit %.2f, want about 1.15: p90 ignores a 1-in-288 spike", l.CPU)
	}
}

func TestOOMRaisesMemoryAtOnce(t *testing.T) {
	for _, kind := range []string{"vpa", "autopilot", "fathom"} {
		r, _ := New(kind)
		feed(r, 400, func(int) Window { return Window{CPU: 0.5, Memory: GiB} })
		before := r.Limit(at(400)).Memory
		r.ObserveOOM(at(400).Add(time.Minute), before)
		after := r.Limit(at(400).Add(2 * time.Minute)).Memory
		// The VPA and fathom bump by 1.2x; autopilot's moving window has no
		// OOM rule and takes the usage at the kill as a sample (+10% margin).
		want := 1.2
		if kind == "autopilot" {
			want = 1.1
		}
		if after < before*want-1 {
			t.Errorf("%s: memory limit %.3f GiB after an OOM at %.3f GiB, want >= %.1fx", kind, after/GiB, before/GiB, want)
		}
	}
}

func TestAutopilotStabilizesForAnHour(t *testing.T) {
	a := NewAutopilot(DefaultAutopilotParams())
	feed(a, 600, func(i int) Window {
		if i < 590 {
			return Window{CPU: 2, Memory: 3 * GiB}
		}
		return Window{CPU: 0.1, Memory: 3 * GiB}
	})
	if l := a.Limit(at(600)); l.Memory < 3*GiB*1.1 {
		t.Errorf("memory %.2f GiB, want the 48 h max + 10%%", l.Memory/GiB)
	}
	hi := a.Limit(at(600)).CPU
	if hi < 2*1.1 {
		t.Errorf("cpu %.2f right after a drop, want >= 2.2 (max over the last hour)", hi)
	}
	// Two days after the memory fell to 0.5 GiB, the 48 h max has let go.
	b := NewAutopilot(DefaultAutopilotParams())
	feed(b, 1200, func(i int) Window {
		if i < 500 {
			return Window{Memory: 3 * GiB}
		}
		return Window{Memory: GiB / 2}
	})
	if l := b.Limit(at(1200)); l.Memory > GiB/2*1.1+1 {
		t.Errorf("memory %.2f GiB 58 h after the drop, want 0.55 GiB", l.Memory/GiB)
	}
}

// TestFathomChangesAndIdle: on a noisy, bursty task with a daily pattern,
// fathom changes its limits at most 6 times a day and sizes an idle task far
// below the VPA's 250 MiB floor.
func TestFathomChangesAndIdle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := NewFathom(DefaultFathomParams())
	days := 14
	var lims []Size
	for i := range days * 288 {
		hour := (i % 288) / 12
		cpu := 0.5 + 0.3*rng.Float64()
		if hour >= 9 && hour < 17 {
			cpu += 1.5
		}
		if rng.IntN(100) == 0 {
			cpu *= 3
		}
		mem := 2*GiB + 0.3*GiB*rng.Float64()
		lims = append(lims, f.Limit(at(i)))
		f.Observe(Window{Start: at(i), CPU: cpu, CPUPeak: cpu, Memory: mem})
	}
	changes := [2]int{}
	for i := 288 + 1; i < len(lims); i++ {
		if math.Abs(lims[i].CPU-lims[i-1].CPU) > 0.05*lims[i-1].CPU {
			changes[0]++
		}
		if math.Abs(lims[i].Memory-lims[i-1].Memory) > 0.05*lims[i-1].Memory {
			changes[1]++
		}
	}
	for r, c := range changes {
		if perDay := float64(c) / float64(days-1); perDay > 6 {
			t.Errorf("resource %d: %.1f limit changes per day, want <= 6", r, perDay)
		}
	}
	noon, night := lims[13*288+12*12], lims[len(lims)-1]
	if noon.CPU < 2 || night.CPU >= noon.CPU || night.Memory < 2.3*GiB || night.Memory > 4*GiB {
		t.Errorf("limits at noon %+v, at night %+v: want CPU above the daytime level at noon and lower at night, memory near the 2.3 GiB peak", noon, night)
	}
	idle := NewFathom(DefaultFathomParams())
	feed(idle, 600, func(int) Window { return Window{CPU: 0.002, Memory: 10 << 20} })
	if l := idle.Limit(at(600)); l.Memory > 50<<20 || l.Memory < 10<<20 {
		t.Errorf("idle task memory limit %.1f MiB, want between its 10 MiB and 50 MiB (no 250 MiB floor)", l.Memory/(1<<20))
	}
	rec := idle.Recommend(at(600))
	if rec.Memory.Request > rec.Memory.Limit || rec.Memory.Mean <= 0 || rec.Why == "" || len(rec.Memory.Quantiles) == 0 {
		t.Errorf("recommendation %+v: want request <= limit, a mean, quantiles and a reason", rec)
	}
}

// TestMarshalRoundTrip: a recommender restored from its encoding behaves
// exactly like the original from then on.
func TestMarshalRoundTrip(t *testing.T) {
	for _, kind := range []string{"vpa", "autopilot", "fathom"} {
		r, _ := New(kind)
		rng := rand.New(rand.NewPCG(3, 4))
		w := func(int) Window {
			return Window{CPU: rng.Float64() * 2, Memory: GiB * (1 + rng.Float64())}
		}
		feed(r, 700, w)
		b, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if c.Kind() != kind {
			t.Fatalf("kind %q, want %q", c.Kind(), kind)
		}
		for i := 700; i < 1000; i++ {
			x := w(i)
			x.Start = at(i)
			if a, b := r.Limit(at(i)), c.Limit(at(i)); a != b {
				t.Fatalf("%s: window %d: original %+v, restored %+v", kind, i, a, b)
			}
			r.Observe(x)
			c.Observe(x)
		}
	}
	if _, err := Unmarshal([]byte(`{"kind":"oracle","state":{}}`)); err == nil {
		t.Error("unknown kind decoded")
	}
}

func TestFathomParamsValidate(t *testing.T) {
	if err := DefaultFathomParams().Validate(); err != nil {
		t.Fatal(err)
	}
	p := DefaultFathomParams()
	p.Priority = "gold"
	if err := p.Validate(); err == nil {
		t.Error("priority gold accepted")
	}
	p = DefaultFathomParams()
	p.Margins = nil
	if err := p.Validate(); err == nil {
		t.Error("no margins accepted")
	}
}
