package predictor

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/fathom-scheduler/fathom/models"
)

// Comparing at equal violations: fathom is replayed at a range of violation
// budgets, each baseline over a grid of its own knobs (target percentile ×
// safety margin); each policy's points trace a footprint-versus-violations
// curve; a baseline's Pareto envelope (the least footprint reached at each
// violation rate) is interpolated at fathom's achieved violation rate, and
// the ratio of footprints is what fathom saves at equal violations.

// SweepOptions configure Sweep. Zero fields take the defaults below.
type SweepOptions struct {
	// Eval carries WarmUp, ChangeThreshold, Workers and NoOOMFeedback for
	// every replay (its Policies, New and Budget are ignored).
	Eval EvalOptions
	// Budget is fathom's operating point, the one the headline ratio is
	// for (models.DefaultViolationBudget when zero).
	Budget ViolationBudget
	// Scales multiply Budget to give fathom's curve (DefaultSweepScales).
	Scales []float64
	// Baselines to sweep ("vpa", "autopilot": the default).
	Baselines []string
	// Percentiles and Margins are the baselines' knob grid
	// (DefaultSweepPercentiles × DefaultSweepMargins). For vpa the
	// percentile is the target percentile of CPU and of daily memory
	// peaks; for autopilot it is the CPU percentile and the percentile of
	// the 48 h memory window (1 = its maximum, Autopilot's default).
	Percentiles []float64
	Margins     []float64
}

// Default sweep grids.
var (
	DefaultSweepScales      = []float64{0.5, 0.7, 1, 1.4, 2, 3}
	DefaultSweepPercentiles = []float64{0.9, 0.95, 0.98, 0.99, 0.995, 1}
	DefaultSweepMargins     = []float64{0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3}
)

// SweepPoint is one configuration's figures for one resource.
type SweepPoint struct {
	Result
	// Budget is fathom's violation budget for this resource (0 for a
	// baseline); Percentile and Margin are a baseline's knobs.
	Budget     float64 `json:"budget,omitempty"`
	Percentile float64 `json:"percentile,omitempty"`
	Margin     float64 `json:"margin"`
	// Pareto: no other point of the same policy and resource has both
	// fewer (or as few) violations and a smaller footprint.
	Pareto bool `json:"pareto"`
}

// EnvelopeAt is a baseline's Pareto envelope read at a violation rate.
type EnvelopeAt struct {
	Policy string `json:"policy"`
	// Footprint is the envelope interpolated at the rate (linear in log
	// violations between the two Pareto points around it); Conservative
	// is the least footprint a convex envelope through the Pareto points
	// could have there (the neighbouring segments extended), so that
	// Ratio ≤ RatioConservative brackets the uncertainty of the grid.
	Footprint    float64 `json:"footprint"`
	Conservative float64 `json:"footprint_conservative"`
	// Ratio and RatioConservative are fathom's footprint over them.
	Ratio             float64 `json:"ratio"`
	RatioConservative float64 `json:"ratio_conservative"`
	// Below and Above are the Pareto points around the rate.
	Below SweepPoint `json:"below"`
	Above SweepPoint `json:"above"`
	// InRange is false when the rate is outside the baseline's points
	// (no figure is then given: an envelope is never extrapolated).
	InRange bool `json:"in_range"`
}

// SweepComparison is fathom at one budget against the baselines'
// envelopes at its achieved violation rate.
type SweepComparison struct {
	Resource string  `json:"resource"`
	Budget   float64 `json:"budget"`
	// Default marks the comparison at SweepOptions.Budget.
	Default bool       `json:"default"`
	Fathom  SweepPoint `json:"fathom"`
	// AchievedOverBudget is Fathom.Violations / Budget.
	AchievedOverBudget float64      `json:"achieved_over_budget"`
	Baselines          []EnvelopeAt `json:"baselines"`
	// Best is the baseline with the least interpolated footprint in range
	// ("" when none is in range); Ratio is fathom's footprint over it.
	Best              string  `json:"best"`
	Ratio             float64 `json:"ratio"`
	RatioConservative float64 `json:"ratio_conservative"`
}

// SweepReport is Sweep's answer.
type SweepReport struct {
	Budget      ViolationBudget   `json:"budget"`
	Points      []SweepPoint      `json:"points"`
	Comparisons []SweepComparison `json:"comparisons"`
}

