package trace

// Google cluster-usage trace 2011 (clusterdata-2011-2) task_events reader.
// Schema: Reiss, Wilkes, Hellerstein, "Google cluster-usage traces: format +
// schema" (2011). The trace is CC-BY 4.0, Google LLC.
//
// Columns (no header as published): timestamp_us, missing_info, job_id,
// task_index, machine_id, event_type, user, scheduling_class, priority,
// cpu_request, memory_request, disk_request, different_machine_constraint.
// CPU, memory and disk are normalized to the largest machine of the cell
// (1.0). Timestamps are µs from 600 s before the trace window; 0 marks events
// of the state at the trace start.

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// GoogleEventType is task_events.event_type.
type GoogleEventType int

// The task_events event types.
const (
	GoogleSubmit GoogleEventType = iota
	GoogleSchedule
	GoogleEvict
	GoogleFail
	GoogleFinish
	GoogleKill
	GoogleLost
	GoogleUpdatePending
	GoogleUpdateRunning
)

var googleEventNames = []string{"SUBMIT", "SCHEDULE", "EVICT", "FAIL", "FINISH", "KILL", "LOST", "UPDATE_PENDING", "UPDATE_RUNNING"}

func (e GoogleEventType) String() string {
	if e >= 0 && int(e) < len(googleEventNames) {
		return googleEventNames[e]
	}
	return "event(" + strconv.Itoa(int(e)) + ")"
}

// GoogleTaskEvent is one task_events row.
type GoogleTaskEvent struct {
	Time             time.Duration // timestamp (trace: µs)
	MissingInfo      bool          // missing_info set: some fields were reconstructed or are absent
	Job              int64         // job_id
	Index            int           // task_index within the job
	Machine          int64         // machine_id (0 when none)
	Type             GoogleEventType
	User             string // user (hashed)
	SchedulingClass  int    // 0 (least latency-sensitive) .. 3
	Priority         int    // 0 (free) .. 11
	HasRequest       bool   // the request columns were present
	CPU              float64
	Memory           float64
	Disk             float64
	DifferentMachine bool // different_machine_constraint: replicas on distinct machines
}

// GooglePriorityBand maps the trace's 12 priorities to the job spec's bands
// as the Borg paper groups them: 9-11 production, 2-8 batch ("middle"),
// 0-1 free (best-effort).
func GooglePriorityBand(p int) string {
	switch {
	case p >= 9:
		return "prod"
	case p >= 2:
		return "batch"
	}
	return "best-effort"
}

// GoogleEventStats counts what a task_events reader read.
type GoogleEventStats struct {
	Rows        int // data rows read
	Kept        int // rows returned
	NoRequest   int // rows without cpu/memory request (missing_info)
	BadEventTyp int // rows with an unknown event type (kept, flagged by Type)
}

// ReadGoogleTaskEvents reads a whole task_events file (gzip or plain). Empty
// request fields (rows with missing_info) read as HasRequest=false.
func ReadGoogleTaskEvents(r io.Reader) ([]GoogleTaskEvent, GoogleEventStats, error) {
	var out []GoogleTaskEvent
	st, err := ScanGoogleTaskEvents(r, func(e GoogleTaskEvent) bool {
		out = append(out, e)
		return true
	})
	return out, st, err
}

// ScanGoogleTaskEvents streams a task_events file, calling yield for each
// row until it returns false.
func ScanGoogleTaskEvents(r io.Reader, yield func(GoogleTaskEvent) bool) (GoogleEventStats, error) {
	var st GoogleEventStats
	lines, errf, err := lineReader(r, isHeader("timestamp"))
	if err != nil {
		return st, err
	}
	var f []string
	for n, line := range lines {
		st.Rows++
		f, err = csvFields(line, 13, f)
		if err != nil {
			return st, fmt.Errorf("%w: task_events line %d: %v (timestamp,missing_info,job_id,task_index,machine_id,event_type,user,scheduling_class,priority,cpu_request,memory_request,disk_request,different_machine_constraint)", ErrFormat, n, err)
		}
		e, err := parseGoogleEvent(f)
		if err != nil {
			return st, fmt.Errorf("%w: task_events line %d: %v", ErrFormat, n, err)
		}
		if !e.HasRequest {
			st.NoRequest++
		}
		if e.Type < 0 || e.Type > GoogleUpdateRunning {
			st.BadEventTyp++
		}
		st.Kept++
		if !yield(e) {
			break
		}
	}
	return st, errf()
}

