package models

import (
	"fmt"
	"math"
	"sync"
)

// maxDecayExponent bounds the exponent of sample weights before a histogram
// renormalises (as the VPA recommender does), so weights stay finite.
const maxDecayExponent = 100

// HistogramOptions describe exponential buckets: bucket i spans
// [start(i), start(i+1)) with start(i) = First*(Ratio^i-1)/(Ratio-1), so the
// first bucket is First wide and each next one is Ratio times wider. Values
// at or above Max all fall in the last bucket.
type HistogramOptions struct {
	First float64 `json:"first"`
	Ratio float64 `json:"ratio"`
	Max   float64 `json:"max"`
}

// CPUHistogram is the VPA's CPU layout as the issue gives it: from 1 mCPU,
// 5% growth, up to 1000 cores.
var CPUHistogram = HistogramOptions{First: 0.001, Ratio: 1.05, Max: 1000}

// MemoryHistogram is the VPA's memory layout: from 10 MB, 5% growth, up to 1 TB.
var MemoryHistogram = HistogramOptions{First: 1e7, Ratio: 1.05, Max: 1e12}

// Validate reports options that cannot describe a histogram.
func (o HistogramOptions) Validate() error {
	if !(o.First > 0) || !(o.Ratio > 1) || !(o.Max > o.First) {
		return fmt.Errorf("histogram options %+v: want first > 0, ratio > 1, max > first", o)
	}
	return nil
}

// NumBuckets is the number of buckets the options describe.
func (o HistogramOptions) NumBuckets() int {
	return int(math.Ceil(math.Log(o.Max*(o.Ratio-1)/o.First+1)/math.Log(o.Ratio))) + 1
}

// BucketStart is the lower bound of bucket i.
func (o HistogramOptions) BucketStart(i int) float64 {
	return o.First * (math.Pow(o.Ratio, float64(i)) - 1) / (o.Ratio - 1)
}

// FindBucket returns the bucket holding v (negative values go to bucket 0).
func (o HistogramOptions) FindBucket(v float64) int { return o.layout().find(v) }

// layout is the options' bucket starts, computed once per distinct
// options: the histograms of every task share it.
type layout struct {
	o      HistogramOptions
	logR   float64
	starts []float64 // starts[i] = BucketStart(i), one past the last bucket too
}

var layouts sync.Map // HistogramOptions -> *layout

func (o HistogramOptions) layout() *layout {
	if l, ok := layouts.Load(o); ok {
		return l.(*layout)
	}
	n := o.NumBuckets()
	l := &layout{o: o, logR: math.Log(o.Ratio), starts: make([]float64, n+1)}
	for i := range l.starts {
		l.starts[i] = o.BucketStart(i)
	}
	v, _ := layouts.LoadOrStore(o, l)
	return v.(*layout)
}

func (l *layout) find(v float64) int {
	o := l.o
	if v < o.First {
		return 0
	}
	b := int(math.Log(v*(o.Ratio-1)/o.First+1) / l.logR)
	n := len(l.starts) - 1
	if b >= n {
		return n - 1
	}
	// Guard against floating point at bucket edges.
	if b+1 < n && v >= l.starts[b+1] {
		b++
	} else if b > 0 && v < l.starts[b] {
		b--
	}
	return b
}

// DecayingHistogram is a histogram of samples whose weight halves every
// HalfLife seconds, as in the Kubernetes VPA recommender: a sample at time t
// is added with weight w*2^((t-Ref)/HalfLife), so older samples count less
// relative to newer ones without ever being touched again. When exponents
// grow large the histogram rescales and moves Ref.
type DecayingHistogram struct {
	Options  HistogramOptions `json:"options"`
	HalfLife float64          `json:"half_life_s"` // seconds; 0 means no decay
	Ref      int64            `json:"ref"`         // unix seconds of weight 1
	Weights  []float64        `json:"weights"`
	Total    float64          `json:"total"`
	Min      int              `json:"min"` // lowest bucket with weight (valid when Total > 0)
	MaxB     int              `json:"max"` // highest bucket with weight
	lay      *layout          // Options' layout, looked up once
}

