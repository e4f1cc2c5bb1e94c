package sim

import (
	"fmt"
	"math"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
)

// SweepPoint is one policy's per-task figures with every limit scaled by
// Scale (1 = the recommender as it is).
type SweepPoint struct {
	Scale float64 `json:"scale"`
	predictor.Result
}

// MarginSweep evaluates each policy with its limits multiplied by each
// scale, through predictor.Evaluate (the code `fathom model eval` runs), to
// show how slack trades against violations as the safety margin varies.
// Scaling is applied outside the recommender: it sees the same windows, and
// OOM feedback sees the scaled limit, as in production.
func MarginSweep(series []predictor.Series, policies []string, scales []float64, newRec func(string) (models.Recommender, error)) ([]SweepPoint, error) {
	if newRec == nil {
		newRec = models.New
	}
	var out []SweepPoint
	for _, sc := range scales {
		if !(sc > 0) || math.IsInf(sc, 0) {
			return nil, fmt.Errorf("%w: margin scale %v must be a finite number > 0", ErrInvalid, sc)
		}
		res, err := predictor.Evaluate(series, predictor.EvalOptions{
			Policies: policies,
			New: func(p string) (models.Recommender, error) {
				r, err := newRec(p)
				if err != nil {
					return nil, err
				}
				return &scaled{Recommender: r, f: sc}, nil
			},
		})
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			if r.Policy == PolicyProvisioned && sc != 1 {
				continue // provisioned sizes are not scaled: one point is enough
			}
			out = append(out, SweepPoint{Scale: sc, Result: r})
		}
	}
	return out, nil
}

// scaled multiplies a recommender's limits by f.
type scaled struct {
	models.Recommender
	f float64
}

func (s *scaled) Limit(now time.Time) models.Size {
	l := s.Recommender.Limit(now)
	return models.Size{CPU: l.CPU * s.f, Memory: l.Memory * s.f}
}

func (s *scaled) Recommend(now time.Time) models.Recommendation {
	r := s.Recommender.Recommend(now)
	r.CPU.Limit *= s.f
	r.Memory.Limit *= s.f
	return r
}
