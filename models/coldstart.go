package models

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"path"
	"sort"
	"strings"
	"unicode"

	"github.com/sjwhitworth/golearn/base"
	"github.com/sjwhitworth/golearn/trees"
)

// JobFeatures are what is known of a job before it has run: its spec.
type JobFeatures struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Command   []string `json:"command,omitempty"`
	Type      string   `json:"type"`     // service | batch | cron
	Priority  string   `json:"priority"` // prod | batch | best-effort
	// Hints are the optional sizes in the spec (0 = none), cores and bytes.
	HintCPU    float64 `json:"hint_cpu"`
	HintMemory float64 `json:"hint_memory"`
}

// ColdStartExample is a past job with the size Fathom learned for it.
type ColdStartExample struct {
	Features JobFeatures `json:"features"`
	Size     Size        `json:"size"` // learned need (e.g. mean usage or request)
}

// Hashed feature layout: token buckets per field, then one-hot type and
// priority, then log hints and their presence.
const (
	nsBuckets    = 8
	nameBuckets  = 32
	cmdBuckets   = 8
	featureCount = nsBuckets + nameBuckets + cmdBuckets + 3 + 3 + 4
)

// Featurize turns a job's spec into the model's numeric features. Tokens
// are hashed (FNV-1a) into fixed buckets, so unseen names still map
// somewhere and no vocabulary needs storing; it is deterministic.
func Featurize(f JobFeatures) []float64 {
	x := make([]float64, featureCount)
	hashInto := func(off, n int, toks []string) {
		for _, t := range toks {
			h := fnv.New32a()
			h.Write([]byte(t))
			x[off+int(h.Sum32()%uint32(n))]++
		}
	}
	hashInto(0, nsBuckets, []string{strings.ToLower(f.Namespace)})
	hashInto(nsBuckets, nameBuckets, tokens(f.Name))
	var cmd []string
	if len(f.Command) > 0 {
		cmd = append(cmd, path.Base(f.Command[0]))
		for _, a := range f.Command[1:] {
			cmd = append(cmd, tokens(a)...)
		}
	}
	hashInto(nsBuckets+nameBuckets, cmdBuckets, cmd)
	o := nsBuckets + nameBuckets + cmdBuckets
	switch f.Type {
	case "service":
		x[o] = 1
	case "batch":
		x[o+1] = 1
	case "cron":
		x[o+2] = 1
	}
	o += 3
	switch f.Priority {
	case PriorityProd:
		x[o] = 1
	case PriorityBatch:
		x[o+1] = 1
	case PriorityBestEffort:
		x[o+2] = 1
	}
	o += 3
	if f.HintCPU > 0 {
		x[o], x[o+1] = math.Log2(f.HintCPU), 1
	}
	if f.HintMemory > 0 {
		x[o+2], x[o+3] = math.Log2(f.HintMemory), 1
	}
	return x
}

// tokens splits a name into lower-case word tokens: "web-api_v2.prod" →
// web, api, v, prod (digits dropped: replica numbers carry no meaning).
func tokens(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) })
}

// ColdStart predicts the size of a job with no history from the sizes
// learned for past jobs: one golearn CART regression tree per resource on
// log2 sizes. Its persisted form is its examples and depth; Unmarshal-ers
// call Fit again (training is deterministic).
//
// It is served only where it has earned it: Fit measures, by 5-fold
// cross-validation over past job names, its error against the simple
// baseline a job would otherwise get — the spec's own hint (the request)
// for a resource the spec hints, the global median of past jobs for one it
// does not — and Advise uses the model for a resource only when its
// held-out error there is below the baseline's.
type ColdStart struct {
	MaxDepth  int                `json:"max_depth"`
	Examples  []ColdStartExample `json:"examples"`
	MedianCPU float64            `json:"median_cpu"`
	MedianMem float64            `json:"median_memory"`
	// Gate is the held-out comparison Fit measured (recomputed by Fit).
	Gate     ColdStartGate `json:"gate"`
	cpu, mem *trees.CARTDecisionTreeRegressor
}

