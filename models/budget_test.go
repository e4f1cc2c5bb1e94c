package models

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestParseViolationBudget(t *testing.T) {
	def := DefaultViolationBudget()
	for _, tc := range []struct {
		in   string
		want ViolationBudget
	}{
		{"", def},
		{"cpu=0.005,memory=0.0005", ViolationBudget{CPU: 0.005, Memory: 0.0005}},
		{" memory = 0.05% , cpu=1% ", ViolationBudget{CPU: 0.01, Memory: 0.0005}},
		{"cpu=0.02", ViolationBudget{CPU: 0.02, Memory: def.Memory}},
		{"MEM=0.001", ViolationBudget{CPU: def.CPU, Memory: 0.001}},
		{"cpu=0.5", ViolationBudget{CPU: 0.5, Memory: def.Memory}},
	} {
		got, err := ParseViolationBudget(tc.in)
		if err != nil || math.Abs(got.CPU-tc.want.CPU) > 1e-15 || math.Abs(got.Memory-tc.want.Memory) > 1e-15 {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if err == nil {
			back, err := ParseViolationBudget(got.String())
			if err != nil || back != got {
				t.Errorf("%q: String %q does not parse back: %+v %v", tc.in, got.String(), back, err)
			}
		}
	}
	for _, in := range []string{"cpu", "cpu=", "=0.1", "cpu=0", "cpu=-0.1", "cpu=0.6", "cpu=NaN", "cpu=Inf",
		"gpu=0.1", "cpu=0.1,cpu=0.2", "cpu=abc", "cpu=0.1;memory=0.1", "cpu=50%%"} {
		if b, err := ParseViolationBudget(in); !errors.Is(err, ErrBadBudget) {
			t.Errorf("%q: %+v, %v; want an ErrBadBudget error", in, b, err)
		}
	}
}

// The pool counts misses per 5-minute slot and applies them at the first
// touch of a later slot: the order of reads and writes within a slot does
// not change anything, and log λ moves by η × (misses − budget × windows)
// (here η is MaxStep: the gain is huge).
func TestBudgetPoolSlots(t *testing.T) {
	b := ViolationBudget{CPU: 0.1, Memory: 0.01}
	s := SteerParams{Gain: [2]float64{1e9, 1e9}, MaxStep: 0.5, MaxLog: 3}
	p := NewBudgetPool(b, s)
	start := p.State().LogLambda
	t0 := int64(1_000_000 * WindowSeconds)
	// Slot 0: 10 CPU windows, 3 misses; reads in the slot see the start.
	for i := range 10 {
		p.record(0, t0+int64(i), i < 3)
		if got := p.logLambda(0, t0+int64(i)); got != start[0] {
			t.Fatalf("read within the slot moved λ: %v, want %v", got, start[0])
		}
	}
	got := p.logLambda(0, t0+WindowSeconds)
	if want := start[0] + 0.5*(3-0.1*10); math.Abs(got-want) > 1e-12 {
		t.Errorf("after the slot: log λ %v, want %v", got, want)
	}
	if p.logLambda(1, t0+WindowSeconds) != start[1] {
		t.Error("memory moved with no memory windows")
	}
	// A late record (an earlier slot) counts in the current one.
	p.record(0, t0, true)
	got2 := p.logLambda(0, t0+2*WindowSeconds)
	if want := got + 0.5*(1-0.1); math.Abs(got2-want) > 1e-12 {
		t.Errorf("late miss: log λ %v, want %v", got2, want)
	}
	// Anti-windup: λ stays within ±MaxLog.
	for k := range 100 {
		p.record(0, t0+int64(3+k)*WindowSeconds, true)
	}
	if l := p.logLambda(0, t0+200*WindowSeconds); l != 3 {
		t.Errorf("log λ %v after 100 misses, want clamped at MaxLog 3", l)
	}
	// The step is Gain over a day's budgeted misses of the fleet: 10
	// windows a slot at budget 0.1 expect 288 misses a day.
	g := NewBudgetPool(b, SteerParams{Gain: [2]float64{2, 2}, MaxStep: 1, MaxLog: 12})
	l0 := g.State().LogLambda[0]
	for i := range 10 {
		g.record(0, t0+int64(i), i < 3)
	}
	if got, want := g.logLambda(0, t0+WindowSeconds), l0+2.0/288*(3-0.1*10); math.Abs(got-want) > 1e-12 {
		t.Errorf("normalised step: log λ %v, want %v", got, want)
	}
	// State round-trips.
	q := NewBudgetPool(b, s)
	q.Restore(p.State())
	if q.State() != p.State() {
		t.Errorf("restored %+v, want %+v", q.State(), p.State())
	}
}

// The prior λ rises as the budget falls (fewer violations need a heavier
// overrun weight) and is flat outside the tuning table.
func TestPriorLogLambdaMonotone(t *testing.T) {
	for res := range 2 {
		prev := math.Inf(-1)
		for b := 0.00001; b < 0.2; b *= 1.1 {
			l := priorLogLambda(res, b)
			if l > prev+1e-12 && prev != math.Inf(-1) {
				t.Fatalf("resource %d: log λ %v at budget %v above %v at a smaller budget", res, l, b, prev)
			}
			prev = l
		}
	}
}

// A recommender decoded from its JSON rejoins a factory's pool by Attach;
// one built alone uses the open-loop prior; Validate names bad steering.
func TestFactoryAttach(t *testing.T) {
	f := NewFactory(ViolationBudget{CPU: 0.01})
	if f.Pool.Budget().Memory != DefaultViolationBudget().Memory {
		t.Errorf("zero memory budget not defaulted: %+v", f.Pool.Budget())
	}
	r, _ := f.New("fathom")
	if !r.(*Fathom).Pooled() {
		t.Fatal("factory's fathom is not pooled")
	}
	for i := range 400 {
		r.Observe(Window{Start: time.Unix(int64(i)*WindowSeconds, 0), CPU: 1, Memory: 1 << 30})
	}
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := f.Unmarshal(b)
	if err != nil || !back.(*Fathom).Pooled() {
		t.Fatalf("unmarshalled %v (pooled %v)", err, err == nil && back.(*Fathom).Pooled())
	}
	alone, _ := Unmarshal(b)
	if alone.(*Fathom).Pooled() {
		t.Error("plain Unmarshal joined a pool")
	}
	v, _ := New("vpa")
	f.Attach(v) // a no-op for kinds that do not steer
	p := DefaultFathomParams()
	p.Steer.Gain[1] = -1
	if err := p.Validate(); err == nil {
		t.Error("negative steer gain accepted")
	}
	p = DefaultFathomParams()
	p.Budget.CPU = 0.9
	if err := p.Validate(); !errors.Is(err, ErrBadBudget) {
		t.Errorf("budget 0.9 accepted: %v", err)
	}
}
