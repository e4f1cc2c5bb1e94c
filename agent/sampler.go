package agent

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
)

// TaskSample is the sampler's latest view of one running task.
type TaskSample struct {
	Assignment       Assignment
	PID              int
	CPUSeconds       float64 // cumulative
	CPUCores         float64 // rate over the last sampling interval
	MemoryWorkingSet int64
	MemoryPeak       int64 // highest working set sampled since the last push
	OOMKills         uint64
	series           []prompb.TimeSeries // label sets for remote write, built once per task
}

// NodeSample is the machine as the sampler saw it last.
type NodeSample struct {
	CPUCapacity       float64
	MemoryCapacity    int64
	CPUUsedCores      float64 // whole machine, from /proc/stat
	MemoryUsed        int64   // whole machine: MemTotal - MemAvailable
	MemoryTotal       int64   // MemTotal
	MemoryAvailable   int64   // MemAvailable
	TasksWorkingSet   int64   // sum over tasks
	TasksCPUCores     float64 // sum over tasks of their CPU rate over the last interval
	MemoryPressure    bool
	PressureThreshold float64
}

// Sampler reads every running task's cgroup counters once per tick, keeps
// the peak working set between pushes, and turns the latest values into
// Prometheus metrics (Collect) and remote-write batches (Batch). Metrics
// observe the sampler's state; they are not the state. Safe for concurrent use.
type Sampler struct {
	node string
	exec *Executor

	mu        sync.Mutex
	tasks     map[string]*TaskSample
	nodeS     NodeSample
	lastTick  time.Time
	prevIdle  uint64
	prevTotal uint64

	descs                         map[string]*prometheus.Desc
	enforcement, backend, missing string
	infoDesc                      *prometheus.Desc
}

// SetEnforcement sets fathom_node_enforcement_info's labels: the
// enforcement the node reports, the cgroup back end in use, and the
// controllers that back end lacks (comma-separated; "" when none).
func (s *Sampler) SetEnforcement(enforcement, backend, missing string) {
	s.mu.Lock()
	s.enforcement, s.backend, s.missing = enforcement, backend, missing
	s.mu.Unlock()
}

// NewSampler samples exec's tasks for node, whose capacity is cpu cores and
// mem bytes.
func NewSampler(node string, exec *Executor, cpu float64, mem int64, threshold float64) *Sampler {
	s := &Sampler{node: node, exec: exec, tasks: map[string]*TaskSample{},
		nodeS: NodeSample{CPUCapacity: cpu, MemoryCapacity: mem, PressureThreshold: threshold}, descs: map[string]*prometheus.Desc{}}
	tl := []string{"namespace", "job_name", "task", "node"}
	for name, help := range map[string]string{
		"fathom_task_cpu_usage_seconds_total":  "Cumulative CPU time of the task's cgroup, seconds.",
		"fathom_task_memory_working_set_bytes": "Task memory working set (usage minus inactive file cache), bytes.",
		"fathom_task_memory_peak_bytes":        "Highest sampled working set since the last remote-write push, bytes.",
		"fathom_task_cpu_request_cores":        "CPU request of the task's assignment, cores.",
		"fathom_task_cpu_limit_cores":          "CPU limit enforced on the task (0 = unlimited), cores.",
		"fathom_task_memory_request_bytes":     "Memory request of the task's assignment, bytes.",
		"fathom_task_memory_limit_bytes":       "Memory limit enforced on the task (0 = unlimited), bytes.",
		"fathom_task_oom_kills_total":          "Kernel OOM kills in the task's cgroup.",
	} {
		s.descs[name] = prometheus.NewDesc(name, help, tl, nil)
	}
	nl := []string{"node"}
	for name, help := range map[string]string{
		"fathom_node_cpu_capacity_cores":    "CPU the node offers to tasks, cores.",
		"fathom_node_memory_capacity_bytes": "Memory the node offers to tasks, bytes.",
		"fathom_node_cpu_usage_cores":       "CPU in use on the whole machine, cores.",
		"fathom_node_memory_used_bytes":     "Memory in use on the whole machine (MemTotal - MemAvailable), bytes.",
		"fathom_node_memory_pressure":       "1 when memory use is above the eviction threshold.",
		"fathom_agent_tasks_running":        "Tasks with a running process on this node.",
	} {
		s.descs[name] = prometheus.NewDesc(name, help, nl, nil)
	}
	s.infoDesc = prometheus.NewDesc("fathom_node_enforcement_info",
		"Always 1; enforcement says how limits are applied (cgroup2, cgroup1 or none), backend which cgroup back end runs the tasks, missing which of its controllers the machine lacks (their limits are not enforced).",
		[]string{"node", "enforcement", "backend", "missing"}, nil)
	return s
}

