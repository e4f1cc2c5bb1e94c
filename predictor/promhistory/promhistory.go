package promhistory

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
)

// Metric names, as fixed by ARCHITECTURE.md.
const (
	CPUCounter       = metrics.TaskCPUUsageSecondsTotal
	MemoryWorkingSet = metrics.TaskMemoryWorkingSetBytes
	MemoryPeak       = metrics.TaskMemoryPeakBytes
	// chunk bounds the range of one raw-sample query (a day of 10-s pushes
	// is 8,640 samples per series).
	chunk = 24 * time.Hour
)

// Querier evaluates an instant PromQL query at ts and returns its matrix:
// a range selector yields the raw samples in (ts − range, ts]. Two
// implementations: API (any Prometheus HTTP API) and Store (the embedded
// store, in process).
type Querier interface {
	QueryMatrix(ctx context.Context, expr string, ts time.Time) (model.Matrix, error)
}

// API is a Querier over a Prometheus HTTP API client (an external
// Prometheus, or the embedded store's /api/v1).
type API struct{ API promv1.API }

// QueryMatrix implements Querier.
func (a API) QueryMatrix(ctx context.Context, expr string, ts time.Time) (model.Matrix, error) {
	v, _, _, err := a.API.Query(ctx, expr, ts)
	if err != nil {
		return nil, err
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("got %s, want a matrix", v.Type())
	}
	return m, nil
}

// Store is a Querier over the embedded metrics store, in process.
type Store struct{ Store *metrics.Store }

