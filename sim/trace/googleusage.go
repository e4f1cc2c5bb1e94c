package trace

// Google cluster-usage trace 2011 (clusterdata-2011-2) task_usage reader.
// Schema: Reiss, Wilkes, Hellerstein, "Google cluster-usage traces: format +
// schema" (2011). task_events is read by google2011.go.

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// GoogleUsage is one task_usage row: what one task used in one measurement
// period (normally 5 minutes) on one machine. CPU and memory are normalized
// like the requests in task_events (1.0 = the largest machine of the cell).
type GoogleUsage struct {
	Start, End time.Duration // measurement period, from the trace start (trace: µs)
	Job        int64         // job_id
	Index      int           // task_index within the job
	Machine    int64         // machine_id
	CPU        float64       // cpu_rate: mean CPU (core-seconds per second, normalized)
	Memory     float64       // canonical_memory: mean memory usage (normalized)
	Assigned   float64       // assigned_memory
	MaxMemory  float64       // max_memory: peak memory in the period
	MaxCPU     float64       // max_cpu_rate: peak 1-second CPU in the period
	Aggregate  int           // aggregation_type (0 = max, 1 = sum over sub-containers)
}

// Key identifies the task the row belongs to.
func (u GoogleUsage) Key() (job int64, index int) { return u.Job, u.Index }

// GoogleUsageStats counts what ReadGoogleUsage read.
type GoogleUsageStats struct {
	Rows int // data rows read
	Kept int // rows returned
}

// ReadGoogleUsage reads a task_usage file (no header as published; a header
// line starting "start_time," is skipped). Rows have 19 or 20 fields
// (sampled_cpu_usage was added in schema 2.1); empty numeric fields read as 0.
func ReadGoogleUsage(r io.Reader) ([]GoogleUsage, GoogleUsageStats, error) {
	var st GoogleUsageStats
	lines, errf, err := lineReader(r, isHeader("start_time,"))
	if err != nil {
		return nil, st, err
	}
	var out []GoogleUsage
	var f []string
	for n, line := range lines {
		st.Rows++
		f, _ = csvFields(line, 0, f)
		if len(f) != 19 && len(f) != 20 {
			return nil, st, fmt.Errorf("%w: task_usage line %d: want 19 or 20 comma-separated fields (start_time,end_time,job_id,task_index,machine_id,cpu_rate,canonical_memory,assigned_memory,...), got %d", ErrFormat, n, len(f))
		}
		var u GoogleUsage
		var nums [8]float64
		for i, c := range []struct {
			col  int
			name string
		}{{0, "start_time"}, {1, "end_time"}, {5, "cpu_rate"}, {6, "canonical_memory"}, {7, "assigned_memory"}, {10, "max_memory"}, {13, "max_cpu_rate"}, {18, "aggregation_type"}} {
			if nums[i], err = parseNum(f[c.col], c.name); err != nil {
				return nil, st, fmt.Errorf("%w: task_usage line %d: %v", ErrFormat, n, err)
			}
		}
		if u.Job, err = strconv.ParseInt(f[2], 10, 64); err != nil {
			return nil, st, fmt.Errorf("%w: task_usage line %d: job_id %q is not an integer", ErrFormat, n, f[2])
		}
		if u.Index, err = strconv.Atoi(f[3]); err != nil {
			return nil, st, fmt.Errorf("%w: task_usage line %d: task_index %q is not an integer", ErrFormat, n, f[3])
		}
		if f[4] != "" {
			if u.Machine, err = strconv.ParseInt(f[4], 10, 64); err != nil {
				return nil, st, fmt.Errorf("%w: task_usage line %d: machine_id %q is not an integer", ErrFormat, n, f[4])
			}
		}
		u.Start = time.Duration(nums[0]) * time.Microsecond
		u.End = time.Duration(nums[1]) * time.Microsecond
		if u.End < u.Start {
			return nil, st, fmt.Errorf("%w: task_usage line %d: end_time %v before start_time %v", ErrFormat, n, u.End, u.Start)
		}
		u.CPU, u.Memory, u.Assigned, u.MaxMemory, u.MaxCPU = nums[2], nums[3], nums[4], nums[5], nums[6]
		u.Aggregate = int(nums[7])
		st.Kept++
		out = append(out, u)
	}
	return out, st, errf()
}
