package predictor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fathom-scheduler/fathom/models"
)

// History is all the predictor needs from a metrics store: a task's usage
// windows with Start in [from, to), in time order. Implementations:
// predictor/promhistory (PromQL over the Prometheus HTTP API) and
// sim/trace (a trace in memory). They may return fewer windows than asked
// (gaps) but never windows outside the range.
type History interface {
	Windows(ctx context.Context, task TaskKey, from, to time.Time) ([]models.Window, error)
}

// ErrNoHistory is returned by Recommend for a task the predictor has never
// seen a window of.
var ErrNoHistory = errors.New("no usage history for task")

// Recommendation is what the predictor serves for one task.
type Recommendation struct {
	Task TaskKey   `json:"task"`
	At   time.Time `json:"at"`
	// Request is what the scheduler packs with; Limit what the agent enforces.
	Request models.Size `json:"request"`
	Limit   models.Size `json:"limit"`
	// CPU and Memory carry the predicted per-window usage distribution
	// (mean, stddev, quantiles) for overload-risk estimates.
	CPU    models.Estimate `json:"cpu"`
	Memory models.Estimate `json:"memory"`
	// Confidence in [0,1] grows with the history behind the answer: 0.5
	// after one day of windows, 0.9 after a week.
	Confidence float64 `json:"confidence"`
	// Next is the predicted distribution of the task's usage over the
	// coming window ([0] CPU, [1] memory), what the scheduler's
	// overload-risk bound packs with: the step distribution (step.go).
	Next [2]Dist `json:"next"`
	// Model is the recommender kind that answered.
	Model string `json:"model"`
	// Why explains the answer in a sentence.
	Why string `json:"why"`
}

// Quantiles returns the CPU and memory quantiles in one map, for display.
func (r Recommendation) Quantiles() map[string][]models.Quantile {
	return map[string][]models.Quantile{"cpu": r.CPU.Quantiles, "memory": r.Memory.Quantiles}
}

// Config configures a Predictor.
type Config struct {
	// Kind is the recommender each task gets ("fathom" when empty).
	Kind string
	// New builds a recommender. When nil, the predictor's own
	// models.Factory for Budget builds them: every task's fathom
	// recommender then steers the fleet's violation budget with the others.
	New func(kind string) (models.Recommender, error)
	// Budget is the share of task-windows whose usage may exceed the limit,
	// per resource, when New is nil (zero fields:
	// models.DefaultViolationBudget).
	Budget ViolationBudget
	// NewFor, when set, builds the recommender of one task instead of New
	// (the simulator's provisioned and oracle policies know each task's
	// trace).
	NewFor func(task TaskKey) (models.Recommender, error)
	// StepSpread scales the spread of the step distribution served in
	// Recommendation.Next (step.go; DefaultStepSpread when zero; negative:
	// the recommender's own mean and standard deviation).
	StepSpread float64
	// Lookback bounds how far back Update reads history for a task it has
	// not seen yet (8 days when zero: enough for weekly periodicity).
	Lookback time.Duration
	// ColdStart, when set and trained, sizes jobs with no history
	// (RecommendNew). Without it RecommendNew uses the spec's hints.
	ColdStart *models.ColdStart
	// Margin is added to a cold-start prediction to make the limit (1.0
	// when zero: the limit is twice the predicted need, since a first guess
	// is uncertain and the real one replaces it within the hour).
	ColdStartMargin float64
	// Window is the width of the windows the recommenders learn from
	// (models.WindowSeconds when zero). Feed and Update use it to tell
	// complete and full windows from partial ones.
	Window time.Duration
	// MinEvidence is how much measured usage (time covered by samples) a
	// task with no full window needs before its first, provisional
	// recommendation (60 s when zero).
	MinEvidence time.Duration
	// EarlyMargin and EarlyHorizon keep limits wide while a task's history
	// is short: until EarlyHorizon of usage has been seen (1 h when zero),
	// the limit is at least the peak seen × (1 + EarlyMargin ×
	// sqrt(MinEvidence / seen)). EarlyMargin is 1 when zero, so the margin
	// is 100% at 60 s of usage, 45% at 5 minutes, 13% just before an hour.
	EarlyMargin  float64
	EarlyHorizon time.Duration
}

// Predictor keeps one trained recommender per task and serves their
// recommendations. It is safe for concurrent use. It reads no clock: every
// call takes now.
type Predictor struct {
	cfg     Config
	factory *models.Factory // nil when Config.New was given
	mu      sync.Mutex
	tasks   map[TaskKey]*taskState
	corr    correlation
}

