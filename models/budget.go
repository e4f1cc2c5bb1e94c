package models

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ViolationBudget is the share of task-windows whose usage may exceed the
// limit, per resource, as a fraction (0.005 = 0.5%). For CPU a violation
// is a window throttled at its limit; for memory it is a window whose peak
// exceeds the limit (an OOM kill in production). It is what an operator
// states; Fathom's recommenders steer their limits so that the share of
// windows over the limit across the fleet matches it (see BudgetPool).
type ViolationBudget struct {
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
}

// DefaultViolationBudget is the budget when none is given: 0.5% of CPU
// windows may be throttled (about 1.4 windows a day per task), 0.05% of
// memory windows may exceed the limit (about one OOM risk a week per task).
func DefaultViolationBudget() ViolationBudget { return ViolationBudget{CPU: 0.005, Memory: 0.0005} }

// MaxViolationBudget bounds each resource's budget: beyond it a limit no
// longer bounds usage in any useful sense.
const MaxViolationBudget = 0.5

// ErrBadBudget is wrapped by every error about a violation budget.
var ErrBadBudget = errors.New("bad violation budget")

// Validate reports a budget that cannot be steered to.
func (b ViolationBudget) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"cpu", b.CPU}, {"memory", b.Memory}} {
		if !(r.v > 0) || r.v > MaxViolationBudget || math.IsInf(r.v, 0) {
			return fmt.Errorf("%w: %s=%v: want a fraction of windows in (0, %g], e.g. cpu=0.005 (0.5%%) or memory=0.05%%", ErrBadBudget, r.name, r.v, MaxViolationBudget)
		}
	}
	return nil
}

// OrDefault returns b with zero fields taken from DefaultViolationBudget.
func (b ViolationBudget) OrDefault() ViolationBudget {
	d := DefaultViolationBudget()
	if b.CPU == 0 {
		b.CPU = d.CPU
	}
	if b.Memory == 0 {
		b.Memory = d.Memory
	}
	return b
}

// String renders the budget as ParseViolationBudget reads it.
func (b ViolationBudget) String() string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return "cpu=" + f(b.CPU) + ",memory=" + f(b.Memory)
}

// ParseViolationBudget reads "cpu=0.005,memory=0.0005": comma-separated
// resource=share pairs, the share a fraction or a percentage ("0.5%").
// A resource not named keeps the default; "" is the default budget.
func ParseViolationBudget(s string) (ViolationBudget, error) {
	b := DefaultViolationBudget()
	s = strings.TrimSpace(s)
	if s == "" {
		return b, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return ViolationBudget{}, fmt.Errorf("%w %q: want resource=share pairs such as cpu=0.005,memory=0.0005", ErrBadBudget, s)
		}
		if seen[k] {
			return ViolationBudget{}, fmt.Errorf("%w %q: %s given twice", ErrBadBudget, s, k)
		}
		seen[k] = true
		scale := 1.0
		if strings.HasSuffix(v, "%") {
			v, scale = strings.TrimSpace(strings.TrimSuffix(v, "%")), 0.01
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return ViolationBudget{}, fmt.Errorf("%w: %s=%q is not a number; give a fraction (0.005) or a percentage (0.5%%)", ErrBadBudget, k, v)
		}
		x *= scale
		switch k {
		case "cpu":
			b.CPU = x
		case "memory", "mem":
			b.Memory = x
		default:
			return ViolationBudget{}, fmt.Errorf("%w: unknown resource %q; want cpu or memory", ErrBadBudget, k)
		}
	}
	if err := b.Validate(); err != nil {
		return ViolationBudget{}, err
	}
	return b, nil
}

