package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
)

// Point is one sample of a query result.
type Point struct {
	T time.Time
	V float64
}

// RangeQuerier evaluates a PromQL expression that yields at most one series
// over [start, end] at step. Two implementations: StoreQuerier (the embedded
// TSDB, in process) and HTTPQuerier (any Prometheus HTTP API).
type RangeQuerier interface {
	QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Point, error)
}

// StoreQuerier queries the embedded metrics store in process.
type StoreQuerier struct{ Store *metrics.Store }

// QueryRange implements RangeQuerier.
func (q StoreQuerier) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Point, error) {
	v, err := q.Store.QueryRange(ctx, expr, start, end, step)
	if err != nil {
		return nil, err
	}
	m, ok := v.(promql.Matrix)
	if !ok {
		return nil, fmt.Errorf("query %q: got %s, want a matrix", expr, v.Type())
	}
	if len(m) == 0 {
		return nil, nil
	}
	out := make([]Point, 0, len(m[0].Floats))
	for _, p := range m[0].Floats {
		out = append(out, Point{T: time.UnixMilli(p.T), V: p.F})
	}
	return out, nil
}

// HTTPQuerier queries a Prometheus-compatible HTTP API (GET
// /api/v1/query_range) at URL, e.g. http://127.0.0.1:9090.
type HTTPQuerier struct {
	URL    string
	Client *http.Client // nil = a client with a 30 s timeout
}

// QueryRange implements RangeQuerier.
func (q HTTPQuerier) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Point, error) {
	c := q.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	v := url.Values{"query": {expr}, "start": {strconv.FormatFloat(float64(start.UnixMilli())/1000, 'f', 3, 64)},
		"end": {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(q.URL, "/")+"/api/v1/query_range?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Values [][2]json.RawMessage `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", q.URL, resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: query %q: %s", q.URL, expr, body.Error)
	}
	if len(body.Data.Result) == 0 {
		return nil, nil
	}
	out := make([]Point, 0, len(body.Data.Result[0].Values))
	for _, p := range body.Data.Result[0].Values {
		var ts float64
		var s string
		if json.Unmarshal(p[0], &ts) != nil || json.Unmarshal(p[1], &s) != nil {
			return nil, fmt.Errorf("%s: query %q: malformed sample", q.URL, expr)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: query %q: %w", q.URL, expr, err)
		}
		out = append(out, Point{T: time.UnixMilli(int64(math.Round(ts * 1000))), V: f})
	}
	return out, nil
}

// PromHistory is the predictor's History over the per-task series the
// agents push (fathom_task_cpu_usage_seconds_total and
// fathom_task_memory_working_set_bytes). History is learned per
// namespace/job name and task index, so a job submitted again under the same
// name starts from what its predecessors used.
//
// A window [s, s+Window) has CPU = the mean rate over it and Memory = the
// peak working set in it; CPUPeak is not measured here and equals CPU.
type PromHistory struct {
	Q RangeQuerier
	// Window is the width of a window (models.WindowSeconds when zero).
	// Tests and demos shorten it to see recommendations sooner.
	Window time.Duration
}

var _ predictor.History = (*PromHistory)(nil)

func (h *PromHistory) window() time.Duration {
	if h.Window > 0 {
		return h.Window
	}
	return models.WindowSeconds * time.Second
}

// selector matches every task of index task.Task of the job's name.
func selector(task predictor.TaskKey) string {
	return fmt.Sprintf(`{%s=%q,%s=%q,%s=~%q}`, metrics.LabelNamespace, task.Namespace, metrics.LabelJobName, task.Job,
		metrics.LabelTask, ".+-"+strconv.Itoa(task.Task))
}

// Windows implements predictor.History: complete windows starting in
// [from, to), aligned to multiples of Window.
func (h *PromHistory) Windows(ctx context.Context, task predictor.TaskKey, from, to time.Time) ([]models.Window, error) {
	w := h.window()
	first := from.Truncate(w)
	if first.Before(from) {
		first = first.Add(w)
	}
	if !first.Before(to) {
		return nil, nil
	}
	last := to.Add(-time.Nanosecond).Truncate(w)
	sel := selector(task)
	rng := strconv.FormatInt(w.Milliseconds(), 10) + "ms"
	cpu, err := h.Q.QueryRange(ctx, fmt.Sprintf("sum(rate(%s%s[%s]))", metrics.TaskCPUUsageSecondsTotal, sel, rng), first.Add(w), last.Add(w), w)
	if err != nil {
		return nil, fmt.Errorf("cpu history: %w", err)
	}
	mem, err := h.Q.QueryRange(ctx, fmt.Sprintf("max(max_over_time(%s%s[%s]))", metrics.TaskMemoryWorkingSetBytes, sel, rng), first.Add(w), last.Add(w), w)
	if err != nil {
		return nil, fmt.Errorf("memory history: %w", err)
	}
	cpuAt := make(map[int64]float64, len(cpu))
	for _, p := range cpu {
		cpuAt[p.T.UnixMilli()] = p.V
	}
	out := make([]models.Window, 0, len(mem))
	for _, p := range mem {
		c, ok := cpuAt[p.T.UnixMilli()]
		if !ok || math.IsNaN(c) || math.IsNaN(p.V) {
			continue
		}
		start := p.T.Add(-w)
		if start.Before(from) || !start.Before(to) {
			continue
		}
		out = append(out, models.Window{Start: start, CPU: c, CPUPeak: c, Memory: p.V})
	}
	return out, nil
}

// ErrNoUsage means no sample of the task was found.
var ErrNoUsage = errors.New("no usage measured")

// Usage returns a task's last measured CPU (cores, over the last minute) and
// working set (bytes), by task id.
func (h *PromHistory) Usage(ctx context.Context, taskID string, now time.Time) (cpu, memory float64, err error) {
	sel := fmt.Sprintf(`{%s=%q}`, metrics.LabelTask, taskID)
	c, err := h.Q.QueryRange(ctx, fmt.Sprintf("sum(rate(%s%s[1m]))", metrics.TaskCPUUsageSecondsTotal, sel), now, now, time.Second)
	if err != nil {
		return 0, 0, err
	}
	m, err := h.Q.QueryRange(ctx, fmt.Sprintf("max(last_over_time(%s%s[1m]))", metrics.TaskMemoryWorkingSetBytes, sel), now, now, time.Second)
	if err != nil {
		return 0, 0, err
	}
	if len(c) == 0 && len(m) == 0 {
		return 0, 0, ErrNoUsage
	}
	if len(c) > 0 {
		cpu = c[len(c)-1].V
	}
	if len(m) > 0 {
		memory = m[len(m)-1].V
	}
	return cpu, memory, nil
}
