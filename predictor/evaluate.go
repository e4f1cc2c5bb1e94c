package predictor

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/fathom-scheduler/fathom/models"
)

// PolicyProvisioned names the reference policy whose limit is the size the
// owner provisioned (Series.Provisioned).
const PolicyProvisioned = "provisioned"

// EvalOptions configure Evaluate.
type EvalOptions struct {
	// Policies to evaluate, in output order: "provisioned" or any
	// models.Kinds entry. Empty means models.Kinds.
	Policies []string
	// WarmUp is skipped at the start of every task (24 h when zero).
	WarmUp time.Duration
	// ChangeThreshold is the relative change that counts as a limit change
	// (0.05 when zero).
	ChangeThreshold float64
	// Workers is how many tasks are replayed at once (GOMAXPROCS when
	// zero). Tasks are independent, so the figures do not depend on it.
	Workers int
	// New builds a recommender for a policy, so that callers can evaluate
	// tuned parameters. When nil, one models.Factory with Budget builds
	// every task's recommenders: the fathom ones steer the fleet's share of
	// windows over the limit to the budget together, as in a server.
	New func(policy string) (models.Recommender, error)
	// Budget is the violation budget the fathom recommenders steer to when
	// New is nil (zero fields: models.DefaultViolationBudget).
	Budget models.ViolationBudget
	// NoOOMFeedback turns off what happens in production after a memory
	// violation: the task is OOM-killed at its limit and the recommender
	// hears of it (ObserveOOM) before the next window. On by default, as in
	// the reference replay of the VPA (its OOM bump).
	NoOOMFeedback bool
	// Progress, when set, is called after each task (from any goroutine).
	Progress func(done, total int)
}

// Result is one policy's figures for one resource, as `fathom model eval`
// and `fathom sim` print them. Fractions, not percent.
type Result struct {
	Policy            string  `json:"policy"`
	Resource          string  `json:"resource"` // "cpu" or "memory"
	Slack             float64 `json:"slack"`    // Σ(limit−usage)⁺ / Σlimit
	Footprint         float64 `json:"footprint"`
	Violations        float64 `json:"violations"`        // windows with usage > limit
	SevereViolations  float64 `json:"severe_violations"` // windows with usage > 1.2 × limit
	ChangesPerTaskDay float64 `json:"changes_per_task_day"`
	Windows           int     `json:"windows"`
	Tasks             int     `json:"tasks"`
	TaskDays          float64 `json:"task_days"`
}

// Tally accumulates the sums behind a Result; tallies add up, so callers
// that replay tasks themselves (the simulator) get the same figures by
// feeding Tally.Add and calling Result.
type Tally struct {
	Limit, Usage, Slack, Provisioned float64
	Windows, Violations, Severe      int
	Changes                          int
	Tasks                            int
}

// Add records one evaluated window. prevLimit is the limit of the previous
// evaluated window of the same task (negative for the first).
func (t *Tally) Add(limit, usage, provisioned, prevLimit, changeThreshold float64) {
	t.Windows++
	t.Limit += limit
	t.Usage += usage
	t.Provisioned += provisioned
	if limit > usage {
		t.Slack += limit - usage
	}
	if usage > limit {
		t.Violations++
		if usage > 1.2*limit {
			t.Severe++
		}
	}
	if prevLimit >= 0 && changed(prevLimit, limit, changeThreshold) {
		t.Changes++
	}
}

func changed(prev, cur, threshold float64) bool {
	d := cur - prev
	if d < 0 {
		d = -d
	}
	if prev == 0 {
		return cur != 0
	}
	return d > threshold*prev
}

// Merge adds another tally.
func (t *Tally) Merge(o Tally) {
	t.Limit += o.Limit
	t.Usage += o.Usage
	t.Slack += o.Slack
	t.Provisioned += o.Provisioned
	t.Windows += o.Windows
	t.Violations += o.Violations
	t.Severe += o.Severe
	t.Changes += o.Changes
	t.Tasks += o.Tasks
}

// Result turns the tally into the published figures. Footprint is 0 when
// no provisioned sizes were given.
func (t Tally) Result(policy, resource string) Result {
	r := Result{Policy: policy, Resource: resource, Windows: t.Windows, Tasks: t.Tasks}
	r.TaskDays = float64(t.Windows) * models.WindowSeconds / 86400
	if t.Limit > 0 {
		r.Slack = t.Slack / t.Limit
	}
	if t.Provisioned > 0 {
		r.Footprint = t.Limit / t.Provisioned
	}
	if t.Windows > 0 {
		r.Violations = float64(t.Violations) / float64(t.Windows)
		r.SevereViolations = float64(t.Severe) / float64(t.Windows)
	}
	if r.TaskDays > 0 {
		r.ChangesPerTaskDay = float64(t.Changes) / r.TaskDays
	}
	return r
}

