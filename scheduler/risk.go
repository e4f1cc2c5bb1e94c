package scheduler

import (
	"fmt"
	"math"
)

// RiskModel names the bound used to estimate a machine's probability of
// overload, P(Σ usage > capacity), from its tasks' predicted distributions.
//
// Tasks are assumed independent. With S the summed usage, μ = Σ mean,
// σ² = Σ variance, a placement is admitted only while μ + margin ≤ capacity,
// where margin is the smallest t whose tail bound P(S − μ ≥ t) is ≤ ε:
//
//   - RiskGaussian (default): the central-limit approximation, S ~ N(μ, σ²),
//     margin = z₁₋ε·σ (3.09σ at ε = 0.001). Exact for normal usage and close
//     for many small tasks; it can under-state the risk of a machine dominated
//     by a few skewed tasks (see RiskBernstein for a guarantee).
//   - RiskBernstein: Bernstein's inequality for usage capped by the limit
//     (CPU is throttled there; memory above it is OOM-killed), with b the
//     largest cap − mean on the machine (a task without a limit is capped at
//     the machine's capacity): P(S − μ ≥ t) ≤ exp(−t² / (2(σ² + bt/3))), so
//     margin = bL/3 + √((bL/3)² + 2Lσ²), L = ln(1/ε). It holds for any
//     distribution within the caps, and is conservative when limits sit far
//     above the mean.
//   - RiskCantelli: the one-sided Chebyshev bound, needing only mean and
//     variance: margin = σ·√((1−ε)/ε) (31.6σ at ε = 0.001). Holds for any
//     distribution; very conservative.
//
// A machine whose tasks all have certain usage (σ = 0) has margin 0 under
// every model.
type RiskModel int

// The available risk models.
const (
	RiskGaussian RiskModel = iota
	RiskBernstein
	RiskCantelli
)

func (m RiskModel) String() string {
	switch m {
	case RiskGaussian:
		return "gaussian"
	case RiskBernstein:
		return "bernstein"
	case RiskCantelli:
		return "cantelli"
	}
	return fmt.Sprintf("risk(%d)", int(m))
}

// ParseRiskModel reads "gaussian", "bernstein" or "cantelli".
func ParseRiskModel(s string) (RiskModel, error) {
	switch s {
	case "gaussian", "":
		return RiskGaussian, nil
	case "bernstein":
		return RiskBernstein, nil
	case "cantelli":
		return RiskCantelli, nil
	}
	return 0, fmt.Errorf("%w: risk model %q: use gaussian, bernstein or cantelli", ErrInvalid, s)
}

// riskParams are precomputed constants of a model at one ε.
type riskParams struct {
	model RiskModel
	eps   float64
	z     float64 // Gaussian quantile z₁₋ε
	l     float64 // ln(1/ε)
	k     float64 // Cantelli factor √((1−ε)/ε)
}

func newRiskParams(m RiskModel, eps float64) riskParams {
	return riskParams{
		model: m,
		eps:   eps,
		z:     math.Sqrt2 * math.Erfinv(1-2*eps),
		l:     math.Log(1 / eps),
		k:     math.Sqrt((1 - eps) / eps),
	}
}

// margin returns the headroom above the summed mean that keeps the overload
// probability ≤ ε, for summed variance v and largest upward range b.
func (p *riskParams) margin(v, b float64) float64 {
	if v <= 0 {
		return 0
	}
	switch p.model {
	case RiskBernstein:
		a := b * p.l / 3
		return a + math.Sqrt(a*a+2*p.l*v)
	case RiskCantelli:
		return p.k * math.Sqrt(v)
	}
	return p.z * math.Sqrt(v)
}

// OverloadProbability returns the model's estimate (an upper bound for
// Bernstein and Cantelli) of P(S > capacity) for summed mean mu, summed
// variance v and largest upward range b.
func OverloadProbability(m RiskModel, capacity, mu, v, b float64) float64 {
	t := capacity - mu
	if t <= 0 {
		return 1
	}
	if v <= 0 {
		return 0
	}
	switch m {
	case RiskBernstein:
		return math.Min(1, math.Exp(-t*t/(2*(v+b*t/3))))
	case RiskCantelli:
		return v / (v + t*t)
	}
	return 0.5 * math.Erfc(t/math.Sqrt(2*v))
}
