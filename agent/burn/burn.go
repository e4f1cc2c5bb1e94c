package burn

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Patterns a Config may name.
const (
	Steady = "steady" // constant at the target
	Sine   = "sine"   // target × (1 + ½·sin(2πt/period)): mean is the target, range ½× to 1½×
	Spiky  = "spiky"  // the target, with a spike to 3× for the first tenth of every period
	Leak   = "leak"   // CPU steady; memory grows linearly, reaching the target after one period and going on
)

// Config says what to burn.
type Config struct {
	CPU      float64       // cores
	Memory   int64         // bytes
	Pattern  string        // steady | sine | spiky | leak
	Period   time.Duration // of the pattern
	Duration time.Duration // 0 = until ctx is done
	// Slice is the duty-cycle granularity. Default 10ms.
	Slice time.Duration
}

// Validate names what is wrong with c.
func (c Config) Validate() error {
	switch c.Pattern {
	case Steady, Sine, Spiky, Leak:
	default:
		return fmt.Errorf("--pattern %q is not one of steady, sine, spiky, leak", c.Pattern)
	}
	if c.CPU < 0 || math.IsNaN(c.CPU) {
		return fmt.Errorf("--cpu %v must be zero or more cores", c.CPU)
	}
	if c.Memory < 0 {
		return fmt.Errorf("--memory %d must be zero or more bytes", c.Memory)
	}
	if c.Period <= 0 {
		return fmt.Errorf("--period %s must be positive", c.Period)
	}
	if c.Duration < 0 {
		return fmt.Errorf("--duration %s must not be negative", c.Duration)
	}
	return nil
}

// Level returns the multiplier of the CPU and memory targets at elapsed
// time t. It is a pure function of its inputs.
func Level(pattern string, t, period time.Duration) (cpu, mem float64) {
	phase := float64(t%period) / float64(period)
	switch pattern {
	case Sine:
		l := 1 + 0.5*math.Sin(2*math.Pi*phase)
		return l, l
	case Spiky:
		if phase < 0.1 {
			return 3, 3
		}
		return 1, 1
	case Leak:
		return 1, float64(t) / float64(period)
	}
	return 1, 1
}

// Run burns until ctx is done or Duration has passed.
func Run(ctx context.Context, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Slice <= 0 {
		c.Slice = 10 * time.Millisecond
	}
	if c.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Duration)
		defer cancel()
	}
	start := time.Now()
	mem := &memory{}
	defer mem.release()
	var wg sync.WaitGroup
	// One worker per core the peak needs; each burns its share of the level.
	peak := c.CPU * 3
	workers := int(math.Ceil(peak))
	if workers > runtime.NumCPU() {
		workers = runtime.NumCPU()
	}
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			runtime.LockOSThread()
			worker(ctx, c, start, i, workers)
		}(i)
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		_, ml := Level(c.Pattern, time.Since(start), c.Period)
		if err := mem.resize(int64(ml * float64(c.Memory))); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
		}
	}
}

// worker i of n burns min(1, max(0, target - i)) cores: whole cores first,
// the remainder on the last, so --cpu 0.5 is one thread busy half the time.
// It keeps an account of CPU owed (share × wall time) and pays it in
// thread CPU time, so oversleeping and preemption by other processes on a
// busy machine do not bias the long-run average.
func worker(ctx context.Context, c Config, start time.Time, i, n int) {
	last := time.Now()
	owed := 0.0 // seconds of CPU this thread still has to burn
	for ctx.Err() == nil {
		now := time.Now()
		cl, _ := Level(c.Pattern, now.Sub(start), c.Period)
		share := math.Min(1, math.Max(0, c.CPU*cl-float64(i)))
		owed += share * now.Sub(last).Seconds()
		last = now
		// Never carry more than a second of debt (after a stop, say).
		owed = math.Min(owed, 1)
		if owed > 0 {
			t0 := threadCPU()
			goal := math.Min(owed, c.Slice.Seconds())
			for threadCPU()-t0 < goal {
				spin()
			}
			owed -= threadCPU() - t0
		}
		if share < 1 {
			time.Sleep(c.Slice - time.Duration(share*float64(c.Slice)))
		}
	}
}

// threadCPU is the calling OS thread's CPU time in seconds.
func threadCPU() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return float64(time.Now().UnixNano()) / 1e9
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

var sink uint64

func spin() {
	x := sink
	for j := 0; j < 2000; j++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	sink = x
}

// memory holds anonymous mappings of 4 MiB chunks, every page written so it
// is resident and charged to the cgroup.
type memory struct {
	chunks [][]byte
}

const chunk = 4 << 20

func (m *memory) resize(target int64) error {
	want := int((target + chunk - 1) / chunk)
	for len(m.chunks) < want {
		b, err := syscall.Mmap(-1, 0, chunk, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			return fmt.Errorf("mapping memory: %w", err)
		}
		for p := 0; p < len(b); p += 4096 {
			b[p] = 1
		}
		m.chunks = append(m.chunks, b)
	}
	for len(m.chunks) > want {
		last := m.chunks[len(m.chunks)-1]
		m.chunks = m.chunks[:len(m.chunks)-1]
		_ = syscall.Munmap(last)
	}
	return nil
}

func (m *memory) release() { _ = m.resize(0) }
