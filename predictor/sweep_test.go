package predictor

import (
	"math"
	"testing"

	"pgregory.net/rapid"
)

// naiveEnvelope is the dumb twin of markPareto + Envelope: for every point,
// look at every other; keep it unless one is at least as good on both
// counts and better on one (or equal and earlier).
func naiveEnvelope(pts []SweepPoint) []SweepPoint {
	var out []SweepPoint
	for i, a := range pts {
		dominated := false
		for j, b := range pts {
			if i != j && b.Violations <= a.Violations && b.Footprint <= a.Footprint &&
				(b.Violations < a.Violations || b.Footprint < a.Footprint || j < i) {
				dominated = true
			}
		}
		if !dominated {
			out = append(out, a)
		}
	}
	// insertion sort by violations
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Violations < out[j-1].Violations; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// naiveAt reads the envelope at v by scanning for the closest points on
// each side and interpolating in log violations.
func naiveAt(env []SweepPoint, v float64) (float64, bool) {
	lo, hi := -1, -1
	for i, p := range env {
		if p.Violations <= v && (lo < 0 || p.Violations > env[lo].Violations) {
			lo = i
		}
		if p.Violations >= v && (hi < 0 || p.Violations < env[hi].Violations) {
			hi = i
		}
	}
	if lo < 0 || hi < 0 {
		return 0, false
	}
	a, b := env[lo], env[hi]
	if a.Violations == b.Violations {
		return a.Footprint, true
	}
	if a.Violations <= 0 {
		return a.Footprint + (b.Footprint-a.Footprint)*(v-a.Violations)/(b.Violations-a.Violations), true
	}
	f := (math.Log(v) - math.Log(a.Violations)) / (math.Log(b.Violations) - math.Log(a.Violations))
	return a.Footprint + f*(b.Footprint-a.Footprint), true
}

func genPoints(t *rapid.T) []SweepPoint {
	n := rapid.IntRange(1, 25).Draw(t, "n")
	pts := make([]SweepPoint, n)
	for i := range pts {
		pts[i].Policy, pts[i].Resource = "vpa", "cpu"
		// Coarse values so that ties happen.
		pts[i].Violations = float64(rapid.IntRange(0, 40).Draw(t, "v")) / 1000
		pts[i].Footprint = float64(rapid.IntRange(1, 40).Draw(t, "f")) / 20
	}
	return pts
}

// The envelope and its reading match the dumb twins; the envelope falls as
// violations rise; the conservative reading is at most the interpolated one
// and at least the next point's footprint.
func TestEnvelopeAgainstNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pts := genPoints(t)
		markPareto(pts)
		env := Envelope(pts, "vpa", "cpu")
		want := naiveEnvelope(pts)
		if len(env) != len(want) {
			t.Fatalf("envelope %v, naive %v", env, want)
		}
		for i := range env {
			if env[i].Violations != want[i].Violations || env[i].Footprint != want[i].Footprint {
				t.Fatalf("envelope[%d] %+v, naive %+v", i, env[i], want[i])
			}
			if i > 0 && !(env[i].Violations > env[i-1].Violations && env[i].Footprint < env[i-1].Footprint) {
				t.Fatalf("envelope not strictly falling at %d: %+v after %+v", i, env[i], env[i-1])
			}
		}
		v := float64(rapid.IntRange(0, 45).Draw(t, "at")) / 1000
		got := EnvelopeAtRate(env, v)
		f, ok := naiveAt(env, v)
		if got.InRange != ok {
			t.Fatalf("at %v: in range %v, naive %v", v, got.InRange, ok)
		}
		if !ok {
			return
		}
		if math.Abs(got.Footprint-f) > 1e-9 {
			t.Fatalf("at %v: %v, naive %v (env %+v)", v, got.Footprint, f, env)
		}
		if got.Conservative > got.Footprint+1e-12 || got.Conservative < got.Above.Footprint-1e-12 {
			t.Fatalf("at %v: conservative %v outside [%v, %v]", v, got.Conservative, got.Above.Footprint, got.Footprint)
		}
	})
}

// A worked example: Compare picks the better baseline in range and never
// extrapolates.
func TestCompareAtEqualViolations(t *testing.T) {
	pt := func(pol string, v, f float64) SweepPoint {
		return SweepPoint{Result: Result{Policy: pol, Resource: "cpu", Violations: v, Footprint: f}}
	}
	pts := []SweepPoint{
		pt("vpa", 0.001, 0.8), pt("vpa", 0.004, 0.5), pt("vpa", 0.016, 0.3), pt("vpa", 0.004, 0.9),
		pt("autopilot", 0.002, 0.7), pt("autopilot", 0.008, 0.45),
		pt("lonely", 0.1, 0.1),
	}
	markPareto(pts)
	f := pt("fathom", 0.002, 0.3)
	f.Budget = 0.002
	c := Compare(f, pts, []string{"vpa", "autopilot", "lonely"}, true)
	// vpa at 0.002: halfway in log between 0.001 (0.8) and 0.004 (0.5) = 0.65.
	if c.Baselines[0].Footprint < 0.6499 || c.Baselines[0].Footprint > 0.6501 {
		t.Errorf("vpa at 0.2%%: %v, want 0.65", c.Baselines[0].Footprint)
	}
	if c.Best != "vpa" || math.Abs(c.Ratio-0.3/0.65) > 1e-9 || c.AchievedOverBudget != 1 {
		t.Errorf("best %s ratio %v achieved %v; want vpa, %v, 1", c.Best, c.Ratio, c.AchievedOverBudget, 0.3/0.65)
	}
	if c.Baselines[2].InRange {
		t.Error("a baseline with no point at or below fathom's rate was read (extrapolated)")
	}
	// The conservative reading extends vpa's next segment (0.004→0.016)
	// back to 0.002: 0.5 + 0.2 × 0.5 = 0.6.
	if e := c.Baselines[0]; math.Abs(e.Conservative-0.6) > 1e-9 || math.Abs(c.RatioConservative-0.3/0.6) > 1e-9 {
		t.Errorf("conservative %v (ratio %v), want 0.6 (0.5)", e.Conservative, c.RatioConservative)
	}
}