// ColdStartGate is the model's held-out error against the baseline it
// would replace, per resource ([0] CPU, [1] memory): on past jobs whose
// spec hinted that resource, against the hint (the request); on the
// others, against the global median of the training jobs. Errors are mean
// |log2(predicted / learned size)| (1.0 = off by a factor of two).
type ColdStartGate struct {
	Folds  int            `json:"folds"`
	Hinted [2]GateFigures `json:"hinted"`
	Bare   [2]GateFigures `json:"bare"`
}

// GateFigures compare the model with a baseline on N held-out jobs.
type GateFigures struct {
	N        int     `json:"n"`
	Model    float64 `json:"model_log2_error"`
	Baseline float64 `json:"baseline_log2_error"`
}

// MinGateExamples is the fewest held-out jobs on which the model's error
// is trusted against a baseline's.
const MinGateExamples = 10

// Wins reports whether the model beat the baseline on enough jobs.
func (g GateFigures) Wins() bool { return g.N >= MinGateExamples && g.Model < g.Baseline }

// ErrNoExamples is returned when a cold-start model has nothing to learn from.
var ErrNoExamples = errors.New("cold start: no past jobs to learn from")

// NewColdStart returns an untrained model; maxDepth 0 means 6.
func NewColdStart(maxDepth int) *ColdStart {
	if maxDepth <= 0 {
		maxDepth = 6
	}
	return &ColdStart{MaxDepth: maxDepth}
}

// Fit trains on examples (sizes must be positive) and measures the gate.
func (c *ColdStart) Fit(examples []ColdStartExample) error {
	if err := c.fit(examples); err != nil {
		return err
	}
	c.Gate = crossValidate(examples, c.MaxDepth, coldStartFolds)
	return nil
}

// coldStartFolds is the number of cross-validation folds of the gate.
const coldStartFolds = 5

// fit trains the trees and the medians only.
func (c *ColdStart) fit(examples []ColdStartExample) error {
	if len(examples) == 0 {
		return ErrNoExamples
	}
	X := make([][]float64, len(examples))
	yc := make([]float64, len(examples))
	ym := make([]float64, len(examples))
	for i, e := range examples {
		if !(e.Size.CPU > 0) || !(e.Size.Memory > 0) {
			return fmt.Errorf("cold start: example %d (%s/%s) has size %+v; sizes must be positive", i, e.Features.Namespace, e.Features.Name, e.Size)
		}
		X[i] = Featurize(e.Features)
		yc[i] = math.Log2(e.Size.CPU)
		ym[i] = math.Log2(e.Size.Memory)
	}
	c.Examples = examples
	c.MedianCPU = math.Exp2(median(yc))
	c.MedianMem = math.Exp2(median(ym))
	// The trees learn each job's size relative to the median: a tree with
	// no split (all sizes alike) then answers the median, where golearn's
	// answers 0 (a size of 2^0: one core, one byte).
	for i := range yc {
		yc[i] -= math.Log2(c.MedianCPU)
		ym[i] -= math.Log2(c.MedianMem)
	}
	c.cpu = trees.NewDecisionTreeRegressor("mse", int64(c.MaxDepth))
	if err := c.cpu.Fit(grid(X, yc)); err != nil {
		return fmt.Errorf("cold start: fit cpu: %w", err)
	}
	c.mem = trees.NewDecisionTreeRegressor("mse", int64(c.MaxDepth))
	if err := c.mem.Fit(grid(X, ym)); err != nil {
		return fmt.Errorf("cold start: fit memory: %w", err)
	}
	return nil
}

