package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// WindowSeconds is the length of the usage windows recommenders are fed.
const WindowSeconds = 300

// Window is one task's usage over one 5-minute window.
type Window struct {
	Start   time.Time `json:"start"`
	CPU     float64   `json:"cpu"`      // mean CPU over the window, cores
	CPUPeak float64   `json:"cpu_peak"` // highest 1-s CPU within the window, cores (= CPU when unknown)
	Memory  float64   `json:"memory"`   // peak memory (working set) in the window, bytes
}

// Size is a CPU (cores) and memory (bytes) pair.
type Size struct {
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
}

// Quantile is one point of a predicted usage distribution.
type Quantile struct {
	P     float64 `json:"p"`
	Value float64 `json:"value"`
}

// Estimate is a recommendation for one resource. Request is the central
// estimate the scheduler packs with; Limit is what the agent enforces; Mean,
// StdDev and Quantiles describe the predicted distribution of per-window
// usage, so that a scheduler can bound the chance that tasks sharing a
// machine overload it.
type Estimate struct {
	Request   float64    `json:"request"`
	Limit     float64    `json:"limit"`
	Mean      float64    `json:"mean"`
	StdDev    float64    `json:"stddev"`
	Quantiles []Quantile `json:"quantiles,omitempty"`
}

// Recommendation is a recommender's answer at one instant.
type Recommendation struct {
	CPU    Estimate `json:"cpu"`
	Memory Estimate `json:"memory"`
	// Samples is how many windows the answer rests on.
	Samples int `json:"samples"`
	// Why says in a few words what decided the limits.
	Why string `json:"why"`
}

// Recommender learns one task's usage. Implementations are not safe for
// concurrent use; use one per task.
type Recommender interface {
	// Kind names the algorithm ("vpa", "autopilot", "fathom", ...).
	Kind() string
	// Observe feeds one window. Windows must come in time order; a window
	// not after the previous one is ignored.
	Observe(w Window)
	// ObserveOOM reports that the task was killed for memory at time at
	// while using memory bytes (its limit, usually); the next
	// recommendation rises at once.
	ObserveOOM(at time.Time, memory float64)
	// Limit is the limit the recommender would set at now, cheaply.
	Limit(now time.Time) Size
	// Recommend is the full answer at now.
	Recommend(now time.Time) Recommendation
}

// ErrUnknownKind is returned for a recommender kind that does not exist.
var ErrUnknownKind = errors.New("unknown recommender kind")

// Kinds lists the recommenders New can build, in display order.
var Kinds = []string{"provisioned", "vpa", "autopilot", "fathom"}

// New returns a fresh recommender of the given kind with default parameters.
// "provisioned" is not a recommender (it has no memory of usage) and is
// handled by evaluation code directly.
func New(kind string) (Recommender, error) {
	switch kind {
	case "vpa":
		return NewVPA(DefaultVPAParams()), nil
	case "autopilot":
		return NewAutopilot(DefaultAutopilotParams()), nil
	case "fathom":
		return NewFathom(DefaultFathomParams()), nil
	}
	return nil, fmt.Errorf("%w %q: want one of vpa, autopilot, fathom", ErrUnknownKind, kind)
}

// envelope is the persisted form of a recommender: its kind and its state.
type envelope struct {
	Kind  string          `json:"kind"`
	State json.RawMessage `json:"state"`
}

// Marshal encodes a recommender's full state with its kind.
func Marshal(r Recommender) ([]byte, error) {
	st, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{Kind: r.Kind(), State: st})
}

// Unmarshal decodes what Marshal encoded.
func Unmarshal(b []byte) (Recommender, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode recommender: %w", err)
	}
	var r Recommender
	switch e.Kind {
	case "vpa":
		r = &VPA{}
	case "autopilot":
		r = &Autopilot{}
	case "fathom":
		r = &Fathom{}
	default:
		return nil, fmt.Errorf("decode recommender: %w %q", ErrUnknownKind, e.Kind)
	}
	if err := json.Unmarshal(e.State, r); err != nil {
		return nil, fmt.Errorf("decode %s recommender state: %w", e.Kind, err)
	}
	return r, nil
}

// Moments keeps exponentially decayed mean and variance of a signal.
type Moments struct {
	HalfLife float64 `json:"half_life_s"`
	Last     int64   `json:"last"`
	W        float64 `json:"w"`
	Mean     float64 `json:"mean"`
	M2       float64 `json:"m2"` // decayed sum of weighted squared deviations
	N        int     `json:"n"`
	// the decay of the last step, kept: windows mostly come a fixed step apart
	lastDt  int64
	lastDec float64
}

// Add adds x observed at unix time t.
func (m *Moments) Add(x float64, t int64) {
	if m.N > 0 && m.HalfLife > 0 && t > m.Last {
		if dt := t - m.Last; dt != m.lastDt || m.lastDec == 0 {
			m.lastDt, m.lastDec = dt, math.Exp2(-float64(dt)/m.HalfLife)
		}
		d := m.lastDec
		m.W *= d
		m.M2 *= d
	}
	m.Last = t
	m.N++
	m.W++
	delta := x - m.Mean
	m.Mean += delta / m.W
	m.M2 += delta * (x - m.Mean)
}

// StdDev is the decayed standard deviation (0 with fewer than two samples).
func (m *Moments) StdDev() float64 {
	if m.N < 2 || m.W <= 1 {
		return 0
	}
	return math.Sqrt(max(m.M2/m.W, 0))
}

// quantiles reads standard quantiles from a histogram.
func quantiles(h *DecayingHistogram) []Quantile {
	if h == nil || h.Empty() {
		return nil
	}
	ps := []float64{0.5, 0.9, 0.95, 0.99}
	out := make([]Quantile, len(ps))
	for i, p := range ps {
		out[i] = Quantile{P: p, Value: h.Percentile(p)}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].P < out[j].P })
	return out
}

// unix returns t as unix seconds.
func unix(t time.Time) int64 { return t.Unix() }
