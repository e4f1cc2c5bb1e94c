package trace

// Fathom's own trace format: what `fathom trace export` writes from a live
// cluster's Prometheus and what `fathom sim --format fathom` replays. It is
// documented in docs/simulator.md; the short form:
//
//	# comments start with '#'
//	timestamp_s,namespace,job_name,task,priority,cpu_usage_cores,cpu_peak_cores,memory_usage_bytes,cpu_request_cores,memory_request_bytes
//	1700000000,team-a,web,0,prod,0.120,0.450,134217728,0.5,268435456
//
// One row per task per 5-minute window. timestamp_s is the window's start
// (Unix seconds). cpu_usage_cores is the mean CPU over the window and
// memory_usage_bytes the peak working set in it. cpu_peak_cores (the highest
// short-term CPU in the window), the two request columns (what the task was
// given: its provisioned size) and priority (prod, batch or best-effort; prod
// when empty) may be left empty.

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
)

// FathomHeader is the header line of Fathom's trace format.
const FathomHeader = "timestamp_s,namespace,job_name,task,priority,cpu_usage_cores,cpu_peak_cores,memory_usage_bytes,cpu_request_cores,memory_request_bytes"

// FathomRow is one row of Fathom's trace format: one task's usage over one
// window. Missing optional values are 0 (CPUPeak, CPURequest, MemoryRequest)
// or "" (Priority).
type FathomRow struct {
	Time          time.Time // window start
	Namespace     string
	Job           string
	Task          int
	Priority      string  // prod, batch, best-effort or ""
	CPU           float64 // mean CPU in the window, cores
	CPUPeak       float64 // peak CPU in the window, cores (0: unknown)
	Memory        float64 // peak memory in the window, bytes
	CPURequest    float64 // provisioned CPU, cores (0: unknown)
	MemoryRequest float64 // provisioned memory, bytes (0: unknown)
}

// FathomStats counts what ReadFathom read and dropped.
type FathomStats struct {
	Rows          int // data rows read
	Kept          int // rows returned
	DuplicateTime int // dropped: same task and window as an earlier row
}

// ReadFathom reads a trace in Fathom's format. Rows may come in any order;
// they are returned sorted by task (namespace, job, task) then time, with
// repeated (task, timestamp) rows after the first dropped and counted.
func ReadFathom(r io.Reader) ([]FathomRow, FathomStats, error) {
	var st FathomStats
	rr, err := maybeGunzip(r)
	if err != nil {
		return nil, st, err
	}
	sc := bufio.NewScanner(rr)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var out []FathomRow
	var f []string
	n, header := 0, false
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !header {
			if line != FathomHeader {
				return nil, st, fmt.Errorf("%w: line %d: header %.80q is not Fathom's trace header %q (see docs/simulator.md)", ErrFormat, n, line, FathomHeader)
			}
			header = true
			continue
		}
		st.Rows++
		f, err = csvFields([]byte(line), 10, f)
		if err != nil {
			return nil, st, fmt.Errorf("%w: line %d: %v (%s)", ErrFormat, n, err, FathomHeader)
		}
		row, err := parseFathomRow(f)
		if err != nil {
			return nil, st, fmt.Errorf("%w: line %d: %v", ErrFormat, n, err)
		}
		out = append(out, row)
	}
	if err := sc.Err(); err != nil {
		return nil, st, err
	}
	if !header {
		return nil, st, fmt.Errorf("%w: no header line; a Fathom trace starts with %q", ErrFormat, FathomHeader)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Job != b.Job {
			return a.Job < b.Job
		}
		if a.Task != b.Task {
			return a.Task < b.Task
		}
		return a.Time.Before(b.Time)
	})
	kept := out[:0]
	for i, row := range out {
		if i > 0 {
			p := &out[i-1]
			if p.Namespace == row.Namespace && p.Job == row.Job && p.Task == row.Task && p.Time.Equal(row.Time) {
				st.DuplicateTime++
				continue
			}
		}
		kept = append(kept, row)
	}
	st.Kept = len(kept)
	return kept, st, nil
}

