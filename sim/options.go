package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// The policies the simulator knows, in display order.
const (
	PolicyProvisioned = predictor.PolicyProvisioned // the trace's own sizes
	PolicyOracle      = "oracle"                    // each window's usage, known in advance
)

// Policies lists every policy Run accepts, in display order.
var Policies = []string{PolicyProvisioned, "vpa", "autopilot", "fathom", PolicyOracle}

// ErrInvalid marks bad simulator input (check with errors.Is).
var ErrInvalid = errors.New("invalid simulation input")

// Failure makes Machines used machines fail at time At after the workload's
// start. Failed machines do not come back; their tasks are re-placed at once.
type Failure struct {
	Machines int
	At       time.Duration
}

// ParseFailure reads "N@T", e.g. "2@3d" or "1@36h" (T: a Go duration, or
// days with a "d" suffix).
func ParseFailure(s string) (Failure, error) {
	n, t, ok := strings.Cut(strings.TrimSpace(s), "@")
	if !ok {
		return Failure{}, fmt.Errorf("%w: --fail %q: want N@T, e.g. 2@3d (two machines fail 3 days in)", ErrInvalid, s)
	}
	k, err := strconv.Atoi(n)
	if err != nil || k < 1 {
		return Failure{}, fmt.Errorf("%w: --fail %q: N must be a whole number ≥ 1", ErrInvalid, s)
	}
	d, err := ParseDuration(t)
	if err != nil || d < 0 {
		return Failure{}, fmt.Errorf("%w: --fail %q: T must be a duration ≥ 0 such as 36h or 3d", ErrInvalid, s)
	}
	return Failure{Machines: k, At: d}, nil
}

// ParseDuration is time.ParseDuration that also accepts whole or decimal
// days ("7d", "1.5d").
func ParseDuration(s string) (time.Duration, error) {
	if v, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: want e.g. 7d, 36h or 90m", s)
		}
		return time.Duration(f * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want e.g. 7d, 36h or 90m", s)
	}
	return d, nil
}

// Options configure Run. The zero value runs every policy with the default
// machine shape, ε = 0.001 and hourly consolidation.
type Options struct {
	// Policies to run, in output order (default: Policies).
	Policies []string
	// Machine is the shape of every machine (CPU cores, memory bytes). Zero
	// fields take the workload's largest provisioned size.
	Machine models.Size
	// OverloadRisk is ε for the scheduler's risk bound (0: 0.001).
	OverloadRisk float64
	// Risk is the scheduler's risk model (default Gaussian).
	Risk scheduler.RiskModel
	// Correlation is ρ per resource for the scheduler's correlation-aware
	// bound (scheduler.Options.Correlation); set it to replay with a
	// correlation known beforehand. nil (the default): ρ is the predictor's
	// running estimate, as the server's --risk-correlation online (the
	// σ-weighted pairwise correlation of window-to-window changes of the
	// windows observed so far, predictor/step.go: no look-ahead; 0 with the
	// bernstein model, which needs independent tasks).
	Correlation *scheduler.Resources
	// CorrelationFromTrace, with Correlation nil, takes ρ from the whole
	// workload at once instead (EstimateStepCorrelation: a look-ahead of
	// two numbers; Report.StepCorrelation has it either way).
	CorrelationFromTrace bool
	// Failures to inject.
	Failures []Failure
	// Seed makes machine choice for failures and the scheduler's tie-breaks
	// reproducible.
	Seed uint64
	// WarmUp and ChangeThreshold mean what they mean in
	// predictor.EvalOptions (24 h and 0.05 when zero): the per-task
	// figures skip each task's first WarmUp, and count a limit change past
	// ChangeThreshold.
	WarmUp          time.Duration
	ChangeThreshold float64
	// ResizeDeadband and ShrinkDelay are the control loop's sizing policy
	// (controller.SizingPolicy: 0.1 and 15 min when zero, as the server's
	// --resize-deadband and --resize-min-interval).
	ResizeDeadband float64
	ShrinkDelay    time.Duration
	// ConsolidateEvery is how often, in windows, the control loop drains
	// machines whose tasks fit on other machines in use (0: 12, an hour;
	// negative: never); ConsolidateBudget is how many tasks one pass may
	// move (0: 10, the server's --drain-budget).
	ConsolidateEvery  int
	ConsolidateBudget int
	// StepSpread is the predictor's step spread (predictor.Config.
	// StepSpread): the predicted usage distribution fathom's tasks are
	// placed with has mean = max(the recommender's decayed mean, the last
	// window's usage) and standard deviation = StepSpread × the RMS change
	// of the task's usage from one window to the next (0:
	// predictor.DefaultStepSpread, 1.15; negative: the recommender's own
	// mean and standard deviation).
	StepSpread float64
	// Budget is the violation budget the fathom policy's recommenders
	// steer to (models.DefaultViolationBudget when zero; `fathom sim
	// --violation-budget`, as `fathom server` and `fathom model eval`).
	Budget models.ViolationBudget
	// New builds a recommender for a policy (when nil, the fathom policy
	// gets the predictor's fleet of recommenders steering to Budget and
	// the others models.New).
	New func(policy string) (models.Recommender, error)
	// Workers is how many policies run at once (0: GOMAXPROCS). Policies
	// are independent, so results do not depend on it.
	Workers int
	// Progress, when set, is called as windows are simulated (from any
	// goroutine) with the windows done and the total over all policies.
	Progress func(done, total int)
	// SampleTasks is how many tasks get a per-window record of usage,
	// request and limit in Report.TaskSeries (0: none).
	SampleTasks int
	// Timeseries asks for one Point per policy per window in
	// Report.Timeseries.
	Timeseries bool
}

