package sim

import (
	"github.com/fathom-scheduler/fathom/predictor"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

// synthetic builds n tasks whose CPU is a random walk with steps
// √ρ·common + √(1−ρ)·own (unit variance, pairwise correlation ρ) scaled per
// task, and memory with independent steps.
func synthetic(n, slots int, rho float64, seed uint64) *Workload {
	rng := rand.New(rand.NewPCG(seed, 9))
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	w := &Workload{Start: t0, Slots: slots, Tasks: make([]Task, n)}
	u := make([][2]float64, n)
	for i := range w.Tasks {
		w.Tasks[i].Key.Task = i
		u[i] = [2]float64{100, 100}
	}
	for k := range slots {
		common := rng.NormFloat64()
		for i := range w.Tasks {
			scale := 1 + float64(i%4)
			u[i][0] += scale * (math.Sqrt(rho)*common + math.Sqrt(1-rho)*rng.NormFloat64())
			u[i][1] += scale * rng.NormFloat64()
			w.Tasks[i].Windows = append(w.Tasks[i].Windows, models.Window{Start: t0.Add(time.Duration(k) * Step), CPU: u[i][0], Memory: u[i][1]})
		}
	}
	return w
}

// The estimator finds the correlation a synthetic workload was built with.
func TestEstimateStepCorrelationSynthetic(t *testing.T) {
	for _, rho := range []float64{0, 0.1, 0.5} {
		est := EstimateStepCorrelation(synthetic(20, 3000, rho, 1), 0, 0)
		for _, got := range []float64{est.Weighted[0], est.Mean[0]} {
			if math.Abs(got-rho) > 0.03 {
				t.Errorf("ρ = %.2f: cpu estimate %.4f (weighted %.4f, mean %.4f)", rho, got, est.Weighted[0], est.Mean[0])
			}
		}
		if math.Abs(est.Weighted[1]) > 0.03 {
			t.Errorf("ρ = %.2f: memory steps are independent, estimate %.4f", rho, est.Weighted[1])
		}
		if want := float64(20*19/2) * 2999; est.Pairs != want {
			t.Errorf("pairs %v, want %v", est.Pairs, want)
		}
	}
}

// TestStepCorrelationBitbrains prints the estimate on the full Bitbrains
// trace, and on each half of it (is a correlation fitted on one part valid
// for the other?). It skips without ../shared/traces.
func TestStepCorrelationBitbrains(t *testing.T) {
	const path = "../../shared/traces/bitbrains-rnd-2013-07-vm001-250.csv.gz"
	if _, err := os.Stat(path); err != nil {
		t.Skip("full Bitbrains trace absent (../shared/traces): skipping")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	series, err := LoadBitbrains(path, trace.VMRange{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := FromSeries(path, series, scheduler.Batch)
	if err != nil {
		t.Fatal(err)
	}
	half := w.Slots / 2
	for _, p := range []struct {
		name     string
		from, to int
	}{{"whole", 0, 0}, {"first half", 0, half}, {"second half", half, 0}} {
		e := EstimateStepCorrelation(w, p.from, p.to)
		t.Logf("%-11s weighted ρ cpu %.4f memory %.4f; mean pairwise ρ cpu %.4f memory %.4f; %.3g pair-windows",
			p.name, e.Weighted[0], e.Weighted[1], e.Mean[0], e.Mean[1], e.Pairs)
		for r := range 2 {
			if !(e.Weighted[r] > -0.1 && e.Weighted[r] < 1) {
				t.Errorf("%s: resource %d weighted ρ %v out of range", p.name, r, e.Weighted[r])
			}
		}
	}
	// How Gaussian are the changes? Groups of 33 tasks (about the tasks per
	// machine of the fathom policy on this trace), 4 random partitions.
	e := EstimateStepCorrelation(w, 0, 0)
	for _, rho := range [][2]float64{{0, 0}, e.Weighted} {
		tc := CheckStepTail(w, rho, 0.001, 33, 4, 1)
		t.Logf("groups of 33, ρ %.3f/%.3f: z > z₀.₉₉₉ in cpu %.3f%% memory %.3f%% of %d group-windows (Gaussian: 0.1%%); tail factor cpu %.2f memory %.2f",
			rho[0], rho[1], 100*tc.Exceed[0], 100*tc.Exceed[1], tc.Samples, tc.Factor[0], tc.Factor[1])
	}
}

// The sim hands the correlation to the scheduler: the estimate from the
// whole workload (CorrelationFromTrace), else the one given; a larger ρ packs fathom's tasks
// on more machines (a wider margin per machine), and ρ is reported.
func TestRunUsesCorrelation(t *testing.T) {
	_, w := loadExcerpt(t)
	machines := func(c *scheduler.Resources) (float64, *Report) {
		m := w.LargestProvisioned() // small machines, so that the margin decides
		rep, err := Run(w, Options{Policies: []string{"fathom"}, Correlation: c, CorrelationFromTrace: true, Machine: models.Size{CPU: m.CPU / 4, Memory: m.Memory / 2}})
		if err != nil {
			t.Fatal(err)
		}
		return rep.Cluster[0].MachinesMean, rep
	}
	auto, rep := machines(nil)
	est := rep.StepCorrelation.Weighted
	for r := range est {
		if want := min(max(est[r], 0), 1); rep.RiskCorrelation[r] != want {
			t.Fatalf("default ρ %v, want the workload's estimate %v clamped to [0, 1]", rep.RiskCorrelation, est)
		}
	}
	ind, _ := machines(&scheduler.Resources{0, 0})
	full, rep := machines(&scheduler.Resources{1, 1})
	if rep.RiskCorrelation != (scheduler.Resources{1, 1}) {
		t.Fatalf("reported ρ %v, want the given 1, 1", rep.RiskCorrelation)
	}
	t.Logf("fathom machines mean: ρ = 0: %.3f, estimated ρ %.3f/%.3f: %.3f, ρ = 1: %.3f", ind, est[0], est[1], auto, full)
	if !(ind <= auto && auto <= full && ind < full) {
		t.Fatalf("machines should grow with ρ: %.3f (0) ≤ %.3f (estimate) ≤ %.3f (1)", ind, auto, full)
	}
}

// On Gaussian changes with the right ρ the tail check finds the Gaussian
// tail (factor about 1); with ρ taken as 0 it finds the shortfall.
func TestCheckStepTailGaussian(t *testing.T) {
	w := synthetic(40, 3000, 0.3, 2)
	right := CheckStepTail(w, [2]float64{0.3, 0}, 0.01, 10, 8, 1)
	wrong := CheckStepTail(w, [2]float64{0, 0}, 0.01, 10, 8, 1)
	t.Logf("right ρ: exceed %.4f factor %.3f; ρ = 0: exceed %.4f factor %.3f (ε 0.01, %d samples)", right.Exceed[0], right.Factor[0], wrong.Exceed[0], wrong.Factor[0], right.Samples)
	if f := right.Factor[0]; f < 0.85 || f > 1.15 {
		t.Errorf("right ρ: tail factor %.3f, want about 1", f)
	}
	if f := wrong.Factor[0]; f < 1.5 {
		t.Errorf("ρ = 0 on correlated changes: tail factor %.3f, want well above 1", f)
	}
}

// The predictor's online estimate (what the control loop uses by default),
// fed the whole workload window by window, ends near the batch one (it
// differs only in each task's σ being its RMS change so far), and never
// reads ahead: after the first slot it has seen no change.
func TestOnlineCorrelation(t *testing.T) {
	w := synthetic(20, 2000, 0.3, 3)
	p, err := predictor.New(predictor.Config{Kind: "vpa", Window: Step})
	if err != nil {
		t.Fatal(err)
	}
	next := make([]int, len(w.Tasks))
	var rho [2]float64
	for k := range w.Slots {
		for i := range w.Tasks {
			tk := &w.Tasks[i]
			for next[i] < len(tk.Windows) && w.slot(tk.Windows[next[i]].Start) == k {
				p.Observe(tk.Key, tk.Windows[next[i]:next[i]+1])
				next[i]++
			}
		}
		// Sized at the start of the next slot, with what ended a slot ago.
		rho = p.Correlation(w.SlotTime(k + 2))
		if k == 0 && rho != ([2]float64{}) {
			t.Fatalf("ρ %v after the first slot, which has no change yet", rho)
		}
	}
	batch := EstimateStepCorrelation(w, 0, 0)
	if math.Abs(rho[0]-batch.Weighted[0]) > 0.03 || math.Abs(rho[0]-0.3) > 0.05 {
		t.Fatalf("online ρ %v, batch %v, built with 0.3", rho, batch.Weighted)
	}
	_, ex := loadExcerpt(t)
	rep, err := Run(ex, Options{Policies: []string{"fathom"}}) // online is the default
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Assumptions) == 0 || rep.RiskCorrelation[0] < 0 || rep.RiskCorrelation[0] > 1 {
		t.Fatalf("online run: ρ %v, assumptions %v", rep.RiskCorrelation, rep.Assumptions)
	}
}
