package predictor

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/fathom-scheduler/fathom/models"
)

// Sample is one raw usage sample of a task, as an agent takes it every
// second: the cumulative CPU time (a counter) and the memory working set.
type Sample struct {
	Time       time.Time
	CPUSeconds float64 // cumulative CPU seconds; a drop is a counter reset
	Memory     float64 // working set, bytes
}

// WindowHistogram is the within-window distribution of CPU rates between
// consecutive samples, in exponential buckets (models.CPUHistogram layout,
// so it merges with the recommenders' histograms).
type WindowHistogram struct {
	Counts map[int]float64 `json:"counts"` // bucket → seconds spent at that rate
	Total  float64         `json:"total"`  // seconds covered
}

// Add records that the CPU rate was rate cores for dt seconds.
func (h *WindowHistogram) Add(rate, dt float64) {
	if dt <= 0 {
		return
	}
	if h.Counts == nil {
		h.Counts = map[int]float64{}
	}
	h.Counts[models.CPUHistogram.FindBucket(rate)] += dt
	h.Total += dt
}

// Percentile returns the end of the first bucket whose cumulative time
// reaches p of the total (0 when empty), like models.DecayingHistogram.
func (h *WindowHistogram) Percentile(p float64) float64 {
	if h.Total <= 0 {
		return 0
	}
	n := models.CPUHistogram.NumBuckets()
	thr := min(max(p, 0), 1) * h.Total
	sum := 0.0
	last := 0
	for b := 0; b < n; b++ {
		c, ok := h.Counts[b]
		if !ok {
			continue
		}
		last = b
		sum += c
		if sum >= thr {
			break
		}
	}
	if last < n-1 {
		return models.CPUHistogram.BucketStart(last + 1)
	}
	return models.CPUHistogram.BucketStart(last)
}

// AggregatedWindow is a window plus the CPU histogram it was built from and
// how much of it samples cover.
type AggregatedWindow struct {
	models.Window
	CPUHist WindowHistogram `json:"cpu_hist"`
	// Covered is the time, in seconds, between consecutive samples that
	// ended in the window (at most about its width): a window of a task that
	// started or stopped inside it, or that sits in a gap, covers less.
	Covered float64 `json:"covered_s"`
}

// Full reports whether samples cover at least FullCoverage of a window of
// the given width: only such windows are fed to recommenders as 5-minute
// windows (see Predictor.Feed).
func (w AggregatedWindow) Full(width time.Duration) bool {
	return w.Covered >= FullCoverage*width.Seconds()
}

// FullCoverage is the share of a window samples must cover for it to count
// as a whole window: its mean CPU over at least half the window stands for
// the window's; a window covered less (the task started or stopped in it)
// is kept only as early evidence (Partial), never learned as a full window.
const FullCoverage = 0.5

// Aggregate turns raw samples (in time order) into windows of the given
// width aligned to multiples of width since the Unix epoch. CPU is the mean
// rate over the window (counter increase / time covered), CPUPeak the
// highest rate between two consecutive samples, Memory the highest working
// set. Counter resets (a restarted task) are handled as Prometheus's rate()
// does: the value after the reset counts from zero. Windows with no pair of
// samples are left out; only windows ending at or before until are emitted,
// so a window still filling is never reported.
func Aggregate(samples []Sample, width time.Duration, until time.Time) ([]AggregatedWindow, error) {
	all, err := AggregateSeries([][]Sample{samples}, width)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, w := range all {
		if !w.Start.Add(width).After(until) {
			out = append(out, w)
		}
	}
	return out, nil
}

// AggregateSeries aggregates several sample series of one task (the same
// task on another node, or an earlier job of the same name) into one list of
// windows, like Aggregate but with every window, the last one too even if it
// is still filling (its Covered says how much of it there is). Within a
// window, CPU increases add up and the covered times add up (capped at the
// width when several series share the window), so two series that follow
// each other give the task's mean rate and two that overlap give their sum.
// An interval between samples longer than width is a gap: it covers nothing.
func AggregateSeries(series [][]Sample, width time.Duration) ([]AggregatedWindow, error) {
	if width <= 0 {
		return nil, fmt.Errorf("aggregate: window width %s must be positive", width)
	}
	type acc struct {
		w       AggregatedWindow
		inc     float64
		series  int
		lastSer int
	}
	byStart := map[int64]*acc{}
	var starts []int64
	get := func(start time.Time, ser int) *acc {
		k := start.UnixNano()
		a, ok := byStart[k]
		if !ok {
			a = &acc{w: AggregatedWindow{Window: models.Window{Start: start}}, lastSer: -1}
			byStart[k] = a
			starts = append(starts, k)
		}
		if a.lastSer != ser {
			a.series++
			a.lastSer = ser
		}
		return a
	}
	for si, samples := range series {
		for i, s := range samples {
			if i > 0 && !s.Time.After(samples[i-1].Time) {
				return nil, fmt.Errorf("aggregate: sample %d at %s is not after sample %d; give samples in time order without duplicates", i, s.Time.Format(time.RFC3339Nano), i-1)
			}
			if math.IsNaN(s.CPUSeconds) || math.IsNaN(s.Memory) || s.Memory < 0 || s.CPUSeconds < 0 {
				return nil, fmt.Errorf("aggregate: sample %d at %s has a negative or NaN value", i, s.Time.Format(time.RFC3339Nano))
			}
			a := get(s.Time.Truncate(width), si)
			a.w.Memory = max(a.w.Memory, s.Memory)
			if i == 0 {
				continue
			}
			prev := samples[i-1]
			// An interval straddling a boundary counts in the window it ends in.
			dt := s.Time.Sub(prev.Time).Seconds()
			if dt > width.Seconds() {
				continue // a gap: the task did not run, or nothing was pushed
			}
			inc := s.CPUSeconds - prev.CPUSeconds
			if inc < 0 { // counter reset
				inc = s.CPUSeconds
			}
			rate := inc / dt
			a.inc += inc
			a.w.Covered += dt
			a.w.CPUPeak = max(a.w.CPUPeak, rate)
			a.w.CPUHist.Add(rate, dt)
		}
	}
	slices.Sort(starts)
	out := make([]AggregatedWindow, 0, len(starts))
	for _, k := range starts {
		a := byStart[k]
		if a.w.Covered <= 0 {
			continue
		}
		a.w.CPU = a.inc / a.w.Covered
		if a.series > 1 && a.w.Covered > width.Seconds() {
			a.w.Covered = width.Seconds()
			a.w.CPU = a.inc / a.w.Covered
		}
		out = append(out, a.w)
	}
	return out, nil
}

// Windows strips the histograms.
func Windows(a []AggregatedWindow) []models.Window {
	out := make([]models.Window, len(a))
	for i := range a {
		out[i] = a[i].Window
	}
	return out
}