// Set parses s with ParseViolationBudget into b (so a *ViolationBudget is
// a command-line flag value, as `--violation-budget`).
func (b *ViolationBudget) Set(s string) error {
	v, err := ParseViolationBudget(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Type names the flag value's form.
func (*ViolationBudget) Type() string { return "cpu=F,memory=F" }

func (b ViolationBudget) of(res int) float64 {
	if res == 0 {
		return b.CPU
	}
	return b.Memory
}

// SteerParams tune how a fleet tracks its violation budget.
type SteerParams struct {
	// Gain is how far the fleet's log λ moves, per resource (CPU,
	// memory), for a day's worth of budgeted misses: each window over the
	// limit steps log λ up by η = Gain / (budget × the fleet's windows per
	// day) and each window within it steps it down by η × budget, so λ
	// stands still when the share of windows over the limit is the budget
	// (the adaptive update of Gibbs & Candès' adaptive conformal
	// inference, applied to the overrun weight). Scaling η by the fleet's
	// expected misses makes a fleet of any size and budget correct its
	// rate in about the same number of days.
	Gain [2]float64 `json:"gain"`
	// MaxStep bounds η (a small fleet with a small budget expects few
	// misses a day; one miss must not move λ too far).
	MaxStep float64 `json:"max_step"`
	// WarmUp: windows in a task's first WarmUp seconds are not counted
	// (its first day is sized by the young-task rules, and `fathom model
	// eval` does not score it either).
	WarmUp float64 `json:"warm_up_s"`
	// MaxLog bounds |log λ| (anti-windup when a budget cannot be met).
	MaxLog float64 `json:"max_log"`
}

// priorLogLambda maps a budget to the log λ a fleet starts from: the λ at
// which the fathom ensemble with DefaultFathomParams' weights, not steered,
// had that share of windows over the limit on the tuning split (Bitbrains
// VMs 1-150; docs/predictor.md), interpolated in log-log and extended flat.
// The fleet's steering corrects it on any other data; a good start only
// shortens the transient.
func priorLogLambda(res int, budget float64) float64 {
	// {log λ, violation share}, λ increasing.
	table := [2][][2]float64{
		{{-1.386, 0.009939}, {-0.693, 0.006409}, {0, 0.005217}, {0.693, 0.004458}, {1.386, 0.003763}, {2.079, 0.002808}, {2.773, 0.001616}},
		{{-1.386, 0.001031}, {-0.693, 0.000775}, {0, 0.000619}, {0.693, 0.000482}, {1.386, 0.000390}, {2.079, 0.000308}, {2.773, 0.000273}},
	}[res]
	if !(budget > 0) {
		return 0
	}
	lb := math.Log(budget)
	if lb >= math.Log(table[0][1]) {
		return table[0][0]
	}
	for i := 1; i < len(table); i++ {
		hi, lo := math.Log(table[i-1][1]), math.Log(table[i][1])
		if lb >= lo {
			f := (hi - lb) / (hi - lo)
			return table[i-1][0] + f*(table[i][0]-table[i-1][0])
		}
	}
	return table[len(table)-1][0]
}

// BudgetPool is what the recommenders of one fleet share to meet their
// violation budget: one overrun weight λ per resource. Every fathom
// recommender prices its candidate limits as size + λ × overrun cost (the
// Lagrangian of "least total limit for a given number of windows over the
// limit"), so one λ for the whole fleet sizes big tasks tightly and small
// ones generously, for the fewest total limit at that many violations; the
// pool moves log λ up by Gain on every window of any task over its limit
// and down by Gain × budget on every other, so that the fleet's share of
// windows over the limit converges to the budget on any data, however
// bursty. (Steering each task to the budget on its own misses instead
// equalises the tasks' shares and costs far more capacity for the same
// total: see docs/predictor.md.)
//
// Updates are grouped in 5-minute slots: misses recorded during a slot move
// λ at the first read or write of a later slot, so recommenders stepped
// slot by slot (predictor.Evaluate, the simulator) see the same λ whatever
// the order within a slot and the figures are deterministic. It is safe for
// concurrent use; it does no I/O and reads no clock (time comes with every
// window).
type BudgetPool struct {
	mu    sync.Mutex
	b     ViolationBudget
	steer SteerParams
	st    PoolState
}

// PoolState is a pool's persisted form.
type PoolState struct {
	// LogLambda is log λ per resource (CPU, memory).
	LogLambda [2]float64 `json:"log_lambda"`
	// Slot is the 5-minute slot (unix seconds / 300) of the latest update.
	Slot int64 `json:"slot"`
	// Pending counts this slot's windows and misses per resource.
	Windows [2]int `json:"windows"`
	Misses  [2]int `json:"misses"`
	// PerSlot is the fleet's windows per 5-minute slot, averaged over
	// about a day.
	PerSlot [2]float64 `json:"per_slot"`
	// Totals since the pool started, for explanations.
	TotalWindows [2]int64 `json:"total_windows"`
	TotalMisses  [2]int64 `json:"total_misses"`
}

// NewBudgetPool returns a pool for budget b (zero fields take the default)
// starting from the prior λ for it.
func NewBudgetPool(b ViolationBudget, s SteerParams) *BudgetPool {
	b = b.OrDefault()
	p := &BudgetPool{b: b, steer: s}
	for r := range 2 {
		p.st.LogLambda[r] = priorLogLambda(r, b.of(r))
	}
	return p
}

// Budget is the pool's budget.
func (p *BudgetPool) Budget() ViolationBudget { return p.b }

// State returns the pool's state for persisting.
func (p *BudgetPool) State() PoolState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// Restore replaces the pool's state (from State).
func (p *BudgetPool) Restore(s PoolState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st = s
}

// advance applies the misses of slots before t's.
func (p *BudgetPool) advance(t int64) {
	s := t / WindowSeconds
	if s <= p.st.Slot {
		return
	}
	elapsed := float64(s - p.st.Slot)
	if p.st.Slot == 0 {
		elapsed = 1
	}
	p.st.Slot = s
	const slotsPerDay = 86400 / WindowSeconds
	for r := range 2 {
		n := float64(p.st.Windows[r])
		if n == 0 {
			continue
		}
		if p.st.PerSlot[r] == 0 {
			p.st.PerSlot[r] = n / elapsed
		} else {
			keep := math.Pow(1-1.0/slotsPerDay, elapsed)
			p.st.PerSlot[r] = keep*p.st.PerSlot[r] + (1-keep)*n/elapsed
		}
		a := p.b.of(r)
		eta := p.steer.Gain[r] / max(a*slotsPerDay*p.st.PerSlot[r], 1e-9)
		if p.steer.MaxStep > 0 {
			eta = min(eta, p.steer.MaxStep)
		}
		d := eta * (float64(p.st.Misses[r]) - a*n)
		p.st.LogLambda[r] = min(max(p.st.LogLambda[r]+d, -p.steer.MaxLog), p.steer.MaxLog)
		p.st.Windows[r], p.st.Misses[r] = 0, 0
	}
}

// record counts one task-window of resource res at t, over its limit or not.
func (p *BudgetPool) record(res int, t int64, miss bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(t)
	p.st.Windows[res]++
	p.st.TotalWindows[res]++
	if miss {
		p.st.Misses[res]++
		p.st.TotalMisses[res]++
	}
}

// logLambda is log λ of resource res as of t.
func (p *BudgetPool) logLambda(res int, t int64) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(t)
	return p.st.LogLambda[res]
}

// Factory builds the recommenders of one fleet: every fathom recommender
// it builds tracks the budget jointly with the others through one
// BudgetPool. Use one Factory per fleet and per replay: a server, one
// simulation run, one evaluation (predictor.Config.Budget and
// predictor.EvalOptions.Budget make one). New has models.New's signature.
type Factory struct {
	Params FathomParams
	Pool   *BudgetPool
}

// NewFactory returns a factory for a fleet with budget b (zero fields take
// the default) and DefaultFathomParams otherwise.
func NewFactory(b ViolationBudget) *Factory {
	p := DefaultFathomParams()
	p.Budget = b.OrDefault()
	return NewFactoryWith(p)
}

// NewFactoryWith returns a factory building fathom recommenders with p
// (its Budget and Steer drive the pool).
func NewFactoryWith(p FathomParams) *Factory {
	p.Budget = p.Budget.OrDefault()
	return &Factory{Params: p, Pool: NewBudgetPool(p.Budget, p.Steer)}
}

// New returns a fresh recommender of the given kind: fathom ones join the
// factory's pool; the others are models.New's.
func (f *Factory) New(kind string) (Recommender, error) {
	if kind == "fathom" {
		r := NewFathom(f.Params)
		r.pool = f.Pool
		return r, nil
	}
	return New(kind)
}

// Pooled reports whether the recommender steers its budget with a fleet.
func (f *Fathom) Pooled() bool { return f.pool != nil }

// Attach joins a recommender decoded by Unmarshal to the factory's pool
// (a no-op for kinds that do not steer).
func (f *Factory) Attach(r Recommender) {
	if fr, ok := r.(*Fathom); ok {
		fr.pool = f.Pool
	}
}

// Unmarshal decodes what Marshal encoded and attaches it to the pool.
func (f *Factory) Unmarshal(b []byte) (Recommender, error) {
	r, err := Unmarshal(b)
	if err != nil {
		return nil, err
	}
	f.Attach(r)
	return r, nil
}

var _ = sort.Float64s
