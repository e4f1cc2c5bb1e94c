package sim

// Workloads from the Google 2011 and Alibaba 2018 traces. Both give
// normalized sizes and (in the excerpts Fathom uses) little or no usage over
// time, so what each loader assumes is written into Workload.Assumptions and
// docs/simulator.md.

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

// Units for normalized traces: the recommenders have absolute floors (the
// VPA's 25 mCPU and 250 MiB), so normalized sizes are turned into cores and
// bytes with an assumed largest machine.
const (
	GoogleMachineCores  = 32.0      // 1.0 normalized CPU (assumed)
	GoogleMachineBytes  = 128 << 30 // 1.0 normalized memory (assumed)
	AlibabaMachineBytes = 512 << 30 // mem_size 100 (assumed); CPU is in cores already
)

// traceEpoch anchors traces whose times are offsets from their start.
var traceEpoch = time.Date(2011, 5, 1, 0, 0, 0, 0, time.UTC)

// files returns path itself, or the files in directory path whose names
// contain sub, sorted.
func files(path, sub string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.Contains(e.Name(), sub) {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// loadGoogle builds a workload from Google 2011 task_events (arrivals,
// ends, requests, priorities) joined with task_usage (what each task used).
// path is a directory holding task_events files (names with "part-" or
// "task_events") and task_usage files (names with "usage"). Only tasks with a task_usage row are replayed; the
// usage measured in their one known window is held for their whole life.
func loadGoogle(path string) (*Workload, error) {
	evFiles, err := files(path, "")
	if err != nil {
		return nil, err
	}
	var events []trace.GoogleTaskEvent
	var usageFiles []string
	for _, f := range evFiles {
		base := filepath.Base(f)
		if strings.Contains(base, "usage") {
			usageFiles = append(usageFiles, f)
			continue
		}
		if !strings.Contains(base, "part-") && !strings.Contains(base, "task_events") {
			continue
		}
		ev, err := readGoogleEvents(f)
		if err != nil {
			return nil, err
		}
		events = append(events, ev...)
	}
	if len(usageFiles) == 0 {
		return nil, fmt.Errorf("%w: %s: no task_usage file found (a file with \"usage\" in its name next to the task_events parts); the simulator needs usage", ErrInvalid, path)
	}
	type key struct {
		job int64
		idx int
	}
	use := map[key]trace.GoogleUsage{}
	for _, f := range usageFiles {
		rc, err := trace.OpenFile(f)
		if err != nil {
			return nil, err
		}
		rows, _, err := trace.ReadGoogleUsage(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, u := range rows {
			if _, ok := use[key{u.Job, u.Index}]; !ok {
				use[key{u.Job, u.Index}] = u
			}
		}
	}
	type life struct {
		start, end time.Duration
		ended      bool
		prio       int
		cpu, mem   float64
	}
	lives := map[key]*life{}
	var last time.Duration
	for _, e := range events {
		k := key{e.Job, e.Index}
		if _, ok := use[k]; !ok {
			continue
		}
		last = max(last, e.Time)
		l := lives[k]
		if l == nil {
			l = &life{start: e.Time}
			lives[k] = l
		}
		l.prio = e.Priority
		if e.HasRequest {
			l.cpu, l.mem = e.CPU, e.Memory
		}
		switch e.Type {
		case trace.GoogleFinish, trace.GoogleKill, trace.GoogleFail, trace.GoogleLost, trace.GoogleEvict:
			l.end, l.ended = e.Time, true
		case trace.GoogleSubmit, trace.GoogleSchedule:
			l.ended = false
		}
	}
	var series []predictor.Series
	prio := map[predictor.TaskKey]scheduler.Priority{}
	for k, l := range lives {
		u := use[k]
		end := last
		if l.ended {
			end = l.end
		}
		if l.cpu == 0 || l.mem == 0 {
			continue
		}
		tk := predictor.TaskKey{Namespace: "google2011", Job: fmt.Sprint(k.job), Task: k.idx}
		s := predictor.Series{Task: tk}
		cpu, mem := u.CPU*GoogleMachineCores, max(u.MaxMemory, u.Memory)*GoogleMachineBytes
		peak := max(u.MaxCPU*GoogleMachineCores, cpu)
		for t := l.start.Truncate(Step); t <= end; t += Step {
			s.Windows = append(s.Windows, models.Window{Start: traceEpoch.Add(t), CPU: cpu, CPUPeak: peak, Memory: mem})
			s.Provisioned = append(s.Provisioned, models.Size{CPU: l.cpu * GoogleMachineCores, Memory: l.mem * GoogleMachineBytes})
		}
		series = append(series, s)
		p, _ := scheduler.ParsePriority(trace.GooglePriorityBand(l.prio))
		prio[tk] = p
	}
	slices.SortFunc(series, func(a, b predictor.Series) int { return cmp.Compare(a.Task.String(), b.Task.String()) })
	w, err := FromSeries(path, series, scheduler.Batch)
	if err != nil {
		return nil, err
	}
	for i := range w.Tasks {
		w.Tasks[i].Priority = prio[w.Tasks[i].Key]
	}
	w.Assumptions = append(w.Assumptions,
		fmt.Sprintf("Google 2011: only the %d tasks with a task_usage row are replayed; each uses what it used in that one measured window for its whole life", len(w.Tasks)),
		fmt.Sprintf("Google 2011: normalized sizes taken as 1.0 = %.0f cores and %d GiB", GoogleMachineCores, GoogleMachineBytes>>30))
	return w, nil
}

func readGoogleEvents(path string) ([]trace.GoogleTaskEvent, error) {
	rc, err := trace.OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	ev, _, err := trace.ReadGoogleTaskEvents(rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ev, nil
}

// loadAlibaba builds a workload from Alibaba 2018 container_meta: each
// container runs from its first row to its last "started" row (or the end
// of the excerpt) at its requested size. The excerpts have no usage, so
// usage is taken equal to the request (only packing is exercised), and
// batch_task instances (5.5 million in the 50,000-row excerpt) are not
// replayed.
func loadAlibaba(path string) (*Workload, error) {
	fs, err := files(path, "container_meta")
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("%w: %s: no container_meta file found", ErrInvalid, path)
	}
	var rows []trace.AlibabaContainer
	for _, f := range fs {
		rc, err := trace.OpenFile(f)
		if err != nil {
			return nil, err
		}
		r, _, err := trace.ReadAlibabaContainers(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		rows = append(rows, r...)
	}
	type life struct {
		start, end time.Duration
		cpu, mem   float64
	}
	lives := map[string]*life{}
	var last time.Duration
	for _, c := range rows {
		last = max(last, c.Time)
		l := lives[c.ID]
		if l == nil {
			l = &life{start: c.Time, end: -1}
			lives[c.ID] = l
		}
		l.cpu, l.mem = max(c.CPUReq, c.CPULimit), c.Memory
		if c.Status == "stopped" {
			l.end = c.Time
		}
	}
	var series []predictor.Series
	for id, l := range lives {
		end := l.end
		if end < 0 {
			end = last
		}
		if l.cpu == 0 || l.mem == 0 {
			continue
		}
		s := predictor.Series{Task: predictor.TaskKey{Namespace: "alibaba2018", Job: id}}
		size := models.Size{CPU: l.cpu, Memory: l.mem / 100 * AlibabaMachineBytes}
		for t := l.start.Truncate(Step); t <= end; t += Step {
			s.Windows = append(s.Windows, models.Window{Start: traceEpoch.Add(t), CPU: size.CPU, CPUPeak: size.CPU, Memory: size.Memory})
			s.Provisioned = append(s.Provisioned, size)
		}
		series = append(series, s)
	}
	slices.SortFunc(series, func(a, b predictor.Series) int { return cmp.Compare(a.Task.Job, b.Task.Job) })
	w, err := FromSeries(path, series, scheduler.Prod)
	if err != nil {
		return nil, err
	}
	w.Assumptions = append(w.Assumptions,
		"Alibaba 2018: the excerpt has no usage; every container uses exactly its request (packing only)",
		fmt.Sprintf("Alibaba 2018: mem_size 100 taken as %d GiB; batch_task instances are not replayed", AlibabaMachineBytes>>30))
	return w, nil
}
