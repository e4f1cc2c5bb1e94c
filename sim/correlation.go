package sim

import (
	"math"
	"slices"
	"sort"

	"github.com/fathom-scheduler/fathom/scheduler"
)

// StepCorrelation is the correlation between tasks of their usage changes
// from one window to the next, per resource (CPU, memory), estimated from a
// workload by EstimateStepCorrelation.
type StepCorrelation struct {
	// Weighted is the σ-weighted mean pairwise correlation,
	//
	//	ρ = Σₖ Σ_{i≠j} Δᵢₖ·Δⱼₖ / Σₖ Σ_{i≠j} σᵢ·σⱼ,
	//
	// over windows k and the tasks i, j that changed in both: the ρ at
	// which the scheduler's equicorrelated variance Σσ² + ρ((Σσ)² − Σσ²)
	// equals, on average, the measured variance of the summed change of the
	// tasks present together. It is what scheduler.Options.Correlation
	// wants.
	Weighted [2]float64 `json:"weighted"`
	// Mean is the plain mean pairwise (Pearson) correlation, every pair
	// weighted by the windows it shares; Weighted gives larger tasks more
	// say, as the variance of a machine's load does.
	Mean [2]float64 `json:"mean"`
	// Pairs is Σₖ nₖ(nₖ−1)/2, the task pairs that changed in the same
	// window, summed over windows.
	Pairs float64 `json:"pairs"`
}

// EstimateStepCorrelation estimates how much the window-to-window usage
// changes of a workload's tasks move together, over slots [from, to) (to ≤ 0:
// the end). A task's change in slot k is Δ = u(k) − u(k−1) for two windows
// in consecutive slots; σᵢ is the task's root-mean-square change over the
// same slots, and changes are taken to have mean 0 (the level already
// follows the last window: the predictor's step distribution,
// predictor/step.go). These changes are the residuals
// of the step distribution the fathom policy places tasks with (mean ≥ the
// last window's usage, spread from the RMS change).
//
// It reads every window in the range, so it looks ahead when used to set the
// correlation of a run of the same range; docs/simulator.md compares the
// estimate on the first and second half of the Bitbrains trace.
func EstimateStepCorrelation(w *Workload, from, to int) StepCorrelation {
	if to <= 0 || to > w.Slots {
		to = w.Slots
	}
	from = max(from, 1)
	n := to - from
	if n <= 0 {
		return StepCorrelation{}
	}
	type change struct {
		task int32
		d    [2]float64
	}
	bySlot := make([][]change, n)
	sd := make([][2]float64, len(w.Tasks))
	for ti := range w.Tasks {
		t := &w.Tasks[ti]
		var ss [2]float64
		cnt := 0
		for i := 1; i < len(t.Windows); i++ {
			k := w.slot(t.Windows[i].Start)
			if k < from || k >= to || w.slot(t.Windows[i-1].Start) != k-1 {
				continue
			}
			d := [2]float64{t.Windows[i].CPU - t.Windows[i-1].CPU, t.Windows[i].Memory - t.Windows[i-1].Memory}
			bySlot[k-from] = append(bySlot[k-from], change{int32(ti), d})
			ss[0] += d[0] * d[0]
			ss[1] += d[1] * d[1]
			cnt++
		}
		if cnt > 0 {
			sd[ti] = [2]float64{math.Sqrt(ss[0] / float64(cnt)), math.Sqrt(ss[1] / float64(cnt))}
		}
	}
	var cross, norm, zcross, pairs [2]float64
	var est StepCorrelation
	for _, cs := range bySlot {
		for r := range 2 {
			var sum, sq, sdSum, sdSq, z, zsq float64
			m := 0
			for _, c := range cs {
				s := sd[c.task][r]
				if s == 0 {
					continue
				}
				sum += c.d[r]
				sq += c.d[r] * c.d[r]
				sdSum += s
				sdSq += s * s
				z += c.d[r] / s
				zsq += (c.d[r] / s) * (c.d[r] / s)
				m++
			}
			cross[r] += sum*sum - sq
			norm[r] += sdSum*sdSum - sdSq
			zcross[r] += z*z - zsq
			pairs[r] += float64(m) * float64(m-1)
		}
	}
	for r := range 2 {
		if norm[r] > 0 {
			est.Weighted[r] = cross[r] / norm[r]
		}
		if pairs[r] > 0 {
			est.Mean[r] = zcross[r] / pairs[r]
		}
	}
	est.Pairs = pairs[0] / 2
	return est
}