func parseGoogleEvent(f []string) (GoogleTaskEvent, error) {
	var e GoogleTaskEvent
	ts, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return e, fmt.Errorf("timestamp %q: %v", f[0], err)
	}
	e.Time = time.Duration(ts) * time.Microsecond
	e.MissingInfo = f[1] != ""
	if e.Job, err = strconv.ParseInt(f[2], 10, 64); err != nil {
		return e, fmt.Errorf("job_id %q: %v", f[2], err)
	}
	if e.Index, err = strconv.Atoi(f[3]); err != nil {
		return e, fmt.Errorf("task_index %q: %v", f[3], err)
	}
	if f[4] != "" {
		if e.Machine, err = strconv.ParseInt(f[4], 10, 64); err != nil {
			return e, fmt.Errorf("machine_id %q: %v", f[4], err)
		}
	}
	t, err := strconv.Atoi(f[5])
	if err != nil {
		return e, fmt.Errorf("event_type %q: %v", f[5], err)
	}
	e.Type = GoogleEventType(t)
	e.User = f[6]
	if f[7] != "" {
		if e.SchedulingClass, err = strconv.Atoi(f[7]); err != nil {
			return e, fmt.Errorf("scheduling_class %q: %v", f[7], err)
		}
	}
	if f[8] != "" {
		if e.Priority, err = strconv.Atoi(f[8]); err != nil {
			return e, fmt.Errorf("priority %q: %v", f[8], err)
		}
	}
	if f[9] != "" && f[10] != "" {
		e.HasRequest = true
		if e.CPU, err = strconv.ParseFloat(f[9], 64); err != nil {
			return e, fmt.Errorf("cpu_request %q: %v", f[9], err)
		}
		if e.Memory, err = strconv.ParseFloat(f[10], 64); err != nil {
			return e, fmt.Errorf("memory_request %q: %v", f[10], err)
		}
		if f[11] != "" {
			if e.Disk, err = strconv.ParseFloat(f[11], 64); err != nil {
				return e, fmt.Errorf("disk_request %q: %v", f[11], err)
			}
		}
	}
	e.DifferentMachine = f[12] == "1"
	return e, nil
}

// GoogleTask is a task's state as replayed from task_events.
type GoogleTask struct {
	Job      int64
	Index    int
	Priority int
	CPU      float64 // latest request seen (normalized)
	Memory   float64
	Running  bool  // last event was SCHEDULE or UPDATE_RUNNING
	Machine  int64 // where it runs, when Running
	// DifferentMachine: replicas of the job must be on distinct machines.
	DifferentMachine bool
	HasRequest       bool
}

// GoogleTasksAt replays events (in file order, which is time order) up to and
// including time at, and returns the tasks present then: submitted or
// running and not yet evicted, failed, finished, killed or lost. Requests
// are the latest ones given. The result is sorted by job and index.
func GoogleTasksAt(events []GoogleTaskEvent, at time.Duration) []GoogleTask {
	type key struct {
		job int64
		idx int
	}
	m := map[key]*GoogleTask{}
	for i := range events {
		e := &events[i]
		if e.Time > at {
			break
		}
		k := key{e.Job, e.Index}
		t := m[k]
		switch e.Type {
		case GoogleEvict, GoogleFail, GoogleFinish, GoogleKill, GoogleLost:
			if t != nil {
				// Evicted and failed tasks come back with a new SUBMIT.
				delete(m, k)
			}
			continue
		}
		if t == nil {
			t = &GoogleTask{Job: e.Job, Index: e.Index}
			m[k] = t
		}
		t.Priority = e.Priority
		t.DifferentMachine = e.DifferentMachine
		if e.HasRequest {
			t.CPU, t.Memory, t.HasRequest = e.CPU, e.Memory, true
		}
		switch e.Type {
		case GoogleSchedule, GoogleUpdateRunning:
			t.Running, t.Machine = true, e.Machine
		case GoogleSubmit:
			t.Running, t.Machine = false, 0
		}
	}
	out := make([]GoogleTask, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b GoogleTask) int {
		if c := cmp.Compare(a.Job, b.Job); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	return out
}
