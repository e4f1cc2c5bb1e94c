package burn

import (
	"math"
	"testing"
	"time"
)

func TestLevelShapes(t *testing.T) {
	p := 100 * time.Second
	for _, tc := range []struct {
		pattern  string
		at       time.Duration
		cpu, mem float64
	}{
		{Steady, 37 * time.Second, 1, 1},
		{Sine, 0, 1, 1},
		{Sine, 25 * time.Second, 1.5, 1.5},
		{Sine, 75 * time.Second, 0.5, 0.5},
		{Spiky, 5 * time.Second, 3, 3},
		{Spiky, 50 * time.Second, 1, 1},
		{Leak, 50 * time.Second, 1, 0.5},
		{Leak, 200 * time.Second, 1, 2},
	} {
		cpu, mem := Level(tc.pattern, tc.at, p)
		if math.Abs(cpu-tc.cpu) > 1e-9 || math.Abs(mem-tc.mem) > 1e-9 {
			t.Errorf("Level(%s, %s) = %v, %v; want %v, %v", tc.pattern, tc.at, cpu, mem, tc.cpu, tc.mem)
		}
	}
	// The sine's mean over a period is the target.
	sum := 0.0
	for i := 0; i < 1000; i++ {
		c, _ := Level(Sine, time.Duration(i)*p/1000, p)
		sum += c
	}
	if mean := sum / 1000; math.Abs(mean-1) > 1e-6 {
		t.Errorf("sine mean %v, want 1", mean)
	}
}

func TestValidateNamesTheProblem(t *testing.T) {
	good := Config{CPU: 0.5, Memory: 1 << 20, Pattern: Steady, Period: time.Minute}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{Pattern: "zigzag", Period: time.Minute},
		{CPU: -1, Pattern: Steady, Period: time.Minute},
		{Memory: -1, Pattern: Steady, Period: time.Minute},
		{Pattern: Steady},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestMemoryIsTouchedAndReleased(t *testing.T) {
	var m memory
	if err := m.resize(10 << 20); err != nil {
		t.Fatal(err)
	}
	if len(m.chunks) != 3 { // 4 MiB chunks, rounded up
		t.Errorf("%d chunks for 10 MiB, want 3", len(m.chunks))
	}
	m.release()
	if len(m.chunks) != 0 {
		t.Errorf("%d chunks after release", len(m.chunks))
	}
}
