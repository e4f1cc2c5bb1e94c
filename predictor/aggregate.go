package predictor

import (
	"fmt"
	"math"
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

// AggregatedWindow is a window plus the CPU histogram it was built from.
type AggregatedWindow struct {
	models.Window
	CPUHist WindowHistogram `json:"cpu_hist"`
}

// Aggregate turns raw samples (in time order) into windows of the given
// width aligned to multiples of width since the Unix epoch. CPU is the mean
// rate over the window (counter increase / time covered), CPUPeak the
// highest rate between two consecutive samples, Memory the highest working
// set. Counter resets (a restarted task) are handled as Prometheus's rate()
// does: the value after the reset counts from zero. Windows with no pair of
// samples are left out; only windows ending at or before until are emitted,
// so a window still filling is never reported.
func Aggregate(samples []Sample, width time.Duration, until time.Time) ([]AggregatedWindow, error) {
	if width <= 0 {
		return nil, fmt.Errorf("aggregate: window width %s must be positive", width)
	}
	var out []AggregatedWindow
	var cur *AggregatedWindow
	var cpuSum, covered float64
	flush := func() {
		if cur != nil && covered > 0 && !cur.Start.Add(width).After(until) {
			cur.CPU = cpuSum / covered
			out = append(out, *cur)
		}
		cur, cpuSum, covered = nil, 0, 0
	}
	for i, s := range samples {
		if i > 0 && !s.Time.After(samples[i-1].Time) {
			return nil, fmt.Errorf("aggregate: sample %d at %s is not after sample %d; give samples in time order without duplicates", i, s.Time.Format(time.RFC3339Nano), i-1)
		}
		if math.IsNaN(s.CPUSeconds) || math.IsNaN(s.Memory) || s.Memory < 0 || s.CPUSeconds < 0 {
			return nil, fmt.Errorf("aggregate: sample %d at %s has a negative or NaN value", i, s.Time.Format(time.RFC3339Nano))
		}
		start := s.Time.Truncate(width)
		if cur == nil || !cur.Start.Equal(start) {
			flush()
			cur = &AggregatedWindow{Window: models.Window{Start: start}}
		}
		cur.Memory = max(cur.Memory, s.Memory)
		if i == 0 {
			continue
		}
		prev := samples[i-1]
		// An interval straddling a boundary counts in the window it ends in.
		dt := s.Time.Sub(prev.Time).Seconds()
		inc := s.CPUSeconds - prev.CPUSeconds
		if inc < 0 { // counter reset
			inc = s.CPUSeconds
		}
		rate := inc / dt
		cpuSum += inc
		covered += dt
		cur.CPUPeak = max(cur.CPUPeak, rate)
		cur.CPUHist.Add(rate, dt)
	}
	flush()
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
