package predictor

import (
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fathom-scheduler/fathom/models"
)

var epoch = time.Unix(1_700_000_100, 0).UTC() // a multiple of 5 minutes

func TestAggregateSteadyLoad(t *testing.T) {
	// 1.5 cores for 15 minutes, sampled every second, memory rising.
	var ss []Sample
	for i := 0; i <= 900; i++ {
		ss = append(ss, Sample{Time: epoch.Add(time.Duration(i) * time.Second), CPUSeconds: 1.5 * float64(i), Memory: float64(i)})
	}
	ws, err := Aggregate(ss, 5*time.Minute, epoch.Add(15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 {
		t.Fatalf("%d windows, want 3", len(ws))
	}
	for i, w := range ws {
		if math.Abs(w.CPU-1.5) > 1e-9 || math.Abs(w.CPUPeak-1.5) > 1e-9 || w.Memory != float64(300*i+299) {
			t.Errorf("window %d: %+v, want cpu 1.5, peak 1.5, memory %d", i, w.Window, 300*i+299)
		}
		if p := w.CPUHist.Percentile(0.99); p < 1.5 || p > 1.5*1.05 {
			t.Errorf("window %d: p99 %v, want the end of the 1.5-core bucket", i, p)
		}
	}
	// A window still filling is not reported.
	ws, _ = Aggregate(ss, 5*time.Minute, epoch.Add(14*time.Minute))
	if len(ws) != 2 {
		t.Errorf("%d windows before the third ended, want 2", len(ws))
	}
}

func TestAggregateCounterResetAndBadInput(t *testing.T) {
	ss := []Sample{
		{Time: epoch, CPUSeconds: 100},
		{Time: epoch.Add(10 * time.Second), CPUSeconds: 110},
		{Time: epoch.Add(20 * time.Second), CPUSeconds: 5}, // restarted: 5 s in 10 s
	}
	ws, err := Aggregate(ss, 5*time.Minute, epoch.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || math.Abs(ws[0].CPU-0.75) > 1e-9 || ws[0].CPUPeak != 1 {
		t.Fatalf("windows %+v, want mean 0.75 (15 s over 20 s) and peak 1", ws)
	}
	if _, err := Aggregate([]Sample{ss[1], ss[0]}, 5*time.Minute, epoch); err == nil {
		t.Error("samples out of order accepted")
	}
	if _, err := Aggregate(ss, 0, epoch); err == nil {
		t.Error("zero width accepted")
	}
}

// TestAggregateAgainstNaive compares Aggregate with a direct computation
// per window over random samples (a dumb twin that scans all samples for
// each window).
func TestAggregateAgainstNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 300).Draw(t, "n")
		var ss []Sample
		ts := epoch
		cpu := 0.0
		for range n {
			ts = ts.Add(time.Duration(rapid.IntRange(1, 90).Draw(t, "dt")) * time.Second)
			cpu += rapid.Float64Range(0, 100).Draw(t, "inc")
			ss = append(ss, Sample{Time: ts, CPUSeconds: cpu, Memory: rapid.Float64Range(0, 1e9).Draw(t, "mem")})
		}
		until := ss[len(ss)-1].Time.Add(time.Hour)
		ws, err := Aggregate(ss, 5*time.Minute, until)
		if err != nil {
			t.Fatal(err)
		}
		got := map[time.Time]AggregatedWindow{}
		for _, w := range ws {
			got[w.Start] = w
		}
		// Naive: for each window start, scan every sample pair.
		starts := map[time.Time]bool{}
		for _, s := range ss {
			starts[s.Time.Truncate(5*time.Minute)] = true
		}
		for st := range starts {
			var inc, dt, peak, mem float64
			var rates []struct{ r, d float64 }
			for i, s := range ss {
				if s.Time.Truncate(5*time.Minute) != st {
					continue
				}
				mem = max(mem, s.Memory)
				if i == 0 {
					continue
				}
				d := s.Time.Sub(ss[i-1].Time).Seconds()
				in := s.CPUSeconds - ss[i-1].CPUSeconds
				inc += in
				dt += d
				peak = max(peak, in/d)
				rates = append(rates, struct{ r, d float64 }{in / d, d})
			}
			w, ok := got[st]
			if dt == 0 {
				if ok {
					t.Fatalf("window %s has no interval but was emitted", st)
				}
				continue
			}
			if !ok {
				t.Fatalf("window %s missing", st)
			}
			if math.Abs(w.CPU-inc/dt) > 1e-9*max(1, inc/dt) || w.CPUPeak != peak || w.Memory != mem {
				t.Fatalf("window %s: %+v, naive cpu %v peak %v mem %v", st, w.Window, inc/dt, peak, mem)
			}
			// Histogram median against a sorted scan of (rate, seconds).
			p := rapid.Float64Range(0, 1).Draw(t, "p")
			hp := w.CPUHist.Percentile(p)
			// The naive percentile: smallest bucket end whose covered time
			// reaches p of the total.
			var below float64
			for _, x := range rates {
				if models.CPUHistogram.FindBucket(x.r) < models.CPUHistogram.FindBucket(hp) {
					below += x.d
				}
			}
			var atOrBelowPrev float64
			for _, x := range rates {
				if models.CPUHistogram.FindBucket(x.r) < models.CPUHistogram.FindBucket(hp)-1 {
					atOrBelowPrev += x.d
				}
			}
			if below < p*dt-1e-6 || (atOrBelowPrev >= p*dt+1e-6 && atOrBelowPrev > 0) {
				t.Fatalf("window %s: p%.3f = %v; time at or below it %v, below the previous bucket %v, of %v", st, p, hp, below, atOrBelowPrev, dt)
			}
		}
	})
}