// Tick samples once. now is the sampling instant (a parameter so tests and
// benchmarks control it).
func (s *Sampler) Tick(now time.Time) {
	usage := s.exec.Usage()
	idle, total := readProcStat()
	memTotal, memAvail := readMeminfo()
	s.mu.Lock()
	defer s.mu.Unlock()
	dt := now.Sub(s.lastTick).Seconds()
	seen := make(map[string]bool, len(usage))
	var ws int64
	var cpu float64
	for _, u := range usage {
		id := u.Assignment.TaskID
		seen[id] = true
		ts := s.tasks[id]
		if ts == nil || ts.PID != u.PID {
			ts = &TaskSample{}
			s.tasks[id] = ts
		}
		if ts.Assignment.Namespace != u.Assignment.Namespace || ts.Assignment.JobName != u.Assignment.JobName || ts.series == nil {
			ts.series = nil
		}
		if !s.lastTick.IsZero() && dt > 0 && ts.CPUSeconds > 0 && u.Stats.CPUSeconds >= ts.CPUSeconds {
			ts.CPUCores = (u.Stats.CPUSeconds - ts.CPUSeconds) / dt
		}
		ts.Assignment, ts.PID = u.Assignment, u.PID
		ts.CPUSeconds, ts.MemoryWorkingSet, ts.OOMKills = u.Stats.CPUSeconds, u.Stats.MemoryWorkingSet, u.Stats.OOMKills
		ts.MemoryPeak = max(ts.MemoryPeak, ts.MemoryWorkingSet)
		ws += ts.MemoryWorkingSet
		cpu += ts.CPUCores
	}
	for id := range s.tasks {
		if !seen[id] {
			delete(s.tasks, id)
		}
	}
	n := &s.nodeS
	if s.prevTotal > 0 && total > s.prevTotal && dt > 0 {
		busy := float64((total-s.prevTotal)-(idle-s.prevIdle)) / float64(total-s.prevTotal)
		n.CPUUsedCores = busy * float64(numCPU())
	}
	s.prevIdle, s.prevTotal = idle, total
	n.MemoryTotal, n.MemoryAvailable = memTotal, memAvail
	n.MemoryUsed = memTotal - memAvail
	n.TasksWorkingSet, n.TasksCPUCores = ws, cpu
	n.MemoryPressure = s.overLocked() > 0
	s.lastTick = now
}

// over returns how many bytes memory use stands above the threshold: of the
// whole machine, or of the tasks against the node's stated capacity
// (whichever is worse); ≤ 0 means no pressure.
func (s *Sampler) overLocked() int64 {
	n := s.nodeS
	if n.PressureThreshold <= 0 {
		return 0
	}
	machine := n.MemoryUsed - int64(n.PressureThreshold*float64(n.MemoryTotal))
	tasks := n.TasksWorkingSet - int64(n.PressureThreshold*float64(n.MemoryCapacity))
	return max(machine, tasks)
}

// Evictions applies the pressure rule to the latest sample.
func (s *Sampler) Evictions() []Eviction {
	s.mu.Lock()
	defer s.mu.Unlock()
	over := s.overLocked()
	if over <= 0 {
		return nil
	}
	n := s.nodeS
	cands := make([]EvictionCandidate, 0, len(s.tasks))
	for id, t := range s.tasks {
		cands = append(cands, EvictionCandidate{TaskID: id, Priority: t.Assignment.Priority, WorkingSet: t.MemoryWorkingSet, Request: t.Assignment.MemoryRequestBytes})
	}
	why := "machine " + fmtBytes(n.MemoryUsed) + " of " + fmtBytes(n.MemoryTotal) + ", tasks " + fmtBytes(n.TasksWorkingSet) +
		" of capacity " + fmtBytes(n.MemoryCapacity) + ", threshold " + strconv.FormatFloat(n.PressureThreshold*100, 'f', 0, 64) + "%"
	return SelectEvictions(cands, over, why)
}

// Node returns the latest node sample.
func (s *Sampler) Node() NodeSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeS
}

// Tasks returns a copy of the latest task samples.
func (s *Sampler) Tasks() []TaskSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TaskSample, 0, len(s.tasks))
	for _, t := range s.tasks {
		c := *t
		c.series = nil
		out = append(out, c)
	}
	return out
}

