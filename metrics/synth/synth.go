package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/fathom-scheduler/fathom/metrics"
)

// Cluster describes what to generate.
type Cluster struct {
	Namespace string // default "team-a"
	JobName   string // default "web"
	// Jobs, when set, generates Tasks tasks for each of these jobs instead of
	// JobName alone (all sharing the nodes).
	Jobs  []string
	Tasks int // tasks per job; default 3
	Nodes int // default 2; tasks are spread round-robin
	// Start and End bound the samples; Step is the sample interval (default 10 s,
	// the agents' push interval).
	Start, End time.Time
	Step       time.Duration
	Seed       uint64
	// Recommendations adds the control plane's per-task
	// fathom_predictor_recommended_{cpu_cores,memory_bytes} series (which the
	// server exports, not the agents) to the generated series.
	Recommendations bool
	// Metrics limits the generated per-task metric names; empty means all of
	// metrics.TaskMetrics plus the node capacities.
	Metrics []string
}

func (c *Cluster) defaults() error {
	if c.Namespace == "" {
		c.Namespace = "team-a"
	}
	if c.JobName == "" {
		c.JobName = "web"
	}
	if c.Tasks == 0 {
		c.Tasks = 3
	}
	if c.Nodes == 0 {
		c.Nodes = 2
	}
	if c.Step == 0 {
		c.Step = 10 * time.Second
	}
	if c.Tasks < 0 || c.Nodes < 0 || c.Step < 0 {
		return fmt.Errorf("synth: Tasks (%d), Nodes (%d) and Step (%s) must not be negative", c.Tasks, c.Nodes, c.Step)
	}
	if !c.End.After(c.Start) {
		return fmt.Errorf("synth: End %s must be after Start %s", c.End, c.Start)
	}
	return nil
}

// NodeName is the name of node i.
func NodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// TaskName is the name of task i of a job, as the server names them.
func TaskName(job string, i int) string { return fmt.Sprintf("%s-%d", job, i) }

// Generate returns every series of c, each with all its samples.
func Generate(c Cluster) ([]metrics.Series, error) {
	var out []metrics.Series
	err := Walk(c, 0, func(batch []metrics.Series) error {
		out = append(out, batch...)
		return nil
	})
	return out, err
}

