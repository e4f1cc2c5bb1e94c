package models

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// AutopilotParams are the moving-window recommender's parameters.
type AutopilotParams struct {
	CPUHalfLife   float64 `json:"cpu_half_life_s"` // 12 h
	CPUPercentile float64 `json:"cpu_percentile"`  // 0.95
	MemoryWindow  float64 `json:"memory_window_s"` // max over the last 48 h
	// MemoryPercentile of the memory samples in the window (1 or 0: the
	// maximum, §3.2.2's choice for memory), exact (nearest rank).
	MemoryPercentile float64          `json:"memory_percentile,omitempty"`
	Margin           float64          `json:"margin"`             // 0.10
	StabilizeWindow  float64          `json:"stabilize_window_s"` // max of recommendations over 1 h
	CPUHistogram     HistogramOptions `json:"cpu_histogram"`
}

// DefaultAutopilotParams are the values of Autopilot (EuroSys 2020) §3.2.2
// as the issue states them.
func DefaultAutopilotParams() AutopilotParams {
	return AutopilotParams{
		CPUHalfLife:     12 * 3600,
		CPUPercentile:   0.95,
		MemoryWindow:    48 * 3600,
		Margin:          0.10,
		StabilizeWindow: 3600,
		CPUHistogram:    CPUHistogram,
	}
}

// Autopilot is Google Autopilot's moving-window recommender for one task:
// CPU is the p95 of a decaying histogram (12 h half-life); memory is the
// maximum over the last 48 h; both get +10%; the answer is then the maximum
// of the raw recommendations over the last hour, so limits fall slowly.
type Autopilot struct {
	Params   AutopilotParams    `json:"params"`
	CPUHist  *DecayingHistogram `json:"cpu_hist"`
	Mem      RollingMax         `json:"mem"`
	CPURecs  RollingMax         `json:"cpu_recs"`
	MemRecs  RollingMax         `json:"mem_recs"`
	Last     int64              `json:"last"`
	N        int                `json:"n"`
	CPUStats Moments            `json:"cpu_stats"`
	MemStats Moments            `json:"mem_stats"`
	// MemWin holds the window's memory samples when MemoryPercentile < 1.
	MemWin *MovingQuantile `json:"mem_win,omitempty"`
}

// NewAutopilot returns an empty moving-window recommender.
func NewAutopilot(p AutopilotParams) *Autopilot {
	return &Autopilot{
		Params:   p,
		CPUHist:  NewDecayingHistogram(p.CPUHistogram, p.CPUHalfLife),
		Mem:      RollingMax{Window: int64(p.MemoryWindow)},
		CPURecs:  RollingMax{Window: int64(p.StabilizeWindow)},
		MemRecs:  RollingMax{Window: int64(p.StabilizeWindow)},
		CPUStats: Moments{HalfLife: p.CPUHalfLife},
		MemStats: Moments{HalfLife: p.CPUHalfLife},
		MemWin:   newMovingQuantile(p),
	}
}

func newMovingQuantile(p AutopilotParams) *MovingQuantile {
	if p.MemoryPercentile <= 0 || p.MemoryPercentile >= 1 {
		return nil
	}
	return &MovingQuantile{Window: int64(p.MemoryWindow)}
}

// memoryStat is the window's memory statistic at t.
func (a *Autopilot) memoryStat(t int64) float64 {
	if a.MemWin != nil {
		return a.MemWin.Percentile(t, a.Params.MemoryPercentile)
	}
	return a.Mem.Max(t)
}

func (a *Autopilot) pushMemory(t int64, v float64) {
	a.Mem.Push(t, v)
	if a.MemWin != nil {
		a.MemWin.Push(t, v)
	}
}

// Kind implements Recommender.
func (a *Autopilot) Kind() string { return "autopilot" }

// Observe implements Recommender. The raw recommendation after each window
// joins the hour over which the served one is the maximum.
func (a *Autopilot) Observe(w Window) {
	t := unix(w.Start)
	if a.N > 0 && t <= a.Last {
		return
	}
	a.Last = t
	a.N++
	a.CPUHist.Add(w.CPU, 1, t)
	a.pushMemory(t, w.Memory)
	a.CPUStats.Add(w.CPU, t)
	a.MemStats.Add(w.Memory, t)
	// The raw recommendation made with this window stands from its start.
	m := 1 + a.Params.Margin
	a.CPURecs.Push(t, a.CPUHist.Percentile(a.Params.CPUPercentile)*m)
	a.MemRecs.Push(t, a.memoryStat(t)*m)
}

// ObserveOOM implements Recommender. The moving-window recommender of
// §3.2.2 has no OOM rule of its own: the usage at the kill (at least the
// memory given) is a sample like any other, so it enters the 48 h maximum
// at once and the limit becomes that plus the 10% margin.
func (a *Autopilot) ObserveOOM(at time.Time, memory float64) {
	t := max(unix(at), a.Mem.LastT())
	a.pushMemory(t, memory)
	a.MemRecs.Push(max(t, a.MemRecs.LastT()), a.memoryStat(t)*(1+a.Params.Margin))
}

// Limit implements Recommender.
func (a *Autopilot) Limit(now time.Time) Size {
	t := unix(now)
	return Size{CPU: a.CPURecs.Max(t), Memory: a.MemRecs.Max(t)}
}