// stepWindows is the predictor's time constant, in windows, of the step
// statistic (predictor/step.go): 24 h of 5-minute windows.
const stepWindows = 288

// TailCheck is how the step distribution with the correlation-aware
// Gaussian bound fits a workload's own changes, per resource: machines are
// stood in for by random groups of tasks, and each group's summed change in
// each window is standardized by the bound's standard deviation,
// z = ΣΔ / √((1−ρ)Σσᵢ² + ρ(Σσᵢ)²), with every σᵢ the task's exponentially
// weighted RMS change known before the window (as the predictor's step statistic,
// predictor/step.go, computes it).
type TailCheck struct {
	// Exceed is the share of group-windows with z > z₁₋ε: what the bound
	// promises to keep at ε.
	Exceed [2]float64 `json:"exceed"`
	// Factor is the (1−ε)-quantile of z over z₁₋ε: the factor by which
	// every σᵢ would have to grow for the bound to hold at ε on this
	// workload (1: the Gaussian tail is right; > 1: heavier tails).
	Factor [2]float64 `json:"factor"`
	// Samples counts group-windows.
	Samples int `json:"samples"`
}

// CheckStepTail runs the TailCheck for correlation rho and risk eps with
// groups of about size tasks (random, seeded, fixed over time; partitions
// repeats with other seeds pool more samples).
func CheckStepTail(w *Workload, rho [2]float64, eps float64, size, partitions int, seed uint64) TailCheck {
	type change struct {
		d, sd [2]float64
	}
	slots := make([]map[int32]change, w.Slots)
	for ti := range w.Tasks {
		t := &w.Tasks[ti]
		var ev [2]float64
		n := 0
		for i := 1; i < len(t.Windows); i++ {
			d := [2]float64{t.Windows[i].CPU - t.Windows[i-1].CPU, t.Windows[i].Memory - t.Windows[i-1].Memory}
			k := w.slot(t.Windows[i].Start)
			if n > 0 && w.slot(t.Windows[i-1].Start) == k-1 {
				if slots[k] == nil {
					slots[k] = map[int32]change{}
				}
				slots[k][int32(ti)] = change{d: d, sd: [2]float64{math.Sqrt(ev[0]), math.Sqrt(ev[1])}}
			}
			n++
			a := max(1/float64(n), 1.0/stepWindows) // as the predictor's step statistic
			for r := range d {
				ev[r] += a * (d[r]*d[r] - ev[r])
			}
		}
	}
	groups := max(1, (len(w.Tasks)+size/2)/size)
	z1 := math.Sqrt2 * math.Erfinv(1-2*eps)
	var zs [2][]float64
	for p := range partitions {
		of := make([]int, len(w.Tasks))
		for i := range of {
			of[i] = int(splitmix(seed^uint64(p)<<32^uint64(i)) % uint64(groups))
		}
		sum := make([][3][2]float64, groups) // ΣΔ, Σσ², Σσ
		for _, cs := range slots {
			clear(sum)
			for ti, c := range cs {
				g := &sum[of[ti]]
				for r := range 2 {
					g[0][r] += c.d[r]
					g[1][r] += c.sd[r] * c.sd[r]
					g[2][r] += c.sd[r]
				}
			}
			for _, g := range sum {
				for r := range 2 {
					if v := scheduler.CorrelatedVariance(g[1][r], g[2][r], rho[r]); v > 0 {
						zs[r] = append(zs[r], g[0][r]/math.Sqrt(v))
					}
				}
			}
		}
	}
	var tc TailCheck
	tc.Samples = len(zs[0])
	for r := range 2 {
		if len(zs[r]) == 0 {
			continue
		}
		slices.Sort(zs[r])
		over := len(zs[r]) - sort.SearchFloat64s(zs[r], z1)
		tc.Exceed[r] = float64(over) / float64(len(zs[r]))
		q := zs[r][min(len(zs[r])-1, int(math.Ceil((1-eps)*float64(len(zs[r]))))-1)]
		tc.Factor[r] = q / z1
	}
	return tc
}