// Evaluate replays every series through every policy with no look-ahead:
// the limit for a window is asked for at the window's start, before the
// window is observed. Windows in the first WarmUp of each task are observed
// but not scored. The series are one fleet, replayed in time order across
// tasks (every window of a 5-minute slot before any of the next), so
// recommenders that steer a shared violation budget learn from each
// other's misses as they would live. Results come per policy, CPU then
// memory. It does no I/O and is deterministic for any Workers.
func Evaluate(series []Series, opts EvalOptions) ([]Result, error) {
	tt, err := EvaluateTasks(series, opts)
	if err != nil {
		return nil, err
	}
	return Summarize(tt, nil), nil
}

// TaskTallies are one task's tallies, per policy in EvalOptions.Policies
// order: [0] CPU, [1] memory.
type TaskTallies struct {
	Task     TaskKey
	Policies []string
	Tallies  [][2]Tally
}

// EvaluateTasks is Evaluate without the final sum: per-task tallies, in
// series order, so that callers can report subsets from one replay with
// Summarize. (A subset's figures then come from a fleet that also held the
// other tasks: the fathom recommenders shared one budget pool with them.)
func EvaluateTasks(series []Series, opts EvalOptions) ([]TaskTallies, error) {
	if len(opts.Policies) == 0 {
		opts.Policies = models.Kinds
	}
	if opts.WarmUp == 0 {
		opts.WarmUp = 24 * time.Hour
	}
	if opts.ChangeThreshold == 0 {
		opts.ChangeThreshold = 0.05
	}
	if err := opts.Budget.OrDefault().Validate(); err != nil {
		return nil, err
	}
	if opts.New == nil {
		opts.New = models.NewFactory(opts.Budget).New
	}
	for _, p := range opts.Policies {
		if p == PolicyProvisioned {
			continue
		}
		if _, err := opts.New(p); err != nil {
			return nil, err
		}
	}
	for i := range series {
		if err := series[i].Validate(); err != nil {
			return nil, err
		}
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// Policies whose recommenders share state across tasks (fathom's
	// budget pool) are one fleet: their replays are stepped in time order
	// across tasks (lockstep), so that they learn from the fleet's misses
	// as they would live. The others are replayed task by task.
	var fleet, alone []int
	for j, p := range opts.Policies {
		if p != PolicyProvisioned {
			if r, _ := opts.New(p); shared(r) {
				fleet = append(fleet, j)
				continue
			}
		}
		alone = append(alone, j)
	}
	newReplay := func(i, j int) *Replay {
		var rec models.Recommender
		if p := opts.Policies[j]; p != PolicyProvisioned {
			rec, _ = opts.New(p) // checked above
		}
		return NewReplay(rec, series[i].Windows[0].Start, opts)
	}
	out := make([]TaskTallies, len(series))
	for i := range series {
		out[i] = TaskTallies{Task: series[i].Task, Policies: opts.Policies, Tallies: make([][2]Tally, len(opts.Policies))}
	}
	var mu sync.Mutex
	done := make([]int, len(series)) // parts of each task replayed (0..2)
	finished := 0
	progress := func(i int) {
		if opts.Progress == nil {
			return
		}
		mu.Lock()
		done[i]++
		d := done[i] == 2
		if d {
			finished++
		}
		f := finished
		mu.Unlock()
		if d {
			opts.Progress(f, len(series))
		}
	}
	if len(fleet) > 0 {
		reps := make([][]*Replay, len(series))
		for i := range series {
			if len(series[i].Windows) == 0 {
				continue
			}
			for _, j := range fleet {
				reps[i] = append(reps[i], newReplay(i, j))
			}
		}
		lockstep(series, workers, func(i, k int) {
			w, prov := series[i].Windows[k], series[i].provisioned(k)
			for _, rp := range reps[i] {
				rp.Step(w, prov)
			}
			if k == len(series[i].Windows)-1 {
				progress(i)
			}
		})
		for i := range series {
			for x, rp := range reps[i] {
				out[i].Tallies[fleet[x]] = rp.Tallies()
			}
		}
	} else {
		for i := range series {
			progress(i)
		}
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if len(series[i].Windows) > 0 {
					for _, j := range alone {
						rp := newReplay(i, j)
						for k, w := range series[i].Windows {
							rp.Step(w, series[i].provisioned(k))
						}
						out[i].Tallies[j] = rp.Tallies()
					}
				}
				progress(i)
			}
		}()
	}
	for i := range series {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, nil
}

