package sim

import (
	"math"

	"github.com/fathom-scheduler/fathom/scheduler"
)

// DefaultStepSpread is Options.StepSpread's default: an allowance for the
// heavy tails of usage changes (measured by CheckStepTail), chosen on the
// Bitbrains trace with the estimated correlation (docs/simulator.md).
const DefaultStepSpread = 1.15

// stepWindows is the time constant, in windows, of the exponentially
// weighted window-to-window change statistic (288 windows: 24 h).
const stepWindows = 288

// stepDist sets the predicted usage distribution a fathom task is placed
// with for the coming window, from the windows the task has already run
// (never later ones):
//
//   - mean: the larger of the recommender's decayed mean and the last
//     window's usage, so a surge raises the predicted load of the machine
//     at once instead of over the mean's 24 h half-life;
//   - standard deviation: spread × √(exponentially weighted mean of (u_t − u_{t−1})², 24 h), the
//     typical change from one window to the next, which is what can catch
//     the machine out between two sizings.
//
// The decayed 24 h standard deviation of usage that the recommender
// exports measures how much usage varies over a day, most of which (the
// level) the last window already tells; the risk bound only needs what may
// change before the next sizing. The changes of tasks that surge together
// are correlated: the scheduler's correlation-aware bound takes that from
// Options.Correlation (by default estimated as the run goes from the
// windows replayed so far, as EstimateStepCorrelation does for a whole
// trace). What spread > 1 still allows for is the heavy
// tail of the changes: a Gaussian with the measured RMS change puts 0.1%
// beyond 3.09σ, the Bitbrains changes put about 1.5% there even with the
// correlation (CheckStepTail); 1.15 by default, measured on that trace
// (docs/simulator.md).
func (tr *taskRun) stepDist(t *scheduler.Task, spread float64) {
	if tr.next == 0 {
		return // no window seen yet: the recommender's cold start
	}
	for ; tr.stepSeen < tr.next; tr.stepSeen++ {
		if tr.stepSeen == 0 {
			continue
		}
		p, c := tr.t.Windows[tr.stepSeen-1], tr.t.Windows[tr.stepSeen]
		d := [2]float64{c.CPU - p.CPU, c.Memory - p.Memory}
		tr.stepN++
		a := max(1/float64(tr.stepN), 1.0/stepWindows)
		for res := range d {
			tr.stepVar[res] += a * (d[res]*d[res] - tr.stepVar[res])
		}
	}
	last := tr.t.Windows[tr.next-1]
	for res, u := range [2]float64{last.CPU, last.Memory} {
		t.Usage[res].Mean = max(t.Usage[res].Mean, u)
		if tr.stepN > 0 {
			t.Usage[res].StdDev = spread * math.Sqrt(tr.stepVar[res])
		}
	}
}
