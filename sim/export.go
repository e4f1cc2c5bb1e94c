package sim

import (
	"context"
	"fmt"
	"slices"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/predictor/promhistory"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

// ExportStats says what Export wrote.
type ExportStats struct {
	Tasks int `json:"tasks"`
	Rows  int `json:"rows"`
}

// Export reads every task with usage in [from, to) through a Prometheus
// HTTP API (Fathom's embedded store or a real Prometheus) and writes it in
// Fathom's trace format: usage windows as predictor/promhistory reads them
// (the predictor's own view), plus each window's largest request and the
// task's priority label when the store has one (the agents write none, so
// a live cluster's rows leave it empty). Tasks are found with
// /api/v1/series on the per-task CPU and memory metrics: the agents label a
// task with its id, task="<job id>-<index>" (controller.TaskID), next to
// job_name="<job name>"; a row's job_name is the job's name and its task
// the index, the predictor's key (predictor.TaskKey), so jobs submitted
// again under one name are one task's history, as the predictor learns it.
// A bare index label is read too. progress, when set, is called after each
// task.
func Export(ctx context.Context, api promv1.API, from, to time.Time, w *trace.FathomWriter, progress func(done, total int)) (ExportStats, error) {
	var st ExportStats
	if !to.After(from) {
		return st, fmt.Errorf("%w: export range [%s, %s) is empty; --since must lie before --until", ErrInvalid, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	sets, _, _, err := api.Series(ctx, []string{promhistory.CPUCounter, promhistory.MemoryWorkingSet}, from, to)
	if err != nil {
		return st, fmt.Errorf("%w: listing task series: %v", promhistory.ErrQuery, err)
	}
	prio := map[predictor.TaskKey]string{}
	var keys []predictor.TaskKey
	for _, ls := range sets {
		n, ok := promhistory.TaskIndex(string(ls["task"]))
		if !ok || ls["job_name"] == "" {
			continue // not a Fathom task series
		}
		k := predictor.TaskKey{Namespace: string(ls["namespace"]), Job: string(ls["job_name"]), Task: n}
		if _, ok := prio[k]; !ok {
			keys = append(keys, k)
			prio[k] = ""
		}
		switch p := string(ls["priority"]); p {
		case "prod", "batch", "best-effort":
			prio[k] = p
		}
	}
	slices.SortFunc(keys, func(a, b predictor.TaskKey) int {
		if a.Namespace != b.Namespace {
			return cmpStr(a.Namespace, b.Namespace)
		}
		if a.Job != b.Job {
			return cmpStr(a.Job, b.Job)
		}
		return a.Task - b.Task
	})
	h := promhistory.New(api, promhistory.Options{UsePeak: true})
	for i, k := range keys {
		wins, err := h.Windows(ctx, k, from, to)
		if err != nil {
			return st, err
		}
		req, err := requests(ctx, api, k, wins)
		if err != nil {
			return st, err
		}
		for j, win := range wins {
			row := trace.FathomRow{Time: win.Start, Namespace: k.Namespace, Job: k.Job, Task: k.Task, Priority: prio[k],
				CPU: win.CPU, CPUPeak: win.CPUPeak, Memory: win.Memory, CPURequest: req[j].CPU, MemoryRequest: req[j].Memory}
			if err := w.Write(row); err != nil {
				return st, err
			}
			st.Rows++
		}
		if len(wins) > 0 {
			st.Tasks++
		}
		if progress != nil {
			progress(i+1, len(keys))
		}
	}
	return st, w.Flush()
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// requests reads the largest CPU and memory request in each window (0 where
// the store has none), evaluated at window ends like promhistory.
func requests(ctx context.Context, api promv1.API, k predictor.TaskKey, wins []models.Window) ([]models.Size, error) {
	out := make([]models.Size, len(wins))
	if len(wins) == 0 {
		return out, nil
	}
	idx := map[int64]int{}
	for i, w := range wins {
		idx[w.Start.Add(Step).Unix()] = i
	}
	sel := promhistory.Selector(k) // the series Windows read
	r := promv1.Range{Start: wins[0].Start.Add(Step), End: wins[len(wins)-1].Start.Add(Step), Step: Step}
	if n := r.End.Sub(r.Start)/Step + 1; n > 11000 {
		// Beyond Prometheus's points-per-query limit: leave requests out
		// rather than fail the export (usage is what matters).
		return out, nil
	}
	for _, q := range []struct {
		metric string
		set    func(s *models.Size, v float64)
	}{
		{"fathom_task_cpu_request_cores", func(s *models.Size, v float64) { s.CPU = v }},
		{"fathom_task_memory_request_bytes", func(s *models.Size, v float64) { s.Memory = v }},
	} {
		val, _, _, err := api.QueryRange(ctx, fmt.Sprintf(`max(max_over_time(%s{%s}[5m]))`, q.metric, sel), r)
		if err != nil {
			return nil, fmt.Errorf("%w: %s of %s: %v", promhistory.ErrQuery, q.metric, k, err)
		}
		m, ok := val.(model.Matrix)
		if !ok {
			continue
		}
		for _, ss := range m {
			for _, p := range ss.Values {
				if i, ok := idx[p.Timestamp.Unix()]; ok {
					q.set(&out[i], float64(p.Value))
				}
			}
		}
	}
	return out, nil
}