// QueryMatrix implements Querier.
func (s Store) QueryMatrix(ctx context.Context, expr string, ts time.Time) (model.Matrix, error) {
	v, err := s.Store.Query(ctx, expr, ts)
	if err != nil {
		return nil, err
	}
	m, ok := v.(promql.Matrix)
	if !ok {
		return nil, fmt.Errorf("got %s, want a matrix", v.Type())
	}
	out := make(model.Matrix, 0, len(m))
	for _, ser := range m {
		ss := &model.SampleStream{Metric: model.Metric{}, Values: make([]model.SamplePair, len(ser.Floats))}
		ser.Metric.Range(func(l labels.Label) { ss.Metric[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
		for i, p := range ser.Floats {
			ss.Values[i] = model.SamplePair{Timestamp: model.Time(p.T), Value: model.SampleValue(p.F)}
		}
		out = append(out, ss)
	}
	return out, nil
}

// Options tune History.
type Options struct {
	// UsePeak also reads fathom_task_memory_peak_bytes (the agent's highest
	// sampled working set since its previous push), so a window's memory
	// includes peaks between pushes.
	UsePeak bool
	// Window is the width of a window (models.WindowSeconds when zero).
	Window time.Duration
}

// History reads a task's raw usage samples with PromQL and aggregates them
// into windows with predictor.AggregateSeries. It is safe for concurrent
// use.
type History struct {
	q    Querier
	opts Options
}

// New returns a History over a Prometheus API client (promv1.NewAPI of an
// api.Client).
func New(api promv1.API, opts Options) *History { return NewQuerier(API{api}, opts) }

// NewQuerier returns a History over q.
func NewQuerier(q Querier, opts Options) *History {
	if opts.Window <= 0 {
		opts.Window = models.WindowSeconds * time.Second
	}
	return &History{q: q, opts: opts}
}

var _ predictor.History = (*History)(nil)

// Window is the width of the windows.
func (h *History) Window() time.Duration { return h.opts.Window }

// ErrQuery wraps failures of the underlying queries.
var ErrQuery = errors.New("promhistory: query failed")

// ErrNoUsage means no recent sample of the task was found.
var ErrNoUsage = errors.New("no usage measured")

// Selector matches the series of task index t.Task of every job named
// t.Job in t.Namespace: the agents label a task with its id, <job id>-<index>,
// so a job submitted again under the same name continues the history of its
// predecessors; a bare index (exported traces) matches too. TaskIndex reads
// the index back from a label.
func Selector(t predictor.TaskKey) string {
	return fmt.Sprintf(`%s=%s,%s=%s,%s=~%s`, metrics.LabelNamespace, strconv.Quote(t.Namespace), metrics.LabelJobName, strconv.Quote(t.Job),
		metrics.LabelTask, strconv.Quote("(.+-)?"+strconv.Itoa(t.Task)))
}

// TaskIndex is the task index in a series' task label, which Selector
// matches: <job id>-<index> as the agents write it (the controller's task
// id), or a bare index. ok is false for any other label.
func TaskIndex(label string) (idx int, ok bool) {
	i := strings.LastIndexByte(label, '-')
	if i == 0 {
		return 0, false // "-3": no job id before the dash
	}
	num := label[i+1:]
	if num == "" || len(num) > 9 || strings.TrimLeft(num, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	return n, err == nil
}

func (h *History) names() string {
	n := CPUCounter + "|" + MemoryWorkingSet
	if h.opts.UsePeak {
		n += "|" + MemoryPeak
	}
	return n
}

// point is one timestamp of one series: its CPU counter and memory.
type point struct {
	cpu, mem       float64
	hasCPU, hasMem bool
}

// samples reads the raw samples in (from, to] of every series matching
// sel, one list per series (labels other than the metric name), each in
// time order. CPU counter and memory samples are joined on their timestamp
// (the agents push them together); memory is the larger of the working set
// and, with UsePeak, the peak.
func (h *History) samples(ctx context.Context, sel string, from, to time.Time) ([][]predictor.Sample, error) {
	byKey := map[string]map[int64]*point{}
	expr := func(rng time.Duration) string {
		return fmt.Sprintf(`{__name__=~%s,%s}[%dms]`, strconv.Quote(h.names()), sel, rng.Milliseconds())
	}
	for end := to; end.After(from); end = end.Add(-chunk) {
		rng := min(chunk, end.Sub(from))
		if rng < time.Millisecond {
			break
		}
		m, err := h.q.QueryMatrix(ctx, expr(rng), end)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrQuery, expr(rng), err)
		}
		for _, ss := range m {
			name := string(ss.Metric[model.MetricNameLabel])
			lbls := make([]string, 0, len(ss.Metric))
			for k, v := range ss.Metric {
				if k != model.MetricNameLabel {
					lbls = append(lbls, string(k)+"="+string(v))
				}
			}
			sort.Strings(lbls)
			key := strings.Join(lbls, ",")
			pts := byKey[key]
			if pts == nil {
				pts = map[int64]*point{}
				byKey[key] = pts
			}
			for _, sp := range ss.Values {
				p := pts[int64(sp.Timestamp)]
				if p == nil {
					p = &point{}
					pts[int64(sp.Timestamp)] = p
				}
				v := float64(sp.Value)
				switch name {
				case CPUCounter:
					p.cpu, p.hasCPU = v, true
				case MemoryWorkingSet, MemoryPeak:
					p.mem, p.hasMem = max(p.mem, v), true
				}
			}
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]predictor.Sample, 0, len(keys))
	for _, k := range keys {
		pts := byKey[k]
		ts := make([]int64, 0, len(pts))
		for t, p := range pts {
			if p.hasCPU {
				ts = append(ts, t)
			}
		}
		if len(ts) == 0 {
			continue
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		ss := make([]predictor.Sample, len(ts))
		for i, t := range ts {
			p := pts[t]
			ss[i] = predictor.Sample{Time: time.UnixMilli(t).UTC(), CPUSeconds: max(p.cpu, 0), Memory: max(p.mem, 0)}
		}
		out = append(out, ss)
	}
	return out, nil
}

// Aggregated returns the task's windows with Start in [from, now), the last
// one possibly still filling, each with how much of it samples cover
// (predictor.Feed takes them). Samples from one window before from are read
// too, so the first window's first interval is counted.
func (h *History) Aggregated(ctx context.Context, task predictor.TaskKey, from, now time.Time) ([]predictor.AggregatedWindow, error) {
	w := h.opts.Window
	first := from.Truncate(w)
	if first.Before(from) {
		first = first.Add(w)
	}
	if !first.Before(now) {
		return nil, nil
	}
	ss, err := h.samples(ctx, Selector(task), first.Add(-w), now)
	if err != nil {
		return nil, err
	}
	all, err := predictor.AggregateSeries(ss, w)
	if err != nil {
		return nil, fmt.Errorf("usage of %s: %w", task, err)
	}
	out := all[:0]
	for _, a := range all {
		if !a.Start.Before(first) && a.Start.Before(now) {
			out = append(out, a)
		}
	}
	return out, nil
}

// Windows implements predictor.History: the full windows (samples cover at
// least predictor.FullCoverage of them) with Start in [from, to), aligned to
// multiples of the window width. Windows a task only partly ran in are left
// out: they are not 5-minute windows.
func (h *History) Windows(ctx context.Context, task predictor.TaskKey, from, to time.Time) ([]models.Window, error) {
	if !to.After(from) {
		return nil, nil
	}
	w := h.opts.Window
	last := to.Add(-time.Nanosecond).Truncate(w)
	ag, err := h.Aggregated(ctx, task, from, last.Add(w))
	if err != nil {
		return nil, err
	}
	out := make([]models.Window, 0, len(ag))
	for _, a := range ag {
		if a.Start.Before(to) && a.Full(w) {
			out = append(out, a.Window)
		}
	}
	return out, nil
}

var taskIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

// Usage returns a task's last measured CPU (cores, mean over the last
// minute) and working set (bytes, the latest sample), by task id.
func (h *History) Usage(ctx context.Context, taskID string, now time.Time) (cpu, memory float64, err error) {
	if !taskIDRE.MatchString(taskID) {
		return 0, 0, fmt.Errorf("task id %q: want letters, digits and . _ : -", taskID)
	}
	hh := *h
	hh.opts.UsePeak = false // the latest working set, not the peak
	ss, err := hh.samples(ctx, fmt.Sprintf(`%s=%s`, metrics.LabelTask, strconv.Quote(taskID)), now.Add(-time.Minute), now)
	if err != nil {
		return 0, 0, err
	}
	var latest time.Time
	found := false
	for _, s := range ss {
		last := s[len(s)-1]
		if last.Time.After(latest) {
			latest, memory = last.Time, last.Memory
		}
		found = true
		if len(s) < 2 {
			continue
		}
		var inc float64
		for i := 1; i < len(s); i++ {
			d := s[i].CPUSeconds - s[i-1].CPUSeconds
			if d < 0 {
				d = s[i].CPUSeconds
			}
			inc += d
		}
		cpu += inc / s[len(s)-1].Time.Sub(s[0].Time).Seconds()
	}
	if !found {
		return 0, 0, ErrNoUsage
	}
	return cpu, memory, nil
}

// JobLister is what a Querier can add: the jobs (namespace and job name)
// with task usage series in [from, to], from the series index alone (no
// samples read). A round of the right-sizer asks it once and skips the
// tasks of jobs without usage, instead of querying each of them.
type JobLister interface {
	UsageJobs(ctx context.Context, from, to time.Time) (map[JobName]bool, error)
}

// JobName is a job's namespace and name.
type JobName struct{ Namespace, Job string }

// UsageJobs returns the jobs with usage series in [from, to]; ok is false
// when the Querier cannot list them (every task must then be queried).
func (h *History) UsageJobs(ctx context.Context, from, to time.Time) (jobs map[JobName]bool, ok bool, err error) {
	l, ok := h.q.(JobLister)
	if !ok {
		return nil, false, nil
	}
	jobs, err = l.UsageJobs(ctx, from, to)
	return jobs, err == nil, err
}

// UsageJobs implements JobLister over the embedded store's series index.
func (s Store) UsageJobs(ctx context.Context, from, to time.Time) (map[JobName]bool, error) {
	q, err := s.Store.Queryable().Querier(from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer q.Close()
	set := q.Select(ctx, false, &storage.SelectHints{Start: from.UnixMilli(), End: to.UnixMilli(), Func: "series"},
		labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, CPUCounter))
	out := map[JobName]bool{}
	for set.Next() {
		ls := set.At().Labels()
		out[JobName{ls.Get(metrics.LabelNamespace), ls.Get(metrics.LabelJobName)}] = true
	}
	return out, set.Err()
}

// UsageJobs implements JobLister over the Prometheus series API.
func (a API) UsageJobs(ctx context.Context, from, to time.Time) (map[JobName]bool, error) {
	ss, _, _, err := a.API.Series(ctx, []string{CPUCounter}, from, to)
	if err != nil {
		return nil, err
	}
	out := map[JobName]bool{}
	for _, ls := range ss {
		out[JobName{string(ls[metrics.LabelNamespace]), string(ls[metrics.LabelJobName])}] = true
	}
	return out, nil
}