type taskState struct {
	rec  models.Recommender
	last time.Time // start of the last full window observed
	n    int       // full windows observed
	ooms int
	// seen is the start of the last complete window fed (full or not).
	seen time.Time
	fed  bool
	// scanned: windows before it were read (with or without data).
	scanned time.Time
	// early sums every complete window's usage while the history is
	// shorter than EarlyHorizon; filling is the window still filling.
	early   evidence
	filling AggregatedWindow
	hasFill bool
	// step is the window-to-window change statistic (step.go).
	step stepStats
}

// evidence is the usage seen while a task's history is young (every
// complete window, full or partial, and the one filling): how long samples
// cover, the CPU seconds used in that time, and the peaks.
type evidence struct {
	covered float64 // seconds
	cpuSecs float64
	peakCPU float64
	peakMem float64
}

func (e *evidence) add(covered, cpu, cpuPeak, mem float64) {
	e.covered += covered
	e.cpuSecs += cpu * covered
	e.peakCPU = max(e.peakCPU, cpuPeak, cpu)
	e.peakMem = max(e.peakMem, mem)
}

// New returns an empty predictor.
func New(cfg Config) (*Predictor, error) {
	if cfg.Kind == "" {
		cfg.Kind = "fathom"
	}
	if err := cfg.Budget.OrDefault().Validate(); err != nil {
		return nil, err
	}
	var factory *models.Factory
	if cfg.New == nil {
		factory = models.NewFactory(cfg.Budget)
		cfg.New = factory.New
	}
	if cfg.Lookback == 0 {
		cfg.Lookback = 8 * 24 * time.Hour
	}
	if cfg.Window <= 0 {
		cfg.Window = models.WindowSeconds * time.Second
	}
	if cfg.MinEvidence <= 0 {
		cfg.MinEvidence = time.Minute
	}
	if cfg.EarlyMargin <= 0 {
		cfg.EarlyMargin = 1
	}
	if cfg.EarlyHorizon <= 0 {
		cfg.EarlyHorizon = time.Hour
	}
	if cfg.StepSpread == 0 {
		cfg.StepSpread = DefaultStepSpread
	}
	if _, err := cfg.New(cfg.Kind); err != nil {
		return nil, err
	}
	return &Predictor{cfg: cfg, factory: factory, tasks: map[TaskKey]*taskState{}, corr: correlation{width: cfg.Window}}, nil
}

func (p *Predictor) state(task TaskKey) *taskState {
	st, ok := p.tasks[task]
	if !ok {
		st = &taskState{rec: p.newRecommender(task)}
		p.tasks[task] = st
	}
	return st
}

// newRecommender builds a task's recommender.
func (p *Predictor) newRecommender(task TaskKey) models.Recommender {
	if p.cfg.NewFor != nil {
		if rec, err := p.cfg.NewFor(task); err == nil {
			return rec
		}
	}
	rec, _ := p.cfg.New(p.cfg.Kind) // checked in New
	return rec
}

// Observe feeds windows of a task (in time order). Windows not after the
// last one observed are skipped, so feeding overlapping ranges is safe. It
// returns how many were new.
func (p *Predictor) Observe(task TaskKey, windows []models.Window) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state(task)
	n := 0
	for _, w := range windows {
		if st.n > 0 && !w.Start.After(st.last) {
			continue
		}
		p.observeFull(st, w)
		n++
	}
	return n
}

// observeFull feeds one full window to the task's recommender.
func (p *Predictor) observeFull(st *taskState, w models.Window) {
	st.rec.Observe(w)
	prev, had := st.step.last, st.step.has
	st.step.observe(w)
	if had {
		p.corr.add(&st.step, prev, w)
	}
	st.last = w.Start
	st.n++
	if !st.fed || w.Start.After(st.seen) {
		st.seen, st.fed = w.Start, true
	}
	if st.early.covered < p.cfg.EarlyHorizon.Seconds() {
		st.early.add(p.cfg.Window.Seconds(), w.CPU, w.CPUPeak, w.Memory)
	}
}

