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
type ColdStart struct {
	MaxDepth  int                `json:"max_depth"`
	Examples  []ColdStartExample `json:"examples"`
	MedianCPU float64            `json:"median_cpu"`
	MedianMem float64            `json:"median_memory"`
	cpu, mem  *trees.CARTDecisionTreeRegressor
}

// ErrNoExamples is returned when a cold-start model has nothing to learn from.
var ErrNoExamples = errors.New("cold start: no past jobs to learn from")

// NewColdStart returns an untrained model; maxDepth 0 means 6.
func NewColdStart(maxDepth int) *ColdStart {
	if maxDepth <= 0 {
		maxDepth = 6
	}
	return &ColdStart{MaxDepth: maxDepth}
}

// Fit trains on examples (sizes must be positive).
func (c *ColdStart) Fit(examples []ColdStartExample) error {
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
		if err := c.Fit(c.Examples); err != nil {
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
		out[i] = Size{CPU: math.Exp2(pc[i]), Memory: math.Exp2(pm[i])}
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

// ColdStartReport compares a cold-start model with the median-of-all-jobs
// baseline on held-out jobs: errors are |log2(predicted/actual)| (1.0 = off
// by a factor of two), mean and median, per resource.
type ColdStartReport struct {
	Train, Test         int
	CPUModel, CPUMedian ErrorStats
	MemModel, MemMedian ErrorStats
}

// ErrorStats summarise absolute log2 errors.
type ErrorStats struct {
	Mean   float64 `json:"mean_abs_log2"`
	Median float64 `json:"median_abs_log2"`
}

func errorStats(e []float64) ErrorStats {
	s := 0.0
	for _, x := range e {
		s += x
	}
	return ErrorStats{Mean: s / float64(len(e)), Median: median(e)}
}

// EvaluateColdStart trains on train and scores test against the median
// baseline (the median of the training sizes).
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
	var ec, em, bc, bm []float64
	for i, e := range test {
		if !(e.Size.CPU > 0) || !(e.Size.Memory > 0) {
			return ColdStartReport{}, fmt.Errorf("cold start: test job %d has size %+v; sizes must be positive", i, e.Size)
		}
		ec = append(ec, math.Abs(math.Log2(pred[i].CPU/e.Size.CPU)))
		em = append(em, math.Abs(math.Log2(pred[i].Memory/e.Size.Memory)))
		bc = append(bc, math.Abs(math.Log2(c.MedianCPU/e.Size.CPU)))
		bm = append(bm, math.Abs(math.Log2(c.MedianMem/e.Size.Memory)))
	}
	return ColdStartReport{Train: len(train), Test: len(test),
		CPUModel: errorStats(ec), CPUMedian: errorStats(bc), MemModel: errorStats(em), MemMedian: errorStats(bm)}, nil
}