// shared reports whether a recommender shares state with the other tasks'
// (a fathom recommender in a budget pool).
func shared(r models.Recommender) bool {
	s, ok := r.(interface{ Pooled() bool })
	return ok && s.Pooled()
}

// Summarize sums per-task tallies (of the tasks keep accepts; all when keep
// is nil) into Results, per policy, CPU then memory. Tasks are summed in
// order, so the figures do not depend on how the replay was parallelised.
func Summarize(tt []TaskTallies, keep func(TaskKey) bool) []Result {
	if len(tt) == 0 {
		return nil
	}
	pols := tt[0].Policies
	out := make([]Result, 0, 2*len(pols))
	for j, p := range pols {
		var cpu, mem Tally
		for _, t := range tt {
			if keep != nil && !keep(t.Task) {
				continue
			}
			cpu.Merge(t.Tallies[j][0])
			mem.Merge(t.Tallies[j][1])
		}
		out = append(out, cpu.Result(p, "cpu"), mem.Result(p, "memory"))
	}
	return out
}

// Replay is one task's replay through one policy, window by window, with
// Evaluate's rules: the limit for a window is asked at its start, before the
// window is observed; windows in the task's first WarmUp are observed but not
// scored; memory above the limit is an OOM kill that the recommender hears
// of (ObserveOOM) before the next window, unless NoOOMFeedback. Evaluate
// runs it over a whole series; the simulator steps it one window at a time
// between its own decisions, so both score with the very same code.
type Replay struct {
	rec       models.Recommender // nil: the provisioned policy
	warmEnd   time.Time
	threshold float64
	oom       bool
	prev      [2]float64
	counted   bool
	tally     [2]Tally
}

// NewReplay starts a replay of a task whose first window starts at first.
// rec is the policy's recommender, nil for the provisioned policy (the
// limit is then the provisioned size given to Step). Zero WarmUp and
// ChangeThreshold in opts take Evaluate's defaults; its other fields are
// not used.
func NewReplay(rec models.Recommender, first time.Time, opts EvalOptions) *Replay {
	if opts.WarmUp == 0 {
		opts.WarmUp = 24 * time.Hour
	}
	if opts.ChangeThreshold == 0 {
		opts.ChangeThreshold = 0.05
	}
	return &Replay{rec: rec, warmEnd: first.Add(opts.WarmUp), threshold: opts.ChangeThreshold,
		oom: !opts.NoOOMFeedback, prev: [2]float64{-1, -1}}
}

// Step replays window w: it asks the limit at the window's start (the
// provisioned size for the provisioned policy), scores the window against
// it, then lets the recommender observe the window (after the OOM feedback
// when memory exceeded the limit). It returns the limit. Windows must come
// in time order.
func (r *Replay) Step(w models.Window, provisioned models.Size) models.Size {
	lim := provisioned
	if r.rec != nil {
		lim = r.rec.Limit(w.Start)
	}
	r.Score(w, lim, provisioned)
	if r.rec != nil {
		if r.oom && w.Memory > lim.Memory {
			r.rec.ObserveOOM(w.Start, lim.Memory)
		}
		r.rec.Observe(w)
	}
	return lim
}

// Score scores window w against limit lim without asking or feeding the
// recommender: for a caller that sets the limit itself (the simulator's
// oracle, whose limit is the window's own usage).
func (r *Replay) Score(w models.Window, lim, provisioned models.Size) {
	if w.Start.Before(r.warmEnd) {
		return
	}
	r.tally[0].Add(lim.CPU, w.CPU, provisioned.CPU, r.prev[0], r.threshold)
	r.tally[1].Add(lim.Memory, w.Memory, provisioned.Memory, r.prev[1], r.threshold)
	r.prev = [2]float64{lim.CPU, lim.Memory}
	r.counted = true
}

// Tallies returns the CPU and memory tallies so far; each counts the task
// once (Tasks = 1) when at least one window was scored.
func (r *Replay) Tallies() [2]Tally {
	tl := r.tally
	if r.counted {
		tl[0].Tasks, tl[1].Tasks = 1, 1
	}
	return tl
}

// FormatPercent renders a fraction as a percentage with three decimals.
func FormatPercent(f float64) string { return fmt.Sprintf("%.3f%%", 100*f) }

// Figures converts a result for a models.RegistryEntry.
func (r Result) Figures() models.EvalFigures {
	return models.EvalFigures{Policy: r.Policy, Resource: r.Resource, Slack: r.Slack, Footprint: r.Footprint,
		Violations: r.Violations, SevereViolations: r.SevereViolations, ChangesPerTaskDay: r.ChangesPerTaskDay}
}