func (o *Options) normalize(w *Workload) error {
	if len(o.Policies) == 0 {
		o.Policies = Policies
	}
	seen := map[string]bool{}
	for _, p := range o.Policies {
		if seen[p] {
			return fmt.Errorf("%w: policy %q is listed twice", ErrInvalid, p)
		}
		seen[p] = true
		if p == PolicyProvisioned || p == PolicyOracle {
			continue
		}
		if !slices.Contains(Policies, p) && o.New == nil {
			return fmt.Errorf("%w: unknown policy %q: use %s", ErrInvalid, p, strings.Join(Policies, ","))
		}
	}
	check := o.New // nil stays nil: the predictor then builds a fleet steering to Budget
	if check == nil {
		check = models.New
	}
	for _, p := range o.Policies {
		if p == PolicyProvisioned || p == PolicyOracle {
			continue
		}
		if _, err := check(p); err != nil {
			return fmt.Errorf("%w: policy %q: %v", ErrInvalid, p, err)
		}
	}
	def := w.LargestProvisioned()
	if o.Machine.CPU == 0 {
		o.Machine.CPU = def.CPU
	}
	if o.Machine.Memory == 0 {
		o.Machine.Memory = def.Memory
	}
	if !(o.Machine.CPU > 0 && o.Machine.Memory > 0) {
		return fmt.Errorf("%w: machine shape %v cores / %v bytes must be > 0 (give --machine-cpu and --machine-memory)", ErrInvalid, o.Machine.CPU, o.Machine.Memory)
	}
	if o.OverloadRisk == 0 {
		o.OverloadRisk = scheduler.DefaultOverloadRisk
	}
	if !(o.OverloadRisk > 0 && o.OverloadRisk < 0.5) {
		return fmt.Errorf("%w: overload risk %v must be in (0, 0.5), e.g. 0.001", ErrInvalid, o.OverloadRisk)
	}
	if o.WarmUp == 0 {
		o.WarmUp = 24 * time.Hour
	}
	if o.ChangeThreshold == 0 {
		o.ChangeThreshold = 0.05
	}
	if o.ResizeDeadband < 0 || o.ResizeDeadband >= 1 || o.ShrinkDelay < 0 {
		return fmt.Errorf("%w: resize deadband %v must be in [0, 1) and the shrink delay ≥ 0", ErrInvalid, o.ResizeDeadband)
	}
	if o.Correlation != nil {
		if err := scheduler.CheckCorrelation(*o.Correlation, o.Risk); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if o.StepSpread == 0 {
		o.StepSpread = predictor.DefaultStepSpread
	}
	if math.IsNaN(o.StepSpread) || math.IsInf(o.StepSpread, 0) {
		return fmt.Errorf("%w: step spread %v must be a finite number (e.g. 2; negative turns it off)", ErrInvalid, o.StepSpread)
	}
	if err := o.Budget.OrDefault().Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if o.ConsolidateEvery == 0 {
		o.ConsolidateEvery = 12
	}
	if o.ConsolidateBudget == 0 {
		o.ConsolidateBudget = 10
	}
	for _, f := range o.Failures {
		if f.Machines < 1 || f.At < 0 {
			return fmt.Errorf("%w: failure %d@%v: want ≥ 1 machine at a time ≥ 0", ErrInvalid, f.Machines, f.At)
		}
	}
	if o.SampleTasks < 0 {
		return fmt.Errorf("%w: sample tasks %d must be ≥ 0", ErrInvalid, o.SampleTasks)
	}
	return nil
}
