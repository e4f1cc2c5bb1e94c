package models

import (
	"encoding/json"
	"math"
	"sort"
	"testing"

	"pgregory.net/rapid"
)

// naiveHist is the dumb twin: it keeps every sample with its time and
// recomputes decayed weights and the percentile from scratch.
type naiveHist struct {
	o        HistogramOptions
	halfLife float64
	v, w     []float64
	t        []int64
}

func (n *naiveHist) add(v, w float64, t int64) {
	n.v, n.w, n.t = append(n.v, v), append(n.w, w), append(n.t, t)
}

// percentileBucket returns, at reference time now, the weight of each bucket
// relative to a sample of weight 1 at now.
func (n *naiveHist) buckets() []float64 {
	b := make([]float64, n.o.NumBuckets())
	for i := range n.v {
		f := 1.0
		if n.halfLife > 0 {
			f = math.Exp2(float64(n.t[i]-n.t[0]) / n.halfLife)
		}
		// Linear search for the bucket: the dumb way.
		k := 0
		for k+1 < len(b) && n.o.BucketStart(k+1) <= n.v[i] {
			k++
		}
		b[k] += n.w[i] * f
	}
	return b
}

func TestHistogramBucketsAgainstNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := []HistogramOptions{CPUHistogram, MemoryHistogram}[rapid.IntRange(0, 1).Draw(t, "layout")]
		v := rapid.Float64Range(0, o.Max*2).Draw(t, "v")
		b := o.FindBucket(v)
		k := 0
		for k+1 < o.NumBuckets() && o.BucketStart(k+1) <= v {
			k++
		}
		if b != k {
			t.Fatalf("FindBucket(%v) = %d, naive %d", v, b, k)
		}
	})
}

// TestHistogramPercentileAgainstNaive checks the decaying histogram (with
// rescaling and subtraction) against the naive twin: the bucket it answers
// must be the first whose cumulative weight reaches p of the total.
func TestHistogramPercentileAgainstNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := CPUHistogram
		hl := []float64{0, 3600, 12 * 3600}[rapid.IntRange(0, 2).Draw(t, "halflife")]
		h := NewDecayingHistogram(o, hl)
		n := &naiveHist{o: o, halfLife: hl}
		ts := int64(1_000_000)
		steps := rapid.IntRange(1, 200).Draw(t, "n")
		for i := range steps {
			ts += rapid.Int64Range(0, 6*3600).Draw(t, "dt")
			v := rapid.Float64Range(0, 64).Draw(t, "v")
			w := float64(rapid.IntRange(1, 5).Draw(t, "w"))
			h.Add(v, w, ts)
			n.add(v, w, ts)
			if i > 0 && rapid.IntRange(0, 9).Draw(t, "sub") == 0 {
				// Remove the previous sample exactly (as the VPA does with a
				// replaced memory peak).
				j := len(n.v) - 2
				h.Subtract(n.v[j], n.w[j], n.t[j])
				n.w[j] = 0
			}
		}
		nb := n.buckets()
		total := 0.0
		for _, x := range nb {
			total += x
		}
		if total == 0 {
			return
		}
		p := rapid.Float64Range(0, 1).Draw(t, "p")
		got := h.Percentile(p)
		// Bucket whose end is got.
		b := o.FindBucket(got) - 1
		if got == o.BucketStart(len(nb)-1) {
			b = len(nb) - 1
		}
		cum, before := 0.0, 0.0
		for i := 0; i <= b; i++ {
			before = cum
			cum += nb[i]
		}
		tol := 1e-9 * total
		if cum < p*total-tol || (before >= p*total+tol && before > 0) {
			t.Fatalf("p%.4f = %v (bucket %d): cumulative %.6g before %.6g of %.6g", p, got, b, cum, before, total)
		}
	})
}

func TestRollingMaxAgainstNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		win := rapid.Int64Range(1, 5000).Draw(t, "window")
		r := RollingMax{Window: win}
		var ts []int64
		var vs []float64
		now := int64(0)
		for range rapid.IntRange(1, 100).Draw(t, "n") {
			now += rapid.Int64Range(1, 1000).Draw(t, "dt")
			v := rapid.Float64Range(0, 10).Draw(t, "v")
			r.Push(now, v)
			ts, vs = append(ts, now), append(vs, v)
			q := now + rapid.Int64Range(0, 500).Draw(t, "ahead")
			want := 0.0
			for i := range ts {
				if ts[i] > q-win && ts[i] <= q {
					want = max(want, vs[i])
				}
			}
			if got := r.Max(q); got != want {
				t.Fatalf("max at %d over %d = %v, naive %v", q, win, got, want)
			}
			now = q
		}
	})
}

// MovingQuantile against a sorted copy of the window: the answer is the end
// of the bucket holding the ⌈p·n⌉-th smallest sample in (now-Window, now].
func TestMovingQuantileAgainstNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		win := rapid.Int64Range(1, 5000).Draw(t, "window")
		w := MovingQuantile{Window: win}
		var ts []int64
		var vs []float64
		now := int64(0)
		for range rapid.IntRange(1, 80).Draw(t, "n") {
			now += rapid.Int64Range(1, 1000).Draw(t, "dt")
			v := math.Exp(rapid.Float64Range(math.Log(1e6), math.Log(1e11)).Draw(t, "v"))
			w.Push(now, v)
			ts, vs = append(ts, now), append(vs, v)
			q := now + rapid.Int64Range(0, 500).Draw(t, "ahead")
			p := rapid.Float64Range(0, 1).Draw(t, "p")
			var in []float64
			for i := range ts {
				if ts[i] > q-win && ts[i] <= q {
					in = append(in, vs[i])
				}
			}
			want := 0.0
			if len(in) > 0 {
				sort.Float64s(in)
				k := min(max(int(math.Ceil(p*float64(len(in)))), 1), len(in))
				want = MemoryHistogram.BucketStart(MemoryHistogram.FindBucket(in[k-1]) + 1)
			}
			if got := w.Percentile(q, p); math.Abs(got-want) > 1e-6*want {
				t.Fatalf("p%.3f at %d over %d of %v = %v, naive %v", p, q, win, in, got, want)
			}
			now = q
		}
		// Its JSON round-trips (the tree is rebuilt from the samples).
		b, _ := json.Marshal(&w)
		var back MovingQuantile
		if err := json.Unmarshal(b, &back); err != nil || back.Percentile(now, 0.9) != w.Percentile(now, 0.9) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
