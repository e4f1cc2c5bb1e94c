package promhistory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
)

// Metric names, as fixed by ARCHITECTURE.md.
const (
	CPUCounter        = "fathom_task_cpu_usage_seconds_total"
	MemoryWorkingSet  = "fathom_task_memory_working_set_bytes"
	MemoryPeak        = "fathom_task_memory_peak_bytes"
	windowWidth       = models.WindowSeconds * time.Second
	maxPointsPerQuery = 11000 // Prometheus refuses more than 11,000 points
)

// Options tune History.
type Options struct {
	// UsePeak also reads fathom_task_memory_peak_bytes (see package doc).
	UsePeak bool
}

// History reads windows through a Prometheus API client. It is safe for
// concurrent use.
type History struct {
	api  promv1.API
	opts Options
}

// New returns a History over api (promv1.NewAPI of an api.Client).
func New(api promv1.API, opts Options) *History { return &History{api: api, opts: opts} }

var _ predictor.History = (*History)(nil)

// ErrQuery wraps failures of the underlying queries.
var ErrQuery = errors.New("promhistory: query failed")

func selector(t predictor.TaskKey) string {
	return fmt.Sprintf(`namespace=%s,job_name=%s,task="%d"`, strconv.Quote(t.Namespace), strconv.Quote(t.Job), t.Task)
}

// Windows implements predictor.History: windows with Start in [from, to),
// aligned to 5 minutes, that have any CPU or memory data.
func (h *History) Windows(ctx context.Context, task predictor.TaskKey, from, to time.Time) ([]models.Window, error) {
	if !to.After(from) {
		return nil, nil
	}
	// Window starts s in [from, to) aligned to 5 minutes; evaluate at ends.
	first := from.Truncate(windowWidth)
	if first.Before(from) {
		first = first.Add(windowWidth)
	}
	if !first.Before(to) {
		return nil, nil
	}
	last := to.Add(-time.Nanosecond).Truncate(windowWidth)
	byStart := map[int64]*models.Window{}
	get := func(ts time.Time) *models.Window {
		s := ts.Add(-windowWidth)
		w, ok := byStart[s.Unix()]
		if !ok {
			w = &models.Window{Start: s.UTC()}
			byStart[s.Unix()] = w
		}
		return w
	}
	sel := selector(task)
	queries := []struct {
		q   string
		set func(w *models.Window, v float64)
	}{
		{fmt.Sprintf(`sum(rate(%s{%s}[5m]))`, CPUCounter, sel), func(w *models.Window, v float64) { w.CPU = v }},
		{fmt.Sprintf(`max_over_time(sum(rate(%s{%s}[30s]))[5m:15s])`, CPUCounter, sel), func(w *models.Window, v float64) { w.CPUPeak = v }},
		{fmt.Sprintf(`max(max_over_time(%s{%s}[5m]))`, MemoryWorkingSet, sel), func(w *models.Window, v float64) { w.Memory = max(w.Memory, v) }},
	}
	if h.opts.UsePeak {
		queries = append(queries, struct {
			q   string
			set func(w *models.Window, v float64)
		}{fmt.Sprintf(`max(max_over_time(%s{%s}[5m]))`, MemoryPeak, sel), func(w *models.Window, v float64) { w.Memory = max(w.Memory, v) }})
	}
	// Chunk long ranges below Prometheus's points-per-query limit.
	for cs := first; !cs.After(last); cs = cs.Add(maxPointsPerQuery * windowWidth) {
		ce := cs.Add((maxPointsPerQuery - 1) * windowWidth)
		if ce.After(last) {
			ce = last
		}
		r := promv1.Range{Start: cs.Add(windowWidth), End: ce.Add(windowWidth), Step: windowWidth}
		for _, q := range queries {
			val, _, _, err := h.api.QueryRange(ctx, q.q, r)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrQuery, q.q, err)
			}
			m, ok := val.(model.Matrix)
			if !ok {
				return nil, fmt.Errorf("%w: %s: got %s, want a matrix", ErrQuery, q.q, val.Type())
			}
			for _, ss := range m {
				for _, p := range ss.Values {
					q.set(get(p.Timestamp.Time()), float64(p.Value))
				}
			}
		}
	}
	out := make([]models.Window, 0, len(byStart))
	for _, w := range byStart {
		w.CPUPeak = max(w.CPUPeak, w.CPU)
		out = append(out, *w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}
