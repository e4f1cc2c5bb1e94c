package scheduler

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// RiskModel names the bound used to estimate a machine's probability of
// overload, P(Σ usage > capacity), from its tasks' predicted distributions.
//
// By default tasks are assumed independent (see "Correlated tasks" below).
// With S the summed usage, μ = Σ mean, σ² = Σ variance, a placement is
// admitted only while μ + margin ≤ capacity, where margin is the smallest
// t whose tail bound P(S − μ ≥ t) is ≤ ε:
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
//
// Correlated tasks (Options.Correlation). Tasks on one machine are rarely
// independent: VMs of one customer, replicas behind one load balancer and
// batch jobs fed by one queue surge together. With ρ the mean pairwise
// correlation of co-located tasks' usage (per resource, 0 ≤ ρ ≤ 1), the
// variance of the sum is
//
//	Var(S) = Σσᵢ² + Σ_{i≠j} ρ·σᵢσⱼ = (1−ρ)·Σσᵢ² + ρ·(Σσᵢ)²,
//
// the equicorrelation model (every pair has correlation ρ; with unequal
// pairs, ρ is their σᵢσⱼ-weighted mean, which is what the formula needs).
// RiskGaussian and RiskCantelli use it in place of Σσᵢ²: at ρ = 0 it is the
// independent bound; at ρ = 1 the Gaussian margin is z·Σσᵢ = Σ z·σᵢ, the
// sum of every task's own (1−ε)-quantile margin, which is what fully
// co-moving tasks need; in between it grows monotonically with ρ. Equal
// pairwise correlation is a modelling choice: it cannot see that two
// particular tasks always surge together, only how much co-located tasks
// do on average, which is what can be estimated from a trace (sim's
// EstimateStepCorrelation). Cantelli stays a guarantee for any
// distribution with that variance. Bernstein's inequality needs independent
// tasks and is refused with ρ > 0. The check stays O(1) per node: the node
// keeps Σσᵢ next to Σσᵢ².
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
	z     float64   // Gaussian quantile z₁₋ε
	l     float64   // ln(1/ε)
	k     float64   // Cantelli factor √((1−ε)/ε)
	rho   Resources // pairwise correlation of co-located tasks, per resource
}

// riskParams returns the risk constants of validated options.
func (o *Options) riskParams() riskParams {
	p := newRiskParams(o.Risk, o.OverloadRisk)
	p.rho = o.Correlation
	return p
}

// CheckCorrelation validates Options.Correlation for model m: each ρ in
// [0, 1], and 0 with the bernstein model (it assumes independent tasks).
func CheckCorrelation(rho Resources, m RiskModel) error {
	for r := Resource(0); r < NumResources; r++ {
		if !(rho[r] >= 0 && rho[r] <= 1) {
			return fmt.Errorf("%w: %s correlation %v must be in [0, 1] (0: independent tasks, 1: tasks that move together)", ErrInvalid, r, rho[r])
		}
		if rho[r] > 0 && m == RiskBernstein {
			return fmt.Errorf("%w: the bernstein risk model assumes independent tasks; with a correlation (%s %v) use gaussian or cantelli", ErrInvalid, r, rho[r])
		}
	}
	return nil
}

// CorrelatedVariance is the variance of a sum of tasks with pairwise
// correlation rho, from v = Σσᵢ² and s = Σσᵢ: (1−ρ)·v + ρ·s². Rounding is
// kept from taking it below v (s² ≥ v always holds for σᵢ ≥ 0).
func CorrelatedVariance(v, s, rho float64) float64 {
	if rho == 0 {
		return v
	}
	return v + rho*max(0, s*s-v)
}

// marginFor is margin for resource r with the node's Σσᵢ² = v, Σσᵢ = s and
// largest upward range b, under the configured correlation.
func (p *riskParams) marginFor(r Resource, v, s, b float64) float64 {
	return p.margin(CorrelatedVariance(v, s, p.rho[r]), b)
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
// Bernstein and Cantelli) of P(S > capacity) for summed mean mu, variance
// of the sum v (Σσᵢ² for independent tasks, CorrelatedVariance otherwise)
// and largest upward range b.
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

// ParseCorrelation reads Options.Correlation from "ρ" (both resources) or
// "ρcpu,ρmemory", e.g. "0.2" or "0.18,0.08"; "" is 0 (independent tasks).
func ParseCorrelation(s string) (Resources, error) {
	var c Resources
	if strings.TrimSpace(s) == "" {
		return c, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > int(NumResources) {
		return c, fmt.Errorf("%w: correlation %q: give one value for both resources or cpu,memory (e.g. 0.2 or 0.18,0.08)", ErrInvalid, s)
	}
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(v >= 0 && v <= 1) {
			return c, fmt.Errorf("%w: correlation %q: %q is not a number in [0, 1] (0: independent tasks, 1: tasks that move together)", ErrInvalid, s, p)
		}
		c[i] = v
	}
	if len(parts) == 1 {
		c[Memory] = c[CPU]
	}
	return c, nil
}
