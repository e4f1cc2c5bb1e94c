package predictor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
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
	// New builds a recommender (models.New(Kind) when nil).
	New func(kind string) (models.Recommender, error)
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
}

// Predictor keeps one trained recommender per task and serves their
// recommendations. It is safe for concurrent use. It reads no clock: every
// call takes now.
type Predictor struct {
	cfg   Config
	mu    sync.Mutex
	tasks map[TaskKey]*taskState
}

type taskState struct {
	rec  models.Recommender
	last time.Time // start of the last window observed
	n    int
	ooms int
}

// New returns an empty predictor.
func New(cfg Config) (*Predictor, error) {
	if cfg.Kind == "" {
		cfg.Kind = "fathom"
	}
	if cfg.New == nil {
		cfg.New = models.New
	}
	if cfg.Lookback == 0 {
		cfg.Lookback = 8 * 24 * time.Hour
	}
	if _, err := cfg.New(cfg.Kind); err != nil {
		return nil, err
	}
	return &Predictor{cfg: cfg, tasks: map[TaskKey]*taskState{}}, nil
}

func (p *Predictor) state(task TaskKey) *taskState {
	st, ok := p.tasks[task]
	if !ok {
		rec, _ := p.cfg.New(p.cfg.Kind) // checked in New
		st = &taskState{rec: rec}
		p.tasks[task] = st
	}
	return st
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
		st.rec.Observe(w)
		st.last = w.Start
		st.n++
		n++
	}
	return n
}

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
	to := now.Add(-models.WindowSeconds * time.Second)
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
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				rec, _ := p.cfg.New(p.cfg.Kind)
				st := &taskState{rec: rec}
				for _, w := range series[i].Windows {
					rec.Observe(w)
					st.last = w.Start
					st.n++
				}
				states[i] = st
			}
		}()
	}
	for i := range series {
		next <- i
	}
	close(next)
	wg.Wait()
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
func (p *Predictor) Recommend(task TaskKey, now time.Time) (Recommendation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.tasks[task]
	if !ok || (st.n == 0 && st.ooms == 0) {
		return Recommendation{}, fmt.Errorf("%w %s", ErrNoHistory, task)
	}
	r := st.rec.Recommend(now)
	return Recommendation{
		Task:       task,
		At:         now,
		Request:    models.Size{CPU: r.CPU.Request, Memory: r.Memory.Request},
		Limit:      models.Size{CPU: r.CPU.Limit, Memory: r.Memory.Limit},
		CPU:        r.CPU,
		Memory:     r.Memory,
		Confidence: Confidence(st.n),
		Model:      st.rec.Kind(),
		Why:        r.Why,
	}, nil
}

// RecommendNew sizes a task that has no history from its job's features:
// the cold-start model's prediction as the request and (1+margin)× as the
// limit, with confidence 0. With no model it falls back to the hints, and
// without hints it answers ErrNoHistory. A task with history gets Recommend.
func (p *Predictor) RecommendNew(task TaskKey, f models.JobFeatures, now time.Time) (Recommendation, error) {
	if r, err := p.Recommend(task, now); err == nil {
		return r, nil
	}
	m := p.cfg.ColdStartMargin
	if m == 0 {
		m = 1
	}
	var need models.Size
	model, why := "coldstart", ""
	if p.cfg.ColdStart != nil {
		pred, err := p.cfg.ColdStart.Predict([]models.JobFeatures{f})
		if err == nil {
			need = pred[0]
			why = fmt.Sprintf("cold start: learned from %d past jobs with similar namespace, name, command, type, priority and hints", len(p.cfg.ColdStart.Examples))
		}
	}
	if need.CPU <= 0 || need.Memory <= 0 {
		if f.HintCPU <= 0 || f.HintMemory <= 0 {
			return Recommendation{}, fmt.Errorf("%w %s and no cold-start model or spec hints", ErrNoHistory, task)
		}
		need = models.Size{CPU: f.HintCPU, Memory: f.HintMemory}
		model, why, m = "hints", "no history and no cold-start model: the spec's hints", 0
	}
	lim := models.Size{CPU: need.CPU * (1 + m), Memory: need.Memory * (1 + m)}
	return Recommendation{
		Task: task, At: now, Request: need, Limit: lim,
		CPU:    models.Estimate{Request: need.CPU, Limit: lim.CPU, Mean: need.CPU},
		Memory: models.Estimate{Request: need.Memory, Limit: lim.Memory, Mean: need.Memory},
		Model:  model, Why: why,
	}, nil
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
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tasks[task] = &taskState{rec: rec, last: last, n: windows}
	return nil
}

// ResizePolicy guards in-place resizes against flapping: raises go through
// at once (a task that needs more must get it), decreases only when the
// recommendation is Deadband below the current limit and MinInterval has
// passed since the last resize.
type ResizePolicy struct {
	Deadband    float64       // 0.10 when zero
	MinInterval time.Duration // 1 h when zero
}

// Decide returns the limits to apply, whether they differ from current, and
// why. Resources are decided independently.
func (rp ResizePolicy) Decide(current models.Size, lastResize time.Time, rec Recommendation, now time.Time) (models.Size, bool, string) {
	band := rp.Deadband
	if band == 0 {
		band = 0.10
	}
	iv := rp.MinInterval
	if iv == 0 {
		iv = time.Hour
	}
	out := current
	var why []string
	one := func(name string, cur, want float64) float64 {
		switch {
		case cur <= 0 || want > cur*(1+band/2):
			why = append(why, fmt.Sprintf("%s up %.4g→%.4g", name, cur, want))
			return want
		case want < cur*(1-band) && now.Sub(lastResize) >= iv:
			why = append(why, fmt.Sprintf("%s down %.4g→%.4g", name, cur, want))
			return want
		}
		return cur
	}
	out.CPU = one("cpu", current.CPU, rec.Limit.CPU)
	out.Memory = one("memory", current.Memory, rec.Limit.Memory)
	if len(why) == 0 {
		return current, false, "within deadband or too soon since the last resize"
	}
	return out, true, fmt.Sprint(why)
}