// Predict returns the predicted sizes of jobs; an untrained model (or one
// restored and not refitted) answers ErrNoExamples.
func (c *ColdStart) Predict(fs []JobFeatures) ([]Size, error) {
	if c.cpu == nil || c.mem == nil {
		if len(c.Examples) == 0 {
			return nil, ErrNoExamples
		}
		if err := c.fit(c.Examples); err != nil {
			return nil, err
		}
	}
	X := make([][]float64, len(fs))
	for i, f := range fs {
		X[i] = Featurize(f)
	}
	g := grid(X, make([]float64, len(fs)))
	pc := c.cpu.Predict(g)
	pm := c.mem.Predict(g)
	out := make([]Size, len(fs))
	for i := range out {
		out[i] = Size{CPU: c.MedianCPU * exp2OrOne(pc[i]), Memory: c.MedianMem * exp2OrOne(pm[i])}
	}
	return out, nil
}

// grid packs rows and a target into golearn instances (target = class).
func grid(X [][]float64, y []float64) *base.DenseInstances {
	inst := base.NewDenseInstances()
	specs := make([]base.AttributeSpec, featureCount+1)
	attrs := make([]base.Attribute, featureCount+1)
	for i := range featureCount {
		attrs[i] = base.NewFloatAttribute(fmt.Sprintf("f%02d", i))
	}
	attrs[featureCount] = base.NewFloatAttribute("log2_size")
	for i, a := range attrs {
		specs[i] = inst.AddAttribute(a)
	}
	if err := inst.AddClassAttribute(attrs[featureCount]); err != nil {
		panic(err) // the attribute was just added
	}
	if err := inst.Extend(len(X)); err != nil {
		panic(err)
	}
	for r, row := range X {
		for i, v := range row {
			inst.Set(specs[i], r, base.PackFloatToBytes(v))
		}
		inst.Set(specs[featureCount], r, base.PackFloatToBytes(y[r]))
	}
	return inst
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ColdStartReport compares a cold-start model with the simple baselines
// on held-out jobs: errors are |log2(predicted/actual)| (1.0 = off by a
// factor of two), mean and median, per resource. Median is the median of
// the training jobs' sizes; Request is the job's own hint (on the test
// jobs that have one: Hinted of them); Served is what Advise serves (the
// model where its gate says it wins, else the baseline).
type ColdStartReport struct {
	Train, Test, Hinted    int
	CPUModel, CPUMedian    ErrorStats
	MemModel, MemMedian    ErrorStats
	CPURequest, MemRequest ErrorStats
	CPUServed, MemServed   ErrorStats
	// Under is the share of test jobs whose served limit
	// (ColdStartAdvice.Limit with margin 1: twice the served size, the
	// hint as is, never below the hint) is below their actual size.
	CPUUnder, MemUnder float64
	Gate               ColdStartGate
}

// ErrorStats summarise absolute log2 errors.
type ErrorStats struct {
	Mean   float64 `json:"mean_abs_log2"`
	Median float64 `json:"median_abs_log2"`
}

func errorStats(e []float64) ErrorStats {
	if len(e) == 0 {
		return ErrorStats{}
	}
	s := 0.0
	for _, x := range e {
		s += x
	}
	return ErrorStats{Mean: s / float64(len(e)), Median: median(e)}
}

// EvaluateColdStart trains on train (with its gate) and scores test
// against the median, request and served baselines.
func EvaluateColdStart(train, test []ColdStartExample, maxDepth int) (ColdStartReport, error) {
	if len(test) == 0 {
		return ColdStartReport{}, errors.New("cold start: no test jobs")
	}
	c := NewColdStart(maxDepth)
	if err := c.Fit(train); err != nil {
		return ColdStartReport{}, err
	}
	fs := make([]JobFeatures, len(test))
	for i, e := range test {
		fs[i] = e.Features
	}
	pred, err := c.Predict(fs)
	if err != nil {
		return ColdStartReport{}, err
	}
	var ec, em, bc, bm, rc, rm, sc, sm []float64
	var uc, um int
	hinted := 0
	for i, e := range test {
		if !(e.Size.CPU > 0) || !(e.Size.Memory > 0) {
			return ColdStartReport{}, fmt.Errorf("cold start: test job %d has size %+v; sizes must be positive", i, e.Size)
		}
		l2 := func(p, a float64) float64 { return math.Abs(math.Log2(p / a)) }
		ec = append(ec, l2(pred[i].CPU, e.Size.CPU))
		em = append(em, l2(pred[i].Memory, e.Size.Memory))
		bc = append(bc, l2(c.MedianCPU, e.Size.CPU))
		bm = append(bm, l2(c.MedianMem, e.Size.Memory))
		if f := e.Features; f.HintCPU > 0 || f.HintMemory > 0 {
			hinted++
		}
		if h := e.Features.HintCPU; h > 0 {
			rc = append(rc, l2(h, e.Size.CPU))
		}
		if h := e.Features.HintMemory; h > 0 {
			rm = append(rm, l2(h, e.Size.Memory))
		}
		a := c.advise(e.Features, pred[i])
		sc = append(sc, l2(a.Size.CPU, e.Size.CPU))
		sm = append(sm, l2(a.Size.Memory, e.Size.Memory))
		lim, _ := a.Limit(e.Features, 1)
		if lim.CPU < e.Size.CPU {
			uc++
		}
		if lim.Memory < e.Size.Memory {
			um++
		}
	}
	n := float64(len(test))
	return ColdStartReport{Train: len(train), Test: len(test), Hinted: hinted,
		CPUModel: errorStats(ec), CPUMedian: errorStats(bc), MemModel: errorStats(em), MemMedian: errorStats(bm),
		CPURequest: errorStats(rc), MemRequest: errorStats(rm), CPUServed: errorStats(sc), MemServed: errorStats(sm),
		CPUUnder: float64(uc) / n, MemUnder: float64(um) / n, Gate: c.Gate}, nil
}

// crossValidate measures the gate: folds by job name (an FNV-1a hash of
// namespace/name), a model fitted on the other folds predicts each fold.
func crossValidate(examples []ColdStartExample, maxDepth, folds int) ColdStartGate {
	g := ColdStartGate{Folds: folds}
	if len(examples) < 2*folds {
		return g // too few to hold any out: nothing is served from the model
	}
	fold := func(e ColdStartExample) int {
		h := fnv.New32a()
		h.Write([]byte(e.Features.Namespace + "/" + e.Features.Name))
		return int(h.Sum32() % uint32(folds))
	}
	var sums [2][2][2]float64 // [hinted][resource][model, baseline]
	var ns [2][2]int
	for k := range folds {
		var train, test []ColdStartExample
		for _, e := range examples {
			if fold(e) == k {
				test = append(test, e)
			} else {
				train = append(train, e)
			}
		}
		if len(train) == 0 || len(test) == 0 {
			continue
		}
		m := NewColdStart(maxDepth)
		if m.fit(train) != nil {
			continue
		}
		fs := make([]JobFeatures, len(test))
		for i, e := range test {
			fs[i] = e.Features
		}
		pred, err := m.Predict(fs)
		if err != nil {
			continue
		}
		for i, e := range test {
			for r, x := range [2]struct{ p, a, hint, med float64 }{
				{pred[i].CPU, e.Size.CPU, e.Features.HintCPU, m.MedianCPU},
				{pred[i].Memory, e.Size.Memory, e.Features.HintMemory, m.MedianMem},
			} {
				h, base := 0, x.med
				if x.hint > 0 {
					h, base = 1, x.hint
				}
				sums[h][r][0] += math.Abs(math.Log2(x.p / x.a))
				sums[h][r][1] += math.Abs(math.Log2(base / x.a))
				ns[h][r]++
			}
		}
	}
	for r := range 2 {
		for h, dst := range []*GateFigures{&g.Bare[r], &g.Hinted[r]} {
			if n := ns[h][r]; n > 0 {
				*dst = GateFigures{N: n, Model: sums[h][r][0] / float64(n), Baseline: sums[h][r][1] / float64(n)}
			}
		}
	}
	return g
}

// ColdStartAdvice is what a job with no history is sized from: per
// resource, the model's prediction where its gate says it beats the
// baseline, else the baseline itself (the spec's hint, or the global
// median of past jobs when the spec has none).
type ColdStartAdvice struct {
	Size Size `json:"size"`
	// Source per resource ([0] CPU, [1] memory): "model", "hint" or
	// "median".
	Source [2]string `json:"source"`
	// Why says, per resource, which was served and on what evidence.
	Why string `json:"why"`
}

// Limit is the limit a task with no history gets from this advice: per
// resource, (1+margin)× the served size (1× for a hint served as is), and
// never below the spec's hint — a hint is the owner's statement of need,
// so no guess without history shrinks it (the request, the served size,
// may be lower: packing on less is what the scheduler's risk bound is
// for). Raised names the resources whose limit the hint set. This is the
// one place that rule lives: the predictor serves it and
// EvaluateColdStart scores it.
func (a ColdStartAdvice) Limit(f JobFeatures, margin float64) (lim Size, raised []string) {
	for r, x := range [2]struct {
		name       string
		need, hint float64
		lim        *float64
	}{{"cpu", a.Size.CPU, f.HintCPU, &lim.CPU}, {"memory", a.Size.Memory, f.HintMemory, &lim.Memory}} {
		*x.lim = x.need
		if a.Source[r] != "hint" {
			*x.lim = x.need * (1 + margin)
		}
		if *x.lim < x.hint {
			*x.lim = x.hint
			raised = append(raised, x.name)
		}
	}
	return lim, raised
}

// Advise sizes a job with no history (see ColdStartAdvice).
func (c *ColdStart) Advise(f JobFeatures) (ColdStartAdvice, error) {
	pred, err := c.Predict([]JobFeatures{f})
	if err != nil {
		return ColdStartAdvice{}, err
	}
	return c.advise(f, pred[0]), nil
}

func (c *ColdStart) advise(f JobFeatures, pred Size) ColdStartAdvice {
	var a ColdStartAdvice
	var why []string
	for r, x := range [2]struct {
		name            string
		pred, hint, med float64
		dst             *float64
	}{
		{"cpu", pred.CPU, f.HintCPU, c.MedianCPU, &a.Size.CPU},
		{"memory", pred.Memory, f.HintMemory, c.MedianMem, &a.Size.Memory},
	} {
		g, base, baseName, src := c.Gate.Bare[r], x.med, fmt.Sprintf("the median of %d past jobs", len(c.Examples)), "median"
		if x.hint > 0 {
			g, base, baseName, src = c.Gate.Hinted[r], x.hint, "the spec's hint", "hint"
		}
		switch {
		case g.Wins():
			*x.dst, a.Source[r] = x.pred, "model"
			why = append(why, fmt.Sprintf("%s from the model (held-out error %.2f vs %.2f for %s, over %d past jobs)", x.name, g.Model, g.Baseline, baseName, g.N))
		case g.N >= MinGateExamples:
			*x.dst, a.Source[r] = base, src
			why = append(why, fmt.Sprintf("%s from %s (the model's held-out error %.2f did not beat its %.2f, over %d past jobs)", x.name, baseName, g.Model, g.Baseline, g.N))
		default:
			*x.dst, a.Source[r] = base, src
			why = append(why, fmt.Sprintf("%s from %s (%d past jobs are too few to trust the model)", x.name, baseName, g.N))
		}
	}
	a.Why = strings.Join(why, "; ")
	return a
}

// exp2OrOne is 2^x, or 1 (the median) for a prediction that is not a number.
func exp2OrOne(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 1
	}
	return math.Exp2(x)
}