// Walk calls emit with consecutive time slices of the series of c, each slice
// holding every series with at most chunk samples (0 means all), in time order —
// the shape of successive remote-write pushes. emit may keep the slice.
func Walk(c Cluster, chunk int, emit func([]metrics.Series) error) error {
	if err := c.defaults(); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, m := range c.Metrics {
		want[m] = true
	}
	all := len(want) == 0
	type task struct {
		labels                                  map[string]string
		node                                    int
		cpuBase, cpuAmp, memBase, memAmp, phase float64
		cpuTotal, memPeak, ooms                 float64
		lastCPU, lastMem                        float64
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x5eed))
	jobs := c.Jobs
	if len(jobs) == 0 {
		jobs = []string{c.JobName}
	}
	tasks := make([]*task, c.Tasks*len(jobs))
	for i := range tasks {
		job, ti := jobs[i/c.Tasks], i%c.Tasks
		node := i % c.Nodes
		tasks[i] = &task{
			labels: map[string]string{
				metrics.LabelNamespace: c.Namespace, metrics.LabelJobName: job,
				metrics.LabelTask: TaskName(job, ti), metrics.LabelNode: NodeName(node),
			},
			node:    node,
			cpuBase: 0.1 + 0.4*rng.Float64(),
			memBase: (64 + 192*rng.Float64()) * (1 << 20), memAmp: (8 + 56*rng.Float64()) * (1 << 20),
			phase: 2 * math.Pi * rng.Float64(),
		}
		tasks[i].cpuAmp = tasks[i].cpuBase * (0.1 + 0.4*rng.Float64())
	}
	nodeLabels := make([]map[string]string, c.Nodes)
	for i := range nodeLabels {
		nodeLabels[i] = map[string]string{metrics.LabelNode: NodeName(i)}
	}
	n := int(c.End.Sub(c.Start) / c.Step)
	if chunk <= 0 {
		chunk = n + 1
	}
	for lo := 0; lo <= n; lo += chunk {
		hi := min(lo+chunk, n+1)
		type seriesKey struct {
			name   string
			owner  string // task or node name
			isNode bool
		}
		byKey := map[seriesKey]*metrics.Series{}
		var order []seriesKey
		add := func(name string, lbl map[string]string, ts int64, v float64) {
			if !all && !want[name] {
				return
			}
			key := seriesKey{name, lbl[metrics.LabelTask], false}
			if key.owner == "" {
				key = seriesKey{name, lbl[metrics.LabelNode], true}
			}
			s := byKey[key]
			if s == nil {
				l := map[string]string{"__name__": name}
				for k, v := range lbl {
					l[k] = v
				}
				s = &metrics.Series{Labels: l, Samples: make([]metrics.Sample, 0, hi-lo)}
				byKey[key] = s
				order = append(order, key)
			}
			s.Samples = append(s.Samples, metrics.Sample{TimestampMs: ts, Value: v})
		}
		for k := lo; k < hi; k++ {
			t := c.Start.Add(time.Duration(k) * c.Step)
			ms := t.UnixMilli()
			day := 2 * math.Pi * float64(t.Unix()%86400) / 86400
			for _, tk := range tasks {
				cpu := math.Max(0.01, tk.cpuBase+tk.cpuAmp*math.Sin(day+tk.phase)+0.03*rng.NormFloat64())
				mem := math.Max(16<<20, tk.memBase+tk.memAmp*math.Sin(day+tk.phase)+4*(1<<20)*rng.NormFloat64())
				tk.lastCPU, tk.lastMem = cpu, mem
				tk.cpuTotal += cpu * c.Step.Seconds()
				tk.memPeak = math.Max(tk.memPeak, mem)
				if mem > tk.memBase+0.97*tk.memAmp+6*(1<<20) { // a rare spike over the limit
					tk.ooms++
				}
				add(metrics.TaskCPUUsageSecondsTotal, tk.labels, ms, tk.cpuTotal)
				add(metrics.TaskMemoryWorkingSetBytes, tk.labels, ms, mem)
				add(metrics.TaskMemoryPeakBytes, tk.labels, ms, tk.memPeak)
				add(metrics.TaskCPURequestCores, tk.labels, ms, round(tk.cpuBase+0.6*tk.cpuAmp, 0.01))
				add(metrics.TaskCPULimitCores, tk.labels, ms, round(tk.cpuBase+1.5*tk.cpuAmp, 0.01))
				add(metrics.TaskMemoryRequestBytes, tk.labels, ms, round(tk.memBase+0.6*tk.memAmp, 1<<20))
				add(metrics.TaskMemoryLimitBytes, tk.labels, ms, round(tk.memBase+tk.memAmp+8*(1<<20), 1<<20))
				add(metrics.TaskOOMKillsTotal, tk.labels, ms, tk.ooms)
				if c.Recommendations {
					add(metrics.PredictorRecommendedCPUCores, tk.labels, ms, round(tk.cpuBase+0.5*tk.cpuAmp, 0.005))
					add(metrics.PredictorRecommendedMemoryBytes, tk.labels, ms, round(tk.memBase+0.9*tk.memAmp, 1<<20))
				}
			}
			nodeCPU := make([]float64, c.Nodes)
			nodeMem := make([]float64, c.Nodes)
			for _, tk := range tasks {
				nodeCPU[tk.node] += tk.lastCPU
				nodeMem[tk.node] += tk.lastMem
			}
			for i := 0; i < c.Nodes; i++ {
				lbl := nodeLabels[i]
				add(metrics.NodeCPUCapacityCores, lbl, ms, 2)
				add(metrics.NodeMemoryCapacityBytes, lbl, ms, 4<<30)
				// The machine runs more than the tasks: 0.1 core and 300 MiB of system.
				add(metrics.NodeCPUUsageCores, lbl, ms, nodeCPU[i]+0.1)
				add(metrics.NodeMemoryUsedBytes, lbl, ms, nodeMem[i]+300<<20)
				add(metrics.NodeMemoryPressure, lbl, ms, b2f(nodeMem[i]+300<<20 > 0.9*(4<<30)))
			}
		}
		batch := make([]metrics.Series, 0, len(order))
		for _, k := range order {
			batch = append(batch, *byKey[k])
		}
		if err := emit(batch); err != nil {
			return err
		}
	}
	return nil
}

func round(v, unit float64) float64 { return math.Round(v/unit) * unit }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