// Feed takes a task's aggregated windows (AggregateSeries output, in time
// order, possibly overlapping what was fed before) as of now:
//
//   - a complete window (ended by now) that samples cover well enough
//     (AggregatedWindow.Full) is learned by the recommender as a window;
//   - a complete window covered less (the task started or stopped inside
//     it) is never learned as a window: it only counts as early evidence
//     (usage and peaks that size the task while its history is short);
//   - the window still filling is kept as the latest partial evidence,
//     replaced by the next Feed.
//
// Windows not after the last complete one fed are skipped. It returns how
// many full windows the recommender learned.
func (p *Predictor) Feed(task TaskKey, ws []AggregatedWindow, now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state(task)
	width := p.cfg.Window
	if st.hasFill && !st.filling.Start.Add(width).After(now) {
		st.hasFill = false // complete now: it comes back as a complete window
	}
	// Windows that ended before the one just before now's were read: a
	// task without usage is not read from Lookback again every round. The
	// one just before is read again, for pushes that arrive late.
	if sc := now.Truncate(width).Add(-width); sc.After(st.scanned) {
		st.scanned = sc
	}
	n := 0
	for _, w := range ws {
		if w.Start.Add(width).After(now) {
			st.filling, st.hasFill = w, true
			continue
		}
		if st.fed && !w.Start.After(st.seen) {
			continue
		}
		if w.Full(width) {
			p.observeFull(st, w.Window)
			n++
			continue
		}
		st.seen, st.fed = w.Start, true
		if st.early.covered < p.cfg.EarlyHorizon.Seconds() {
			st.early.add(w.Covered, w.CPU, w.CPUPeak, w.Memory)
		}
	}
	return n
}

// Since returns the start of the first window of the task not yet fed
// complete (or read without data), and false when the task was never fed
// (read from now − Lookback).
func (p *Predictor) Since(task TaskKey) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.tasks[task]
	if !ok || (!st.fed && st.scanned.IsZero()) {
		return time.Time{}, false
	}
	since := st.scanned
	if st.fed && st.seen.Add(p.cfg.Window).After(since) {
		since = st.seen.Add(p.cfg.Window)
	}
	return since, true
}

// Window is the width of the windows the recommenders learn from.
func (p *Predictor) Window() time.Duration { return p.cfg.Window }

// Update reads the task's complete windows since the last one observed (or
// since now-Lookback) from h and feeds them. A window is complete when it
// ended at or before now.
func (p *Predictor) Update(ctx context.Context, h History, task TaskKey, now time.Time) (int, error) {
	p.mu.Lock()
	from := now.Add(-p.cfg.Lookback)
	if st, ok := p.tasks[task]; ok && st.n > 0 {
		from = st.last.Add(time.Nanosecond)
	}
	p.mu.Unlock()
	to := now.Add(-p.cfg.Window)
	if !to.After(from) {
		return 0, nil
	}
	ws, err := h.Windows(ctx, task, from, to.Add(time.Nanosecond))
	if err != nil {
		return 0, fmt.Errorf("history of %s: %w", task, err)
	}
	return p.Observe(task, ws), nil
}

