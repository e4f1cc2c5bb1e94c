package models

import (
	"fmt"
	"time"
)

// AutopilotParams are the moving-window recommender's parameters.
type AutopilotParams struct {
	CPUHalfLife     float64          `json:"cpu_half_life_s"`    // 12 h
	CPUPercentile   float64          `json:"cpu_percentile"`     // 0.95
	MemoryWindow    float64          `json:"memory_window_s"`    // max over the last 48 h
	Margin          float64          `json:"margin"`             // 0.10
	StabilizeWindow float64          `json:"stabilize_window_s"` // max of recommendations over 1 h
	CPUHistogram    HistogramOptions `json:"cpu_histogram"`
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
	a.Mem.Push(t, w.Memory)
	a.CPUStats.Add(w.CPU, t)
	a.MemStats.Add(w.Memory, t)
	// The raw recommendation made with this window stands from its start.
	m := 1 + a.Params.Margin
	a.CPURecs.Push(t, a.CPUHist.Percentile(a.Params.CPUPercentile)*m)
	a.MemRecs.Push(t, a.Mem.Max(t)*m)
}

// ObserveOOM implements Recommender. The moving-window recommender of
// §3.2.2 has no OOM rule of its own: the usage at the kill (at least the
// memory given) is a sample like any other, so it enters the 48 h maximum
// at once and the limit becomes that plus the 10% margin.
func (a *Autopilot) ObserveOOM(at time.Time, memory float64) {
	t := max(unix(at), a.Mem.LastT())
	a.Mem.Push(t, memory)
	a.MemRecs.Push(max(t, a.MemRecs.LastT()), a.Mem.Max(t)*(1+a.Params.Margin))
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
		Why:     fmt.Sprintf("autopilot: cpu p%.0f (half-life 12h), memory max over 48h, +%.0f%%, max over the last hour", a.Params.CPUPercentile*100, a.Params.Margin*100),
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