func parseFathomRow(f []string) (FathomRow, error) {
	var row FathomRow
	ts, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return row, fmt.Errorf("timestamp_s %q is not an integer number of Unix seconds", f[0])
	}
	row.Time = time.Unix(ts, 0).UTC()
	row.Namespace, row.Job = f[1], f[2]
	if row.Job == "" {
		return row, fmt.Errorf("job_name is empty")
	}
	if row.Task, err = strconv.Atoi(f[3]); err != nil || row.Task < 0 {
		return row, fmt.Errorf("task %q is not a task index ≥ 0", f[3])
	}
	switch f[4] {
	case "", "prod", "batch", "best-effort":
		row.Priority = f[4]
	default:
		return row, fmt.Errorf("priority %q: use prod, batch, best-effort or leave it empty", f[4])
	}
	names := []string{"cpu_usage_cores", "cpu_peak_cores", "memory_usage_bytes", "cpu_request_cores", "memory_request_bytes"}
	dst := []*float64{&row.CPU, &row.CPUPeak, &row.Memory, &row.CPURequest, &row.MemoryRequest}
	for i := range names {
		if *dst[i], err = parseNum(f[5+i], names[i]); err != nil {
			return row, err
		}
	}
	if f[5] == "" || f[7] == "" {
		return row, fmt.Errorf("cpu_usage_cores and memory_usage_bytes are required")
	}
	return row, nil
}

// FathomWriter writes Fathom's trace format.
type FathomWriter struct {
	w       *bufio.Writer
	started bool
}

// NewFathomWriter returns a writer that writes the header before the first
// row (or at Flush when there are none).
func NewFathomWriter(w io.Writer) *FathomWriter { return &FathomWriter{w: bufio.NewWriter(w)} }

// Write writes one row.
func (fw *FathomWriter) Write(r FathomRow) error {
	if err := fw.header(); err != nil {
		return err
	}
	if strings.ContainsAny(r.Namespace+r.Job+r.Priority, ",\n\r") {
		return fmt.Errorf("trace: task %s/%s/%d: names must not contain commas or line breaks", r.Namespace, r.Job, r.Task)
	}
	opt := func(v float64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	_, err := fmt.Fprintf(fw.w, "%d,%s,%s,%d,%s,%s,%s,%s,%s,%s\n", r.Time.Unix(), r.Namespace, r.Job, r.Task, r.Priority,
		strconv.FormatFloat(r.CPU, 'g', -1, 64), opt(r.CPUPeak), strconv.FormatFloat(r.Memory, 'g', -1, 64),
		opt(r.CPURequest), opt(r.MemoryRequest))
	return err
}

func (fw *FathomWriter) header() error {
	if fw.started {
		return nil
	}
	fw.started = true
	_, err := fmt.Fprintln(fw.w, FathomHeader)
	return err
}

// Flush writes the header if nothing was written yet, then flushes.
func (fw *FathomWriter) Flush() error {
	if err := fw.header(); err != nil {
		return err
	}
	return fw.w.Flush()
}

// FathomSeries groups rows (as ReadFathom returns them: by task, then time)
// into one predictor.Series per task. A window without cpu_peak_cores takes
// the mean as its peak; a task's provisioned sizes are kept when every row
// of it has both request columns.
func FathomSeries(rows []FathomRow) []predictor.Series {
	var out []predictor.Series
	for i := 0; i < len(rows); {
		j := i
		key := predictor.TaskKey{Namespace: rows[i].Namespace, Job: rows[i].Job, Task: rows[i].Task}
		s := predictor.Series{Task: key}
		prov := true
		for ; j < len(rows) && rows[j].Namespace == key.Namespace && rows[j].Job == key.Job && rows[j].Task == key.Task; j++ {
			r := rows[j]
			peak := r.CPUPeak
			if peak == 0 {
				peak = r.CPU
			}
			s.Windows = append(s.Windows, models.Window{Start: r.Time, CPU: r.CPU, CPUPeak: peak, Memory: r.Memory})
			s.Provisioned = append(s.Provisioned, models.Size{CPU: r.CPURequest, Memory: r.MemoryRequest})
			prov = prov && r.CPURequest > 0 && r.MemoryRequest > 0
		}
		if !prov {
			s.Provisioned = nil
		}
		out = append(out, s)
		i = j
	}
	return out
}

// FathomPriorities returns each task's priority ("prod" when empty).
func FathomPriorities(rows []FathomRow) map[predictor.TaskKey]string {
	m := map[predictor.TaskKey]string{}
	for _, r := range rows {
		p := r.Priority
		if p == "" {
			p = "prod"
		}
		m[predictor.TaskKey{Namespace: r.Namespace, Job: r.Job, Task: r.Task}] = p
	}
	return m
}