// Train replays every series into fresh recommenders, workers tasks at a
// time (GOMAXPROCS when <= 0), and installs them, replacing any state of
// those tasks. It returns the number of windows learned.
func (p *Predictor) Train(series []Series, workers int) (int, error) {
	for i := range series {
		if err := series[i].Validate(); err != nil {
			return 0, err
		}
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	states := make([]*taskState, len(series))
	for i := range series {
		states[i] = &taskState{rec: p.newRecommender(series[i].Task)}
	}
	// In time order across tasks, as they would have been fed live: the
	// tasks' recommenders share the fleet's violation budget.
	lockstep(series, workers, func(i, j int) {
		st, w := states[i], series[i].Windows[j]
		st.rec.Observe(w)
		st.step.observe(w)
		st.last = w.Start
		st.n++
	})
	for _, st := range states {
		st.seen, st.fed = st.last, st.n > 0
		st.early.covered = float64(st.n) * p.cfg.Window.Seconds()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for i, st := range states {
		p.tasks[series[i].Task] = st
		n += st.n
	}
	return n, nil
}

// ObserveOOM records that a task was OOM-killed at `at` with `memory` bytes
// in use (its limit); the memory recommendation rises at once.
func (p *Predictor) ObserveOOM(task TaskKey, at time.Time, memory float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state(task)
	st.rec.ObserveOOM(at, memory)
	st.ooms++
}

// ObserveEviction records that the agent evicted the task under memory
// pressure while it used memory bytes: treated as an OOM, since the task
// needed more than the node could give at that size.
func (p *Predictor) ObserveEviction(task TaskKey, at time.Time, memory float64) {
	p.ObserveOOM(task, at, memory)
}

// Forget drops a task's state (the job was deleted).
func (p *Predictor) Forget(task TaskKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.tasks, task)
}

// Tasks lists the tasks with state, sorted.
func (p *Predictor) Tasks() []TaskKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]TaskKey, 0, len(p.tasks))
	for k := range p.tasks {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Recommend returns the task's recommendation at now, or ErrNoHistory.
//
// A task with full windows gets its recommender's answer; while its history
// is shorter than EarlyHorizon the limits are kept at least at the peak
// seen times the early margin. A task with no full window yet but at least
// MinEvidence of usage (partial windows) gets a provisional recommendation
// from that usage with the early margin, with confidence near 0.
func (p *Predictor) Recommend(task TaskKey, now time.Time) (Recommendation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.tasks[task]
	if !ok {
		return Recommendation{}, fmt.Errorf("%w %s", ErrNoHistory, task)
	}
	ev := st.early
	if st.hasFill {
		ev.add(st.filling.Covered, st.filling.CPU, st.filling.CPUPeak, st.filling.Memory)
	}
	if st.n == 0 {
		if ev.covered >= p.cfg.MinEvidence.Seconds() {
			return p.provisional(st, task, ev, now), nil
		}
		if st.ooms == 0 {
			return Recommendation{}, fmt.Errorf("%w %s: %.0f s of usage measured, a first recommendation needs %s", ErrNoHistory, task, ev.covered, p.cfg.MinEvidence)
		}
	}
	r := st.rec.Recommend(now)
	rec := Recommendation{
		Task:       task,
		At:         now,
		Request:    models.Size{CPU: r.CPU.Request, Memory: r.Memory.Request},
		Limit:      models.Size{CPU: r.CPU.Limit, Memory: r.Memory.Limit},
		CPU:        r.CPU,
		Memory:     r.Memory,
		Next:       st.step.next(r.CPU, r.Memory, p.cfg.StepSpread),
		Confidence: Confidence(st.n),
		Model:      st.rec.Kind(),
		Why:        r.Why,
	}
	if st.n > 0 && ev.covered < p.cfg.EarlyHorizon.Seconds() && ev.covered > 0 {
		m := p.earlyMargin(ev.covered)
		var raised []string
		if l := ev.peakCPU * (1 + m); l > rec.Limit.CPU {
			rec.Limit.CPU, rec.CPU.Limit = l, l
			raised = append(raised, "cpu")
		}
		if l := ev.peakMem * (1 + m); l > rec.Limit.Memory {
			rec.Limit.Memory, rec.Memory.Limit = l, l
			raised = append(raised, "memory")
		}
		if len(raised) > 0 {
			rec.Why += fmt.Sprintf("; %s limit kept at the peak seen × %.2f while the history is short (%s of usage; the margin narrows until %s)",
				strings.Join(raised, " and "), 1+m, secs(ev.covered), p.cfg.EarlyHorizon)
		}
	}
	return rec, nil
}

// earlyMargin is the relative margin over the peak seen after covered
// seconds of usage.
func (p *Predictor) earlyMargin(covered float64) float64 {
	return p.cfg.EarlyMargin * math.Sqrt(p.cfg.MinEvidence.Seconds()/max(covered, 1))
}

// provisional sizes a task from its partial windows: the request is the
// mean CPU and the peak memory seen, the limit the peaks times the early
// margin; an OOM kill seen meanwhile keeps the recommender's raised memory.
func (p *Predictor) provisional(st *taskState, task TaskKey, ev evidence, now time.Time) Recommendation {
	m := p.earlyMargin(ev.covered)
	mean := ev.cpuSecs / ev.covered
	req := models.Size{CPU: mean, Memory: ev.peakMem}
	lim := models.Size{CPU: max(ev.peakCPU, mean) * (1 + m), Memory: ev.peakMem * (1 + m)}
	why := fmt.Sprintf("provisional: %s of usage, no full %s window yet; request = mean CPU and peak memory seen, limit = peak × %.2f (the margin narrows as history grows)",
		secs(ev.covered), p.cfg.Window, 1+m)
	if st.ooms > 0 {
		r := st.rec.Recommend(now)
		if r.Memory.Limit > lim.Memory {
			lim.Memory = r.Memory.Limit
			why += fmt.Sprintf("; memory limit raised by %d OOM kill(s)", st.ooms)
		}
		req.Memory = max(req.Memory, min(r.Memory.Request, lim.Memory))
	}
	return Recommendation{
		Task: task, At: now, Request: req, Limit: lim,
		// A first guess: the spread is the margin's.
		CPU:        models.Estimate{Request: req.CPU, Limit: lim.CPU, Mean: mean, StdDev: m * max(ev.peakCPU, mean) / 2},
		Memory:     models.Estimate{Request: req.Memory, Limit: lim.Memory, Mean: ev.peakMem, StdDev: m * ev.peakMem / 2},
		Next:       [2]Dist{{mean, m * max(ev.peakCPU, mean) / 2}, {ev.peakMem, m * ev.peakMem / 2}},
		Confidence: 1 - math.Exp2(-ev.covered/86400),
		Model:      st.rec.Kind(),
		Why:        why,
	}
}

func secs(s float64) string { return (time.Duration(s) * time.Second).String() }

// RecommendNew sizes a task that has no history from its job's features.
// With a cold-start model, each resource is sized by models.ColdStart.Advise:
// the model's prediction where its held-out error beats the baseline it
// replaces (the spec's hint for a hinted resource, the global median of
// past jobs otherwise), else that baseline; the request is that size, the
// limit models.ColdStartAdvice.Limit: (1+margin)× it (1× for a hint served
// as is) and never below the spec's hint (the request may be lower). This
// is the only place a cold start is sized; the controller serves it as
// is. With no model it serves the
// hints, and without hints it answers ErrNoHistory. Confidence is 0. A task
// with history gets Recommend.
func (p *Predictor) RecommendNew(task TaskKey, f models.JobFeatures, now time.Time) (Recommendation, error) {
	if r, err := p.Recommend(task, now); err == nil {
		return r, nil
	}
	m := p.cfg.ColdStartMargin
	if m == 0 {
		m = 1
	}
	p.mu.Lock() // Advise refits a restored model: one caller at a time
	cs := p.cfg.ColdStart
	var adv models.ColdStartAdvice
	var err error
	if cs != nil {
		adv, err = cs.Advise(f)
	}
	p.mu.Unlock()
	hint := models.Size{CPU: max(f.HintCPU, 0), Memory: max(f.HintMemory, 0)}
	if cs == nil || err != nil {
		if hint.CPU <= 0 || hint.Memory <= 0 {
			return Recommendation{}, fmt.Errorf("%w %s and no cold-start model or spec hints", ErrNoHistory, task)
		}
		return Recommendation{
			Task: task, At: now, Request: hint, Limit: hint,
			CPU:    models.Estimate{Request: hint.CPU, Limit: hint.CPU, Mean: hint.CPU},
			Memory: models.Estimate{Request: hint.Memory, Limit: hint.Memory, Mean: hint.Memory},
			Model:  "hints", Why: "no history and no cold-start model: the spec's hints",
		}, nil
	}
	need := adv.Size
	lim, raised := adv.Limit(f, m)
	why := "cold start: " + adv.Why
	if len(raised) > 0 {
		why += fmt.Sprintf("; %s limit kept at the spec's hint (a hint is never shrunk without history)", strings.Join(raised, " and "))
	}
	model := "coldstart"
	if adv.Source == [2]string{"hint", "hint"} {
		model = "hints"
	}
	return Recommendation{
		Task: task, At: now, Request: need, Limit: lim,
		CPU:    models.Estimate{Request: need.CPU, Limit: lim.CPU, Mean: need.CPU},
		Memory: models.Estimate{Request: need.Memory, Limit: lim.Memory, Mean: need.Memory},
		Model:  model, Why: why,
	}, nil
}

// SetColdStart installs a trained cold-start model (nil removes it);
// RecommendNew uses it from then on.
func (p *Predictor) SetColdStart(c *models.ColdStart) {
	p.mu.Lock()
	p.cfg.ColdStart = c
	p.mu.Unlock()
}

// ColdStart returns the cold-start model in use (nil when none).
func (p *Predictor) ColdStart() *models.ColdStart {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.ColdStart
}

// Confidence maps a number of 5-minute windows to [0,1): 1-2^(-days).
func Confidence(windows int) float64 {
	days := float64(windows) * models.WindowSeconds / 86400
	return 1 - math.Exp2(-days)
}

// Snapshot encodes every task's recommender state (models.Marshal), for
// the server to persist; Restore reverses it.
func (p *Predictor) Snapshot() (map[TaskKey][]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[TaskKey][]byte, len(p.tasks))
	for k, st := range p.tasks {
		b, err := models.Marshal(st.rec)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", k, err)
		}
		out[k] = b
	}
	return out, nil
}

// Restore loads a task's state from Snapshot output; last is the start of
// the last window it had observed.
func (p *Predictor) Restore(task TaskKey, state []byte, last time.Time, windows int) error {
	rec, err := models.Unmarshal(state)
	if err != nil {
		return fmt.Errorf("restore %s: %w", task, err)
	}
	if p.factory != nil {
		p.factory.Attach(rec) // rejoin the fleet's budget pool
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := &taskState{rec: rec, last: last, n: windows, seen: last, fed: true}
	st.early.covered = float64(windows) * p.cfg.Window.Seconds()
	p.tasks[task] = st
	return nil
}
