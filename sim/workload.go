package sim

import (
	"fmt"
	"sort"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// Step is the simulator's tick: one usage window.
const Step = models.WindowSeconds * time.Second

// Task is one task of a workload: its measured usage, window by window, and
// what its owner provisioned for it.
type Task struct {
	Key      predictor.TaskKey
	Priority scheduler.Priority
	// Windows are the measured usage windows in time order, as the trace
	// gives them (their Start times are the trace's, not rounded).
	Windows []models.Window
	// Provisioned is the owner's size per window (nil or zero: unknown, and
	// the "provisioned" policy then uses the task's largest usage).
	Provisioned []models.Size
}

// ID is the task's name as the scheduler sees it.
func (t *Task) ID() string { return fmt.Sprintf("%s/%s/%d", t.Key.Namespace, t.Key.Job, t.Key.Task) }

// Workload is what a simulation replays: tasks with their usage over time.
type Workload struct {
	// Name says where the workload came from (the trace file).
	Name string
	// Start is the first window start of any task; slot k covers
	// [Start + k·Step, Start + (k+1)·Step).
	Start time.Time
	// Slots is the number of Step-long slots from Start to the last window.
	Slots int
	Tasks []Task
	// Assumptions lists what the workload had to assume because its trace
	// does not say (e.g. "usage equals the request"), for the report.
	Assumptions []string
}

// FromSeries builds a workload from predictor series (what the trace readers
// and `fathom model eval` use), so that the simulator and the evaluator read
// the very same windows. Every task gets priority prio. Series with no
// windows are skipped.
func FromSeries(name string, series []predictor.Series, prio scheduler.Priority) (*Workload, error) {
	w := &Workload{Name: name}
	first := true
	var last time.Time
	for _, s := range series {
		if len(s.Windows) == 0 {
			continue
		}
		if len(s.Provisioned) != 0 && len(s.Provisioned) != len(s.Windows) {
			return nil, fmt.Errorf("sim: task %v has %d windows but %d provisioned sizes; want one per window or none", s.Task, len(s.Windows), len(s.Provisioned))
		}
		for i := 1; i < len(s.Windows); i++ {
			if !s.Windows[i].Start.After(s.Windows[i-1].Start) {
				return nil, fmt.Errorf("sim: task %v: window %d (%v) is not after window %d (%v); windows must be in time order without repeats", s.Task, i, s.Windows[i].Start, i-1, s.Windows[i-1].Start)
			}
		}
		t0, t1 := s.Windows[0].Start, s.Windows[len(s.Windows)-1].Start
		if first || t0.Before(w.Start) {
			w.Start = t0
		}
		if first || t1.After(last) {
			last = t1
		}
		first = false
		w.Tasks = append(w.Tasks, Task{Key: s.Task, Priority: prio, Windows: s.Windows, Provisioned: s.Provisioned})
	}
	if len(w.Tasks) == 0 {
		return nil, fmt.Errorf("sim: the trace %s has no task with usage windows", name)
	}
	w.Slots = w.slot(last) + 1
	sort.SliceStable(w.Tasks, func(i, j int) bool { return w.Tasks[i].ID() < w.Tasks[j].ID() })
	return w, nil
}

// slot returns the slot that time t falls in.
func (w *Workload) slot(t time.Time) int { return int(t.Sub(w.Start) / Step) }

// SlotTime is the start of slot k.
func (w *Workload) SlotTime(k int) time.Time { return w.Start.Add(time.Duration(k) * Step) }

// LargestProvisioned is the component-wise largest provisioned size of any
// task (falling back to the largest usage for tasks without one): the
// default machine shape, on which every policy can place every task.
func (w *Workload) LargestProvisioned() models.Size {
	var m models.Size
	for i := range w.Tasks {
		p := w.Tasks[i].maxProvisioned()
		m.CPU = max(m.CPU, p.CPU)
		m.Memory = max(m.Memory, p.Memory)
	}
	return m
}

// maxProvisioned is the task's largest provisioned size, or its peak usage
// where the trace has no provisioned size.
func (t *Task) maxProvisioned() models.Size {
	var m models.Size
	for i, win := range t.Windows {
		p := t.provisioned(i)
		m.CPU = max(m.CPU, p.CPU, win.CPU)
		m.Memory = max(m.Memory, p.Memory, win.Memory)
	}
	return m
}

// provisioned is the provisioned size at window i (zero when unknown).
func (t *Task) provisioned(i int) models.Size {
	if i < len(t.Provisioned) {
		return t.Provisioned[i]
	}
	return models.Size{}
}

// Series returns the workload's tasks as predictor series (the form
// predictor.Evaluate reads).
func (w *Workload) Series() []predictor.Series {
	out := make([]predictor.Series, len(w.Tasks))
	for i, t := range w.Tasks {
		out[i] = predictor.Series{Task: t.Key, Windows: t.Windows, Provisioned: t.Provisioned}
	}
	return out
}
