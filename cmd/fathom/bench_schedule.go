package main

// fathom bench schedule: placement throughput and latency of the scheduler
// core on a synthetic cluster, and packing quality on the request shapes of a
// real trace (machines used against the lower bound).

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

func init() { addBenchCommand(newBenchScheduleCmd) }

type benchScheduleFlags struct {
	nodes, tasks      int
	seed              uint64
	trace, format     string
	at                float64
	machineCPU        float64
	machineMemory     float64
	nodeCPU, nodeMem  float64
	candidates        int
	overloadRisk      float64
	riskModel         string
	arrivalOrder      bool
	spareMachineRatio float64
	keepPriorities    bool
}

// benchScheduleResult is the -o json contract (ARCHITECTURE.md): nodes,
// tasks, placements_per_sec, latency_p50_us, latency_p99_us, machines_used,
// lower_bound; the rest are extras.
type benchScheduleResult struct {
	Nodes            int     `json:"nodes"`
	Tasks            int     `json:"tasks"`
	PlacementsPerSec float64 `json:"placements_per_sec"`
	LatencyP50us     float64 `json:"latency_p50_us"`
	LatencyP99us     float64 `json:"latency_p99_us"`
	MachinesUsed     int     `json:"machines_used"`
	LowerBound       int     `json:"lower_bound"`

	Placed          int       `json:"placed"`
	Unplaced        int       `json:"unplaced"`
	LatencyMaxus    float64   `json:"latency_max_us"`
	OverLowerBound  float64   `json:"over_lower_bound"` // machines_used/lower_bound − 1
	Mode            string    `json:"mode"`             // synthetic | trace
	Order           string    `json:"order"`            // arrival | scheduler
	Trace           string    `json:"trace,omitempty"`
	SkippedTooLarge int       `json:"skipped_too_large,omitempty"`
	MachineShape    []float64 `json:"machine_shape"`
	Candidates      int       `json:"candidates"`
	OverloadRisk    float64   `json:"overload_risk"`
	RiskModel       string    `json:"risk_model"`
	Seed            uint64    `json:"seed"`
	SetupSeconds    float64   `json:"setup_seconds"`
	// CPU time of the placement loop (user+system, all threads) and the
	// rate per CPU second: on a shared machine the wall-clock figures above
	// include time the process waited for a core.
	CPUSeconds          float64 `json:"cpu_seconds"`
	PlacementsPerCPUSec float64 `json:"placements_per_cpu_sec"`
	LoadAverage1m       float64 `json:"load_average_1m,omitempty"`
	ElapsedSeconds      float64 `json:"elapsed_seconds"`
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage reads the 1-minute load average (Linux), or 0.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func newBenchScheduleCmd(g *cli.Globals) *cobra.Command {
	var f benchScheduleFlags
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Measure placement speed and packing quality of the scheduler",
		Long: `Measure the scheduler core (package scheduler) with no server around it.

Synthetic (default): --nodes machines of --node-cpu cores and --node-memory
GiB receive --tasks tasks with seeded random shapes, predicted usage
distributions and priorities, one Place call per task in arrival order.
Prints placements per second, per-placement latency (p50/p99), the machines
used and the lower bound (max over resources of ⌈Σ request / capacity⌉).

Trace (--trace FILE --format google2011): the tasks present at --at seconds
(default 0: the trace's initial state) are packed in the scheduler's batch
order (priority, then largest first with CPU- and memory-heavy tasks
interleaved; --arrival-order keeps the trace's order) onto
machines of one shape (--machine-cpu 0.5, --machine-memory 0.4995: the
most common machine of the cell, in the trace's normalized units). Tasks
larger than that machine are skipped and counted. All tasks are packed as
one priority band unless --keep-priorities (then prod goes first, which
packs worse: bands are interleaved by shape only within themselves).`,
		Example: `  fathom bench schedule --nodes 10000 --tasks 100000 -o json
  fathom bench schedule --trace ../shared/traces/google2011/part-00000-of-00500.csv.gz --format google2011 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := runBenchSchedule(f, g.Stderr)
			if err != nil {
				return err
			}
			return g.Print(res, func(w io.Writer) {
				fmt.Fprintf(w, "nodes\ttasks\tplaced\tplacements/s\tp50 µs\tp99 µs\tmachines used\tlower bound\tover bound\n")
				fmt.Fprintf(w, "%d\t%d\t%d\t%.0f\t%.1f\t%.1f\t%d\t%d\t%.2f%%\n", res.Nodes, res.Tasks, res.Placed,
					res.PlacementsPerSec, res.LatencyP50us, res.LatencyP99us, res.MachinesUsed, res.LowerBound, 100*res.OverLowerBound)
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.nodes, "nodes", 10000, "synthetic: number of machines")
	fl.IntVar(&f.tasks, "tasks", 100000, "synthetic: number of tasks")
	fl.Uint64Var(&f.seed, "seed", 1, "seed for the synthetic workload and the scheduler's tie-breaks")
	fl.StringVar(&f.trace, "trace", "", "trace file to take request shapes from (with --format)")
	fl.StringVar(&f.format, "format", "google2011", "trace format: google2011 (task_events)")
	fl.Float64Var(&f.at, "at", 0, "trace: take the tasks present at this time, in seconds of the trace")
	fl.Float64Var(&f.machineCPU, "machine-cpu", 0.5, "trace: machine CPU capacity in the trace's units")
	fl.Float64Var(&f.machineMemory, "machine-memory", 0.4995, "trace: machine memory capacity in the trace's units")
	fl.Float64Var(&f.nodeCPU, "node-cpu", 16, "synthetic: machine CPU in cores")
	fl.Float64Var(&f.nodeMem, "node-memory", 64, "synthetic: machine memory in GiB")
	fl.IntVar(&f.candidates, "candidates", 0, "feasible nodes scored per placement (0: the scheduler's default)")
	fl.Float64Var(&f.overloadRisk, "overload-risk", scheduler.DefaultOverloadRisk, "ε: largest accepted probability of a machine's usage exceeding its capacity")
	fl.StringVar(&f.riskModel, "risk-model", "gaussian", "overload bound: gaussian, bernstein or cantelli")
	fl.BoolVar(&f.arrivalOrder, "arrival-order", false, "trace: place in trace order instead of largest first")
	fl.BoolVar(&f.keepPriorities, "keep-priorities", false, "trace: keep the trace's priority bands (prod placed first) instead of packing all shapes as one band")
	fl.Float64Var(&f.spareMachineRatio, "spare-machines", 0.1, "trace: machines offered beyond the lower bound, as a fraction of it")
	return cmd
}

func runBenchSchedule(f benchScheduleFlags, stderr io.Writer) (*benchScheduleResult, error) {
	rm, err := scheduler.ParseRiskModel(f.riskModel)
	if err != nil {
		return nil, cli.UsageErrorf("--risk-model: %v", err)
	}
	if !(f.overloadRisk > 0 && f.overloadRisk < 0.5) {
		return nil, cli.UsageErrorf("--overload-risk %v must be in (0, 0.5), e.g. 0.001", f.overloadRisk)
	}
	if f.candidates < 0 {
		return nil, cli.UsageErrorf("--candidates %d must be ≥ 0", f.candidates)
	}
	opts := scheduler.Options{Seed: f.seed, OverloadRisk: f.overloadRisk, Risk: rm, Candidates: f.candidates, KeepOrder: true}
	res := &benchScheduleResult{Candidates: f.candidates, OverloadRisk: f.overloadRisk, RiskModel: rm.String(), Seed: f.seed}
	if res.Candidates == 0 {
		res.Candidates = 8
	}
	setup := time.Now()
	var nodes []scheduler.Node
	var tasks []scheduler.Task
	var capacity scheduler.Resources
	if f.trace != "" {
		if f.format != "google2011" {
			return nil, cli.UsageErrorf("--format %q is not supported; use google2011 (task_events files)", f.format)
		}
		if !(f.machineCPU > 0 && f.machineMemory > 0) {
			return nil, cli.UsageErrorf("--machine-cpu and --machine-memory must be > 0")
		}
		capacity = scheduler.Resources{f.machineCPU, f.machineMemory}
		tasks, res.SkippedTooLarge, err = googleTraceTasks(f.trace, time.Duration(f.at*float64(time.Second)), capacity, f.keepPriorities)
		if err != nil {
			return nil, err
		}
		res.Mode, res.Trace = "trace", f.trace
		res.Order = "scheduler"
		if f.arrivalOrder {
			res.Order = "arrival"
		}
		lb := lowerBound(tasks, capacity)
		n := lb + int(math.Ceil(float64(lb)*f.spareMachineRatio)) + 1
		nodes = make([]scheduler.Node, n)
		for i := range nodes {
			nodes[i] = scheduler.Node{Name: "m" + strconv.Itoa(i), Capacity: capacity}
		}
	} else {
		if f.nodes <= 0 || f.tasks < 0 {
			return nil, cli.UsageErrorf("--nodes must be > 0 and --tasks ≥ 0")
		}
		if !(f.nodeCPU > 0 && f.nodeMem > 0) {
			return nil, cli.UsageErrorf("--node-cpu and --node-memory must be > 0")
		}
		capacity = scheduler.Resources{f.nodeCPU, f.nodeMem * (1 << 30)}
		nodes, tasks = syntheticCluster(f.nodes, f.tasks, capacity, f.seed)
		res.Mode, res.Order = "synthetic", "arrival"
	}
	res.MachineShape = capacity[:]
	res.Nodes, res.Tasks = len(nodes), len(tasks)
	res.LowerBound = lowerBound(tasks, capacity)
	s, err := scheduler.NewState(scheduler.ClusterView{Nodes: nodes})
	if err != nil {
		return nil, err
	}
	if res.Order == "scheduler" {
		// The scheduler's own batch order (State.Order): by priority, largest
		// first, CPU-heavy and memory-heavy tasks interleaved.
		tasks = s.Order(tasks)
	}
	res.SetupSeconds = time.Since(setup).Seconds()

	lat := make([]time.Duration, 0, len(tasks))
	one := make([]scheduler.Task, 1)
	runtime.GC()
	cpu0 := cpuTime()
	start := time.Now()
	for i := range tasks {
		one[0] = tasks[i]
		t0 := time.Now()
		plan, err := s.Place(one, opts)
		d := time.Since(t0)
		if err != nil {
			return nil, err
		}
		lat = append(lat, d)
		res.Placed += len(plan.Placements)
		res.Unplaced += len(plan.Unplaced)
	}
	total := time.Since(start)
	res.CPUSeconds = (cpuTime() - cpu0).Seconds()
	res.ElapsedSeconds = total.Seconds()
	if res.CPUSeconds > 0 {
		res.PlacementsPerCPUSec = float64(len(tasks)) / res.CPUSeconds
	}
	res.LoadAverage1m = loadAverage()
	if total > 0 {
		res.PlacementsPerSec = float64(len(tasks)) / total.Seconds()
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	res.LatencyP50us, res.LatencyP99us, res.LatencyMaxus = q(0.5), q(0.99), q(1)
	for _, u := range s.Usage() {
		if u.Tasks > 0 {
			res.MachinesUsed++
		}
	}
	if res.LowerBound > 0 {
		res.OverLowerBound = float64(res.MachinesUsed)/float64(res.LowerBound) - 1
	}
	return res, nil
}

// lowerBound is max over resources of ⌈Σ request / capacity⌉.
func lowerBound(tasks []scheduler.Task, capacity scheduler.Resources) int {
	var sum scheduler.Resources
	for i := range tasks {
		sum = sum.Add(tasks[i].Request)
	}
	lb := 0
	for r := range sum {
		lb = max(lb, int(math.Ceil(sum[r]/capacity[r]-1e-9)))
	}
	return lb
}

// googleTraceTasks reads the tasks present at time at from a Google 2011
// task_events file, as scheduler tasks with their requests; tasks larger than
// the machine are skipped and counted.
func googleTraceTasks(path string, at time.Duration, capacity scheduler.Resources, keepPriorities bool) ([]scheduler.Task, int, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("--trace: %w", err)
	}
	defer fh.Close()
	var events []trace.GoogleTaskEvent
	if _, err := trace.ScanGoogleTaskEvents(fh, func(e trace.GoogleTaskEvent) bool {
		if e.Time > at {
			return false
		}
		events = append(events, e)
		return true
	}); err != nil {
		return nil, 0, fmt.Errorf("--trace %s: %w", path, err)
	}
	present := trace.GoogleTasksAt(events, at)
	out := make([]scheduler.Task, 0, len(present))
	skipped := 0
	for _, t := range present {
		if !t.HasRequest {
			continue
		}
		req := scheduler.Resources{t.CPU, t.Memory}
		if !req.Fits(capacity) {
			skipped++
			continue
		}
		p := scheduler.Batch
		if keepPriorities {
			p, _ = scheduler.ParsePriority(trace.GooglePriorityBand(t.Priority))
		}
		out = append(out, scheduler.Task{
			ID:       strconv.FormatInt(t.Job, 10) + "/" + strconv.Itoa(t.Index),
			Job:      strconv.FormatInt(t.Job, 10),
			Priority: p,
			Request:  req,
		})
	}
	if len(out) == 0 {
		return nil, 0, fmt.Errorf("--trace %s: no tasks with requests present at %v; is it a task_events file?", path, at)
	}
	return out, skipped, nil
}

// syntheticCluster makes n identical machines and m tasks with seeded random
// shapes: CPU requests of 0.1-4 cores, memory 0.25-16 GiB loosely tied to
// CPU, predicted usage around 60% of the request, 20% prod (limit 1.5× the
// request), 50% batch, 30% best-effort; prod services spread one per node.
func syntheticCluster(n, m int, capacity scheduler.Resources, seed uint64) ([]scheduler.Node, []scheduler.Task) {
	nodes := make([]scheduler.Node, n)
	for i := range nodes {
		nodes[i] = scheduler.Node{Name: "n" + strconv.Itoa(i), Capacity: capacity}
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	tasks := make([]scheduler.Task, m)
	const gib = 1 << 30
	for i := range tasks {
		cpu := math.Round(0.1*math.Exp(rng.Float64()*math.Log(40))*10) / 10
		mem := math.Round(cpu*gib*(0.5+rng.Float64()*3.5)/(64<<20)) * (64 << 20)
		mem = min(max(mem, 256<<20), 16*gib)
		t := scheduler.Task{
			ID:      "t" + strconv.Itoa(i),
			Request: scheduler.Resources{cpu, mem},
		}
		for r := range t.Usage {
			t.Usage[r] = scheduler.Dist{Mean: 0.6 * t.Request[r], StdDev: 0.15 * t.Request[r]}
		}
		switch p := rng.Float64(); {
		case p < 0.2:
			t.Priority = scheduler.Prod
			t.Limit = scheduler.Resources{1.5 * cpu, 1.5 * mem}
			t.Job = "svc" + strconv.Itoa(i/6)
			t.MaxPerNode = 1
		case p < 0.7:
			t.Priority = scheduler.Batch
			t.Job = "batch" + strconv.Itoa(i/50)
		default:
			t.Priority = scheduler.BestEffort
		}
		tasks[i] = t
	}
	return nodes, tasks
}