// Recommend implements Recommender.
func (a *Autopilot) Recommend(now time.Time) Recommendation {
	l := a.Limit(now)
	return Recommendation{
		CPU:     Estimate{Request: l.CPU, Limit: l.CPU, Mean: a.CPUStats.Mean, StdDev: a.CPUStats.StdDev(), Quantiles: quantiles(a.CPUHist)},
		Memory:  Estimate{Request: l.Memory, Limit: l.Memory, Mean: a.MemStats.Mean, StdDev: a.MemStats.StdDev()},
		Samples: a.N,
		Why:     fmt.Sprintf("autopilot: cpu p%g (half-life %s), memory %s over %s, +%g%%, max over the last %s", a.Params.CPUPercentile*100, time.Duration(a.Params.CPUHalfLife)*time.Second, a.memName(), time.Duration(a.Params.MemoryWindow)*time.Second, a.Params.Margin*100, time.Duration(a.Params.StabilizeWindow)*time.Second),
	}
}

// RollingMax is the maximum of (time, value) points over a trailing window,
// kept as a monotonic deque: amortised O(1) per point.
type RollingMax struct {
	Window int64     `json:"window_s"`
	T      []int64   `json:"t"`
	V      []float64 `json:"v"`
}

// Push adds value v at time t (t must not go backwards).
func (r *RollingMax) Push(t int64, v float64) {
	for n := len(r.V); n > 0 && r.V[n-1] <= v; n-- {
		r.T, r.V = r.T[:n-1], r.V[:n-1]
	}
	r.T = append(r.T, t)
	r.V = append(r.V, v)
}

// LastT is the time of the newest point kept, or 0.
func (r *RollingMax) LastT() int64 {
	if len(r.T) == 0 {
		return 0
	}
	return r.T[len(r.T)-1]
}

// Max is the largest value with time in (now-Window, now], or 0. It drops
// points that have left the window, so now must not go backwards.
func (r *RollingMax) Max(now int64) float64 {
	i := 0
	for i < len(r.T) && r.T[i] <= now-r.Window {
		i++
	}
	if i > 0 {
		// Compact occasionally to keep the slices from growing.
		r.T, r.V = r.T[i:], r.V[i:]
		if cap(r.T) > 64 && len(r.T) < cap(r.T)/4 {
			r.T = append([]int64(nil), r.T...)
			r.V = append([]float64(nil), r.V...)
		}
	}
	for j := 0; j < len(r.T); j++ {
		if r.T[j] <= now {
			return r.V[j]
		}
	}
	return 0
}

func (a *Autopilot) memName() string {
	if a.MemWin != nil {
		return fmt.Sprintf("p%g", a.Params.MemoryPercentile*100)
	}
	return "max"
}

// MovingQuantile answers percentiles of the samples of a trailing window
// (a sample leaves it Window seconds after it came) to the resolution of
// MemoryHistogram's buckets, like the VPA's histograms: counts per bucket
// in a Fenwick tree, so adding, expiring and asking are O(log buckets).
type MovingQuantile struct {
	Window int64     `json:"window_s"`
	T      []int64   `json:"t"` // arrival order
	V      []float64 `json:"v"`
	tree   []int32   // Fenwick tree of counts per bucket, rebuilt from V
	lay    *layout
}

func (w *MovingQuantile) init() {
	if w.lay != nil {
		return
	}
	w.lay = MemoryHistogram.layout()
	w.tree = make([]int32, len(w.lay.starts))
	for _, v := range w.V {
		w.add(w.lay.find(v), 1)
	}
}

func (w *MovingQuantile) add(b int, d int32) {
	for i := b + 1; i < len(w.tree); i += i & -i {
		w.tree[i] += d
	}
}

// Push adds v at t (t must not go backwards).
func (w *MovingQuantile) Push(t int64, v float64) {
	w.init()
	w.expire(t)
	w.T = append(w.T, t)
	w.V = append(w.V, v)
	w.add(w.lay.find(v), 1)
}

func (w *MovingQuantile) expire(now int64) {
	i := 0
	for i < len(w.T) && w.T[i] <= now-w.Window {
		w.add(w.lay.find(w.V[i]), -1)
		i++
	}
	if i > 0 {
		w.T, w.V = w.T[i:], w.V[i:]
		if cap(w.T) > 64 && len(w.T) < cap(w.T)/4 {
			w.T = append([]int64(nil), w.T...)
			w.V = append([]float64(nil), w.V...)
		}
	}
}

// Percentile is the end of the bucket holding the nearest-rank p-th
// percentile of the samples in (now-Window, now] (the ⌈p·n⌉-th smallest),
// or 0 when there are none.
func (w *MovingQuantile) Percentile(now int64, p float64) float64 {
	w.init()
	w.expire(now)
	n := len(w.V)
	if n == 0 {
		return 0
	}
	k := int32(min(max(int(math.Ceil(min(max(p, 0), 1)*float64(n))), 1), n))
	// Fenwick descent: the smallest bucket whose cumulative count >= k.
	pos, rem := 0, k
	for step := 1 << (bits.Len(uint(len(w.tree)-1)) - 1); step > 0; step >>= 1 {
		if pos+step < len(w.tree) && w.tree[pos+step] < rem {
			pos += step
			rem -= w.tree[pos]
		}
	}
	// pos is the count of buckets before the answer: bucket pos.
	return w.lay.starts[min(pos+1, len(w.lay.starts)-1)]
}