func (h *DecayingHistogram) layout() *layout {
	if h.lay == nil || h.lay.o != h.Options {
		h.lay = h.Options.layout()
	}
	return h.lay
}

// NewDecayingHistogram returns an empty histogram. halfLife is in seconds.
func NewDecayingHistogram(o HistogramOptions, halfLife float64) *DecayingHistogram {
	return &DecayingHistogram{Options: o, HalfLife: halfLife, Weights: make([]float64, o.NumBuckets())}
}

// epsilon is the weight below which a histogram counts as empty.
const epsilon = 1e-10

func (h *DecayingHistogram) factor(t int64) float64 {
	if h.HalfLife <= 0 {
		return 1
	}
	if h.Total == 0 {
		h.Ref = t
		return 1
	}
	exp := float64(t-h.Ref) / h.HalfLife
	if exp > maxDecayExponent {
		h.rescale(t)
		exp = 0
	}
	return math.Exp2(exp)
}

func (h *DecayingHistogram) rescale(t int64) {
	f := math.Exp2(-float64(t-h.Ref) / h.HalfLife)
	h.Total = 0
	for i := h.Min; i <= h.MaxB; i++ {
		h.Weights[i] *= f
		h.Total += h.Weights[i]
	}
	h.Ref = t
}

// Add adds value v with weight w observed at unix time t (seconds).
func (h *DecayingHistogram) Add(v, w float64, t int64) {
	if w <= 0 {
		return
	}
	w *= h.factor(t)
	b := h.layout().find(v)
	if h.Total <= epsilon {
		h.Min, h.MaxB = b, b
	} else {
		h.Min = min(h.Min, b)
		h.MaxB = max(h.MaxB, b)
	}
	h.Weights[b] += w
	h.Total += w
}

// Subtract removes weight w of value v at time t (the inverse of Add; used
// when a memory peak is replaced by a higher one in the same interval).
func (h *DecayingHistogram) Subtract(v, w float64, t int64) {
	if w <= 0 || h.Total <= 0 {
		return
	}
	w *= h.factor(t)
	b := h.layout().find(v)
	w = min(w, h.Weights[b])
	h.Weights[b] -= w
	h.Total -= w
	if h.Weights[b] < epsilon*h.Total {
		h.Total -= h.Weights[b]
		h.Weights[b] = 0
	}
	if h.Total <= epsilon {
		h.Total = 0
		return
	}
	for h.Min < h.MaxB && h.Weights[h.Min] == 0 {
		h.Min++
	}
	for h.MaxB > h.Min && h.Weights[h.MaxB] == 0 {
		h.MaxB--
	}
}

// Empty reports whether the histogram holds no weight.
func (h *DecayingHistogram) Empty() bool { return h.Total <= epsilon }

// Percentile returns the end of the bucket where the cumulative weight first
// reaches p*Total (the VPA's rule), or 0 when empty. p is clamped to [0,1].
// It walks from whichever end is nearer, so high percentiles are cheap.
func (h *DecayingHistogram) Percentile(p float64) float64 {
	if h.Empty() {
		return 0
	}
	p = min(max(p, 0), 1)
	threshold := p * h.Total
	b := h.Min
	if p >= 0.5 {
		// Walk down: the answer is the lowest bucket b with cum(b) >= threshold,
		// i.e. the lowest b whose weight above it is <= Total-threshold.
		above := 0.0
		b = h.MaxB
		for b > h.Min {
			if above+h.Weights[b] > h.Total-threshold {
				break
			}
			above += h.Weights[b]
			b--
		}
	} else {
		sum := 0.0
		for ; b < h.MaxB; b++ {
			sum += h.Weights[b]
			if sum >= threshold {
				break
			}
		}
	}
	starts := h.layout().starts
	if b < len(h.Weights)-1 {
		return starts[b+1]
	}
	return starts[b]
}