// Sweep traces fathom's footprint-versus-violations curve over budgets and
// each baseline's over its knob grid, all in one lockstep replay of the
// series (each fathom budget a fleet of its own), and compares them at
// equal violations. It does no I/O and is deterministic.
func Sweep(series []Series, o SweepOptions) (SweepReport, error) {
	if o.Budget == (ViolationBudget{}) {
		o.Budget = DefaultViolationBudget()
	}
	o.Budget = o.Budget.OrDefault()
	if err := o.Budget.Validate(); err != nil {
		return SweepReport{}, err
	}
	if len(o.Scales) == 0 {
		o.Scales = DefaultSweepScales
	}
	if len(o.Baselines) == 0 {
		o.Baselines = []string{"vpa", "autopilot"}
	}
	if len(o.Percentiles) == 0 {
		o.Percentiles = DefaultSweepPercentiles
	}
	if len(o.Margins) == 0 {
		o.Margins = DefaultSweepMargins
	}
	for _, s := range o.Scales {
		if !(s > 0) || math.IsInf(s, 0) {
			return SweepReport{}, fmt.Errorf("sweep: budget scale %v must be a finite number > 0", s)
		}
		b := ViolationBudget{CPU: o.Budget.CPU * s, Memory: o.Budget.Memory * s}
		if err := b.Validate(); err != nil {
			return SweepReport{}, fmt.Errorf("sweep: budget × %v: %w", s, err)
		}
	}
	for _, p := range o.Percentiles {
		if !(p > 0 && p <= 1) {
			return SweepReport{}, fmt.Errorf("sweep: percentile %v must be in (0, 1]", p)
		}
	}
	for _, m := range o.Margins {
		if !(m >= 0) || math.IsInf(m, 0) {
			return SweepReport{}, fmt.Errorf("sweep: margin %v must be a finite number >= 0", m)
		}
	}
	scales := slices.Clone(o.Scales)
	if !slices.Contains(scales, 1) {
		scales = append(scales, 1)
	}
	sort.Float64s(scales)
	scales = slices.Compact(scales)

	// Every configuration is a policy of one replay, named so that New can
	// build it: "fathom@<scale>", "<baseline>@<percentile>+<margin>".
	type cfg struct {
		policy        string
		scale, pc, mg float64
	}
	var cfgs []cfg
	factories := map[string]*models.Factory{}
	for _, s := range scales {
		name := "fathom@" + strconv.FormatFloat(s, 'g', -1, 64)
		factories[name] = models.NewFactory(ViolationBudget{CPU: o.Budget.CPU * s, Memory: o.Budget.Memory * s})
		cfgs = append(cfgs, cfg{policy: "fathom", scale: s})
	}
	for _, b := range o.Baselines {
		if b != "vpa" && b != "autopilot" {
			return SweepReport{}, fmt.Errorf("sweep: %w %q: baselines are vpa and autopilot", models.ErrUnknownKind, b)
		}
		for _, p := range o.Percentiles {
			for _, m := range o.Margins {
				cfgs = append(cfgs, cfg{policy: b, pc: p, mg: m})
			}
		}
	}
	names := make([]string, len(cfgs))
	for i, c := range cfgs {
		if c.policy == "fathom" {
			names[i] = "fathom@" + strconv.FormatFloat(c.scale, 'g', -1, 64)
		} else {
			names[i] = fmt.Sprintf("%s@%g+%g", c.policy, c.pc, c.mg)
		}
	}
	opts := o.Eval
	opts.Policies = names
	opts.Budget = ViolationBudget{}
	opts.New = func(name string) (models.Recommender, error) {
		if f, ok := factories[name]; ok {
			return f.New("fathom")
		}
		kind, knobs, _ := strings.Cut(name, "@")
		ps, ms, _ := strings.Cut(knobs, "+")
		p, err1 := strconv.ParseFloat(ps, 64)
		m, err2 := strconv.ParseFloat(ms, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("sweep: bad configuration %q", name)
		}
		return BaselineWith(kind, p, m)
	}
	res, err := Evaluate(series, opts)
	if err != nil {
		return SweepReport{}, err
	}
	rep := SweepReport{Budget: o.Budget}
	for i, c := range cfgs {
		for k, r := range res[2*i : 2*i+2] {
			r.Policy = c.policy
			pt := SweepPoint{Result: r, Percentile: c.pc, Margin: c.mg}
			if c.policy == "fathom" {
				pt.Budget = o.Budget.CPU * c.scale
				if k == 1 {
					pt.Budget = o.Budget.Memory * c.scale
				}
			}
			rep.Points = append(rep.Points, pt)
		}
	}
	markPareto(rep.Points)
	for _, rsc := range []string{"cpu", "memory"} {
		for _, pt := range rep.Points {
			if pt.Policy != "fathom" || pt.Resource != rsc {
				continue
			}
			def := o.Budget.CPU
			if rsc == "memory" {
				def = o.Budget.Memory
			}
			rep.Comparisons = append(rep.Comparisons, Compare(pt, rep.Points, o.Baselines, pt.Budget == def))
		}
	}
	return rep, nil
}

