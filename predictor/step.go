package predictor

import (
	"math"
	"time"

	"github.com/fathom-scheduler/fathom/models"
)

// The step distribution: what an overload-risk bound needs to know of a
// task's usage is what it may use before it is sized again, one window
// later. A recommender's own decayed mean and standard deviation describe
// the usage of the last day or so: they lag a surge by hours and measure the
// daily swing, most of which the last window already tells. So the
// predictor also keeps, per task, the usage of its last window and an
// exponentially weighted mean of the squared change from one window to the
// next, and serves (Recommendation.Next) mean = max(the recommender's mean,
// the last window's usage) and standard deviation = StepSpread × the root
// mean square change. With the recommender's own distribution, correlated
// surges of many VMs at once passed the bound of the Bitbrains replay (2.7%
// of machine-windows overloaded, measured with the simulator's former loop
// in November 2026).

// DefaultStepSpread is Config.StepSpread's default: an allowance for the
// heavy tails of usage changes (a Gaussian with the measured RMS change puts
// 0.1% beyond 3.09σ; the Bitbrains changes put about 1.5% there even with
// the correlation; sim's CheckStepTail measures it), chosen by replaying
// Bitbrains VMs 1-150 through the simulator (the smallest spread measured
// with ≤ 0.1% of machine-windows overloaded) and checked once on VMs
// 151-250 (docs/simulator.md).
const DefaultStepSpread = 1.15

// stepWindows is the time constant, in windows, of the exponentially
// weighted window-to-window change statistic (288 windows: 24 h of
// 5-minute windows).
const stepWindows = 288

// Dist is a predicted usage distribution over one window: mean and standard
// deviation (cores or bytes). The zero Dist means no prediction.
type Dist struct {
	Mean   float64 `json:"mean"`
	StdDev float64 `json:"stddev"`
}

// stepStats is one task's window-to-window change statistic.
type stepStats struct {
	n    int        // changes folded in
	v    [2]float64 // exponentially weighted mean of squared changes (CPU, memory)
	last models.Window
	has  bool
	// For the correlation estimate: Σ squared changes between windows of
	// consecutive slots, and their count.
	ss [2]float64
	cn int
}

// observe folds a full window in.
func (s *stepStats) observe(w models.Window) {
	if s.has {
		d := [2]float64{w.CPU - s.last.CPU, w.Memory - s.last.Memory}
		s.n++
		a := max(1/float64(s.n), 1.0/stepWindows)
		for r := range d {
			s.v[r] += a * (d[r]*d[r] - s.v[r])
		}
	}
	s.last, s.has = w, true
}

// next is the step distribution for a recommendation with the
// recommender's own estimates cpu and mem; spread ≤ 0 leaves them as they
// are.
func (s *stepStats) next(cpu, mem models.Estimate, spread float64) [2]Dist {
	out := [2]Dist{{cpu.Mean, cpu.StdDev}, {mem.Mean, mem.StdDev}}
	if spread <= 0 || !s.has {
		return out
	}
	for r, u := range [2]float64{s.last.CPU, s.last.Memory} {
		out[r].Mean = max(out[r].Mean, u)
		if s.n > 0 {
			out[r].StdDev = spread * math.Sqrt(s.v[r])
		}
	}
	return out
}

// correlation estimates ρ, the σ-weighted mean pairwise correlation of the
// window-to-window usage changes of tasks, per resource, from the windows
// observed so far (no look-ahead): the value at which the scheduler's
// equicorrelated variance (1−ρ)Σσᵢ² + ρ(Σσᵢ)² equals, on average, the
// variance of the summed change of the tasks present together,
//
//	ρ = Σₖ Σ_{i≠j} Δᵢₖ·Δⱼₖ / Σₖ Σ_{i≠j} σᵢ·σⱼ
//
// over windows k and the tasks i, j that changed between consecutive
// windows k−1, k, with σᵢ each task's root-mean-square change so far.
// Windows are pooled by their slot (start truncated to the window width);
// a slot is closed once it ended a whole window ago, so windows that arrive
// late still count.
type correlation struct {
	width       time.Duration
	open        map[int64]*slotSums
	cross, norm [2]float64
	rho         [2]float64
}

type slotSums struct{ sum, sq, sds, sd2 [2]float64 }

func (c *correlation) slot(t time.Time) int64 { return t.UnixNano() / int64(c.width) }

// add folds a task's change into its window's slot: prev and w are two
// consecutive full windows of one task and s its statistic (already
// updated with w).
func (c *correlation) add(s *stepStats, prev, w models.Window) {
	k := c.slot(w.Start)
	if c.slot(prev.Start) != k-1 {
		return
	}
	d := [2]float64{w.CPU - prev.CPU, w.Memory - prev.Memory}
	s.cn++
	if c.open == nil {
		c.open = map[int64]*slotSums{}
	}
	ss := c.open[k]
	if ss == nil {
		ss = &slotSums{}
		c.open[k] = ss
	}
	for r := range d {
		s.ss[r] += d[r] * d[r]
		sd := math.Sqrt(s.ss[r] / float64(s.cn))
		if sd == 0 {
			continue
		}
		ss.sum[r] += d[r]
		ss.sq[r] += d[r] * d[r]
		ss.sds[r] += sd
		ss.sd2[r] += sd * sd
	}
}

// closeBefore closes every slot that ended at least one window before now
// and returns the estimate.
func (c *correlation) closeBefore(now time.Time) [2]float64 {
	limit := c.slot(now) - 1 // slots < limit ended at least a window ago
	for k, ss := range c.open {
		if k >= limit {
			continue
		}
		for r := range ss.sum {
			c.cross[r] += ss.sum[r]*ss.sum[r] - ss.sq[r]
			c.norm[r] += ss.sds[r]*ss.sds[r] - ss.sd2[r]
			if c.norm[r] > 0 {
				c.rho[r] = min(max(c.cross[r]/c.norm[r], 0), 1)
			}
		}
		delete(c.open, k)
	}
	return c.rho
}

// Correlation is the running estimate of ρ per resource (CPU, memory) from
// every task's windows observed so far, as of now: see correlation. It is 0
// until two tasks changed in the same window.
func (p *Predictor) Correlation(now time.Time) [2]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.corr.closeBefore(now)
}