// Batch returns one remote-write sample per series at now, and starts a new
// peak window.
func (s *Sampler) Batch(now time.Time) []prompb.TimeSeries {
	ms := now.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]prompb.TimeSeries, 0, len(s.tasks)*8+4)
	for _, t := range s.tasks {
		if t.series == nil {
			t.series = s.taskSeries(t.Assignment)
		}
		a := t.Assignment
		vals := []float64{t.CPUSeconds, float64(t.MemoryWorkingSet), float64(t.MemoryPeak), a.CPURequestCores, a.CPULimitCores,
			float64(a.MemoryRequestBytes), float64(a.MemoryLimitBytes), float64(t.OOMKills)}
		for i, v := range vals {
			out = append(out, prompb.TimeSeries{Labels: t.series[i].Labels, Samples: []prompb.Sample{{Value: v, Timestamp: ms}}})
		}
		t.MemoryPeak = t.MemoryWorkingSet
	}
	n := s.nodeS
	for _, x := range []struct {
		name string
		v    float64
	}{
		{"fathom_node_cpu_capacity_cores", n.CPUCapacity}, {"fathom_node_memory_capacity_bytes", float64(n.MemoryCapacity)},
		{"fathom_node_cpu_usage_cores", n.CPUUsedCores}, {"fathom_node_memory_used_bytes", float64(n.MemoryUsed)},
	} {
		out = append(out, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: x.name}, {Name: "node", Value: s.node}},
			Samples: []prompb.Sample{{Value: x.v, Timestamp: ms}}})
	}
	return out
}

// taskSeriesNames is the order Batch emits a task's values in.
var taskSeriesNames = []string{
	"fathom_task_cpu_usage_seconds_total", "fathom_task_memory_working_set_bytes", "fathom_task_memory_peak_bytes",
	"fathom_task_cpu_request_cores", "fathom_task_cpu_limit_cores", "fathom_task_memory_request_bytes",
	"fathom_task_memory_limit_bytes", "fathom_task_oom_kills_total",
}

func (s *Sampler) taskSeries(a Assignment) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, len(taskSeriesNames))
	for i, name := range taskSeriesNames {
		// Sorted by name, as remote write requires.
		out[i].Labels = []prompb.Label{{Name: "__name__", Value: name}, {Name: "job_name", Value: a.JobName},
			{Name: "namespace", Value: a.Namespace}, {Name: "node", Value: s.node}, {Name: "task", Value: a.TaskID}}
	}
	return out
}

// Describe implements prometheus.Collector.
func (s *Sampler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.descs {
		ch <- d
	}
	ch <- s.infoDesc
}

// Collect implements prometheus.Collector from the latest sample.
func (s *Sampler) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tasks {
		a := t.Assignment
		lv := []string{a.Namespace, a.JobName, a.TaskID, s.node}
		put := func(name string, vt prometheus.ValueType, v float64) {
			ch <- prometheus.MustNewConstMetric(s.descs[name], vt, v, lv...)
		}
		put("fathom_task_cpu_usage_seconds_total", prometheus.CounterValue, t.CPUSeconds)
		put("fathom_task_memory_working_set_bytes", prometheus.GaugeValue, float64(t.MemoryWorkingSet))
		put("fathom_task_memory_peak_bytes", prometheus.GaugeValue, float64(t.MemoryPeak))
		put("fathom_task_cpu_request_cores", prometheus.GaugeValue, a.CPURequestCores)
		put("fathom_task_cpu_limit_cores", prometheus.GaugeValue, a.CPULimitCores)
		put("fathom_task_memory_request_bytes", prometheus.GaugeValue, float64(a.MemoryRequestBytes))
		put("fathom_task_memory_limit_bytes", prometheus.GaugeValue, float64(a.MemoryLimitBytes))
		put("fathom_task_oom_kills_total", prometheus.CounterValue, float64(t.OOMKills))
	}
	n := s.nodeS
	pressure := 0.0
	if n.MemoryPressure {
		pressure = 1
	}
	for name, v := range map[string]float64{
		"fathom_node_cpu_capacity_cores": n.CPUCapacity, "fathom_node_memory_capacity_bytes": float64(n.MemoryCapacity),
		"fathom_node_cpu_usage_cores": n.CPUUsedCores, "fathom_node_memory_used_bytes": float64(n.MemoryUsed),
		"fathom_node_memory_pressure": pressure, "fathom_agent_tasks_running": float64(len(s.tasks)),
	} {
		ch <- prometheus.MustNewConstMetric(s.descs[name], prometheus.GaugeValue, v, s.node)
	}
	if s.enforcement != "" {
		ch <- prometheus.MustNewConstMetric(s.infoDesc, prometheus.GaugeValue, 1, s.node, s.enforcement, s.backend, s.missing)
	}
}

// readProcStat returns idle and total jiffies of the whole machine.
func readProcStat() (idle, total uint64) {
	var buf [512]byte
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	n, _ := f.Read(buf[:])
	f.Close()
	line := buf[:n]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	fs := bytes.Fields(line)
	if len(fs) < 5 || string(fs[0]) != "cpu" {
		return 0, 0
	}
	for i, f := range fs[1:] {
		v, _ := strconv.ParseUint(string(f), 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return idle, total
}

// readMeminfo returns MemTotal and MemAvailable in bytes.
func readMeminfo() (total, avail int64) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(string(f[1]), 10, 64)
		switch string(f[0]) {
		case "MemTotal:":
			total = v << 10
		case "MemAvailable:":
			avail = v << 10
		}
		if total > 0 && avail > 0 {
			break
		}
	}
	return total, avail
}