// BaselineWith returns a baseline recommender with its target percentile
// and safety margin set (the sweep's knobs), other parameters at their
// defaults.
func BaselineWith(kind string, percentile, margin float64) (models.Recommender, error) {
	switch kind {
	case "vpa":
		p := models.DefaultVPAParams()
		p.TargetPercentile, p.SafetyMargin = percentile, margin
		return models.NewVPA(p), nil
	case "autopilot":
		p := models.DefaultAutopilotParams()
		p.CPUPercentile, p.MemoryPercentile, p.Margin = percentile, percentile, margin
		return models.NewAutopilot(p), nil
	}
	return nil, fmt.Errorf("%w %q: baselines are vpa and autopilot", models.ErrUnknownKind, kind)
}

// markPareto sets Pareto on the points no other point of the same policy
// and resource dominates (fewer or as few violations and less footprint,
// or as little footprint and fewer violations).
func markPareto(pts []SweepPoint) {
	for i := range pts {
		pts[i].Pareto = true
		for j := range pts {
			if i == j || pts[j].Policy != pts[i].Policy || pts[j].Resource != pts[i].Resource {
				continue
			}
			a, b := pts[i], pts[j]
			if b.Violations <= a.Violations && b.Footprint <= a.Footprint &&
				(b.Violations < a.Violations || b.Footprint < a.Footprint || j < i) {
				pts[i].Pareto = false
				break
			}
		}
	}
}

// Envelope returns the Pareto points of one policy and resource in
// increasing violations (and so decreasing footprint).
func Envelope(pts []SweepPoint, policy, resource string) []SweepPoint {
	var env []SweepPoint
	for _, p := range pts {
		if p.Pareto && p.Policy == policy && p.Resource == resource {
			env = append(env, p)
		}
	}
	sort.Slice(env, func(i, j int) bool { return env[i].Violations < env[j].Violations })
	return env
}

// Compare reads each baseline's envelope at f's violation rate.
func Compare(f SweepPoint, pts []SweepPoint, baselines []string, isDefault bool) SweepComparison {
	c := SweepComparison{Resource: f.Resource, Budget: f.Budget, Default: isDefault, Fathom: f}
	if f.Budget > 0 {
		c.AchievedOverBudget = f.Violations / f.Budget
	}
	best, cons := math.Inf(1), math.Inf(1)
	for _, b := range baselines {
		e := EnvelopeAtRate(Envelope(pts, b, f.Resource), f.Violations)
		e.Policy = b
		if e.InRange {
			e.Ratio = f.Footprint / e.Footprint
			e.RatioConservative = f.Footprint / e.Conservative
			if e.Footprint < best {
				best, c.Best, c.Ratio = e.Footprint, b, e.Ratio
			}
			cons = min(cons, e.Conservative)
		}
		c.Baselines = append(c.Baselines, e)
	}
	if c.Best != "" {
		c.RatioConservative = f.Footprint / cons
	}
	return c
}

// EnvelopeAtRate interpolates an envelope (Envelope's output) at violation
// rate v: linearly in log violations between the Pareto points around v
// (linearly in violations when the lower one has none). Outside the
// points' range it answers InRange false.
func EnvelopeAtRate(env []SweepPoint, v float64) EnvelopeAt {
	var out EnvelopeAt
	if len(env) == 0 || v < env[0].Violations || v > env[len(env)-1].Violations {
		return out
	}
	out.InRange = true
	i := sort.Search(len(env), func(i int) bool { return env[i].Violations >= v })
	if env[i].Violations == v {
		out.Below, out.Above = env[i], env[i]
		out.Footprint, out.Conservative = env[i].Footprint, env[i].Footprint
		return out
	}
	lo, hi := env[i-1], env[i]
	out.Below, out.Above = lo, hi
	// at is the line through a and b read at v, in log violations (in
	// violations when a point has none: log 0 is no place).
	at := func(a, b SweepPoint) float64 {
		xa, xb, xv := math.Log(a.Violations), math.Log(b.Violations), math.Log(v)
		if a.Violations <= 0 {
			xa, xb, xv = a.Violations, b.Violations, v
		}
		return a.Footprint + (b.Footprint-a.Footprint)*(xv-xa)/(xb-xa)
	}
	out.Footprint = at(lo, hi)
	// The envelope falls as violations rise, so it is at least hi's
	// footprint here; if it is convex it also lies above its
	// neighbouring segments extended into this one.
	out.Conservative = hi.Footprint
	if i >= 2 {
		out.Conservative = max(out.Conservative, at(env[i-2], lo))
	}
	if i+1 < len(env) {
		out.Conservative = max(out.Conservative, at(hi, env[i+1]))
	}
	out.Conservative = min(out.Conservative, out.Footprint)
	return out
}
