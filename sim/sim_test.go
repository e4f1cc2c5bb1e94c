package sim

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

const excerpt = "testdata/bitbrains-rnd-vm001-008-4d.csv.gz"

func loadExcerpt(t *testing.T) ([]predictor.Series, *Workload) {
	t.Helper()
	series, err := LoadBitbrains(excerpt, trace.VMRange{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := FromSeries(excerpt, series, scheduler.Batch)
	if err != nil {
		t.Fatal(err)
	}
	return series, w
}

func close(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// The simulator's per-task figures are the limits the control loop applied,
// scored by the same Tally as `fathom model eval`: the provisioned policy,
// whose limits are the owners' sizes, scores as the evaluation does (up to
// the whole MiB and millicore the loop rounds to), and every policy scores
// about the windows the evaluation does (not those when no copy runs).
func TestPerTaskFiguresScoreWhatRan(t *testing.T) {
	series, w := loadExcerpt(t)
	pols := []string{PolicyProvisioned, "vpa", "autopilot", "fathom"}
	want, err := predictor.Evaluate(series, predictor.EvalOptions{Policies: pols, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(w, Options{Policies: pols})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(want) {
		t.Fatalf("sim gave %d results, eval %d", len(rep.Results), len(want))
	}
	for i, g := range rep.Results {
		e := want[i]
		t.Logf("%s %s: sim footprint %.3f violations %.3f%%, eval %.3f %.3f%%", g.Policy, g.Resource, g.Footprint, 100*g.Violations, e.Footprint, 100*e.Violations)
		if g.Policy != e.Policy || g.Resource != e.Resource || g.Tasks != e.Tasks || e.Windows == 0 ||
			g.Windows > e.Windows || float64(g.Windows) < 0.99*float64(e.Windows) {
			t.Errorf("%s %s: sim scored %d windows of %d tasks, eval %d of %d", e.Policy, e.Resource, g.Windows, g.Tasks, e.Windows, e.Tasks)
		}
		if g.Policy == PolicyProvisioned && (math.Abs(g.Footprint-1) > 0.01 || math.Abs(g.Violations-e.Violations) > 0.001) {
			t.Errorf("provisioned %s: footprint %v violations %v; want the owners' sizes (1, %v)", g.Resource, g.Footprint, g.Violations, e.Violations)
		}
	}
}

// An OOM kill is a memory violation: the window in which a task's memory
// went past its limit is scored against that limit, as `fathom model eval`
// scores it, and not dropped because the killed copy no longer runs. (The
// simulator once reported 0 memory violations for every policy on the full
// Bitbrains trace, where eval reports 0.002%-0.14%, while counting
// thousands of OOM kills.)
func TestOOMKillIsAMemoryViolation(t *testing.T) {
	const gi = 1 << 30
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s := predictor.Series{Task: predictor.TaskKey{Namespace: "t", Job: "a"}}
	n := 2 * 288 // two days: one past the 24 h warm-up
	for k := range n {
		mem := 0.5 * gi
		if k == 400 || k == 401 || k == 500 {
			mem = 1.5 * gi // above the 1 GiB the owner provisioned, and its limit
		}
		s.Windows = append(s.Windows, models.Window{Start: t0.Add(time.Duration(k) * Step), CPU: 0.1, CPUPeak: 0.1, Memory: mem})
		s.Provisioned = append(s.Provisioned, models.Size{CPU: 1, Memory: 1 * gi})
	}
	want, err := predictor.Evaluate([]predictor.Series{s}, predictor.EvalOptions{Policies: []string{PolicyProvisioned}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	w, err := FromSeries("synthetic", []predictor.Series{s}, scheduler.Batch)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(w, Options{Policies: []string{PolicyProvisioned}, Machine: models.Size{CPU: 4, Memory: 4 * gi}})
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Cluster[0]; c.OOMKills != 3 {
		t.Fatalf("%d OOM kills; want 3 (windows 400, 401 and 500 use 1.5 GiB under a 1 GiB limit)", c.OOMKills)
	}
	for i, g := range rep.Results {
		e := want[i]
		if g.Resource != "memory" {
			continue
		}
		if e.Violations == 0 || g.Windows != e.Windows || !close(g.Violations, e.Violations) || !close(g.SevereViolations, e.SevereViolations) {
			t.Fatalf("memory: sim %d windows, violations %v (severe %v); eval %d, %v (%v)", g.Windows, g.Violations, g.SevereViolations,
				e.Windows, e.Violations, e.SevereViolations)
		}
	}
}

// The oracle starts a task at the usage of its first window: a usage of a
// fraction of a byte (Bitbrains gives KB as decimals) must not be cut to a
// hint below it and OOM-killed in the first window. A task whose usage never
// changes is never OOM-killed under the oracle.
func TestOracleFlatUsageNeverOOMs(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var series []predictor.Series
	for j, mem := range []float64{1059423027.2, 94487347.6} {
		s := predictor.Series{Task: predictor.TaskKey{Namespace: "t", Job: string(rune('a' + j))}}
		for k := range 50 {
			s.Windows = append(s.Windows, models.Window{Start: t0.Add(time.Duration(k) * Step), CPU: 0.3, CPUPeak: 0.3, Memory: mem})
			s.Provisioned = append(s.Provisioned, models.Size{CPU: 1, Memory: 2 << 30})
		}
		series = append(series, s)
	}
	w, err := FromSeries("synthetic", series, scheduler.Batch)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(w, Options{Policies: []string{PolicyOracle}, Machine: models.Size{CPU: 4, Memory: 4 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Cluster[0]; c.OOMKills != 0 {
		t.Fatalf("oracle: %d OOM kills of tasks whose memory never changes; want 0", c.OOMKills)
	}
}

func TestRunIsDeterministic(t *testing.T) {
	_, w := loadExcerpt(t)
	opts := Options{Seed: 7, Failures: []Failure{{Machines: 1, At: 36 * time.Hour}}, Timeseries: true}
	a, err := Run(w, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(w, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Cluster {
		a.Cluster[i].SimSeconds, b.Cluster[i].SimSeconds = 0, 0
	}
	if !reflect.DeepEqual(a.Results, b.Results) || !reflect.DeepEqual(a.Cluster, b.Cluster) || !reflect.DeepEqual(a.Timeseries, b.Timeseries) {
		t.Fatalf("two runs with the same seed differ:\n%+v\n%+v", a.Cluster, b.Cluster)
	}
}

func TestClusterInvariants(t *testing.T) {
	_, w := loadExcerpt(t)
	rep, err := Run(w, Options{Timeseries: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Machine != w.LargestProvisioned() {
		t.Fatalf("default machine %+v, want the largest provisioned %+v", rep.Machine, w.LargestProvisioned())
	}
	byPolicy := map[string]Cluster{}
	for _, c := range rep.Cluster {
		byPolicy[c.Policy] = c
		if c.PendingTaskWindows != 0 {
			t.Errorf("%s: %d task-windows pending; with the default machine every task fits", c.Policy, c.PendingTaskWindows)
		}
		if c.Utilization <= 0 || c.Utilization > 1 {
			t.Errorf("%s: utilization %v out of (0, 1]", c.Policy, c.Utilization)
		}
	}
	// Baselines pack on their limits and what runs is capped by the limit:
	// no machine can be overloaded and nothing is evicted.
	for _, p := range []string{PolicyProvisioned, "vpa", "autopilot", PolicyOracle} {
		if c := byPolicy[p]; c.Overloaded != 0 || c.Evictions != 0 {
			t.Errorf("%s: %d overloaded machine-windows, %d evictions; packing on limits cannot overload", p, c.Overloaded, c.Evictions)
		}
	}
	// The oracle knows the coming window, so it hardly runs below the lower
	// bound and packs tighter than the provisioned sizes; through the same
	// loop (whole millicores, the minimum limits, resizes that must find
	// room) it is not a perfect floor, but no other policy's limits sit as
	// close to usage.
	o := byPolicy[PolicyOracle]
	below, n := 0, 0
	for _, pt := range rep.Timeseries {
		if pt.Policy == PolicyOracle {
			n++
			if pt.Machines < pt.LowerBound {
				below++ // a grown size that found no room for a window: usage throttled
			}
		}
	}
	if float64(below) > 0.01*float64(n) {
		t.Errorf("oracle below the lower bound in %d of %d windows", below, n)
	}
	if pr := byPolicy[PolicyProvisioned]; pr.MachinesMean < o.MachinesMean {
		t.Errorf("provisioned uses %.2f machines, the oracle %.2f", pr.MachinesMean, o.MachinesMean)
	}
	slack := map[string]float64{}
	for _, r := range rep.Results {
		slack[r.Policy+r.Resource] += r.Slack
		if r.Policy == PolicyOracle && r.Violations > 0.001 {
			t.Errorf("oracle %s: violations %v, want under 0.1%%", r.Resource, r.Violations)
		}
	}
	for _, p := range []string{PolicyProvisioned, "vpa", "autopilot", "fathom"} {
		if slack[p+"memory"] <= slack[PolicyOracle+"memory"] {
			t.Errorf("%s memory slack %v not above the oracle's %v", p, slack[p+"memory"], slack[PolicyOracle+"memory"])
		}
	}
	// The time series adds up to the summary.
	sum := map[string]int{}
	for _, p := range rep.Timeseries {
		sum[p.Policy] += p.Machines
	}
	for p, c := range byPolicy {
		if sum[p] != c.MachineWindows {
			t.Errorf("%s: time series has %d machine-windows, summary %d", p, sum[p], c.MachineWindows)
		}
	}
}

func TestFailureReplacesTasks(t *testing.T) {
	_, w := loadExcerpt(t)
	pols := []string{"vpa", "fathom"}
	base, err := Run(w, Options{Policies: pols})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(w, Options{Policies: pols, Failures: []Failure{{Machines: 1, At: 50 * time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range rep.Cluster {
		if c.FailedMachines != 1 {
			t.Errorf("%s: %d machines failed, want 1", c.Policy, c.FailedMachines)
		}
		if c.Reschedules <= base.Cluster[i].Reschedules {
			t.Errorf("%s: %d reschedules with a failure, %d without; the failed machine's tasks must be re-placed", c.Policy, c.Reschedules, base.Cluster[i].Reschedules)
		}
		if c.PendingTaskWindows != 0 {
			t.Errorf("%s: tasks left pending after the failure", c.Policy)
		}
	}
}

// last is a recommender that requests what the task used in its last
// window under a fixed limit: a test fixture that makes the scheduler
// oversubscribe memory so that eviction can be checked exactly.
type last struct {
	use models.Size
	lim models.Size
}

func (l *last) Kind() string                  { return "last" }
func (l *last) Observe(w models.Window)       { l.use = models.Size{CPU: w.CPU, Memory: w.Memory} }
func (l *last) ObserveOOM(time.Time, float64) {}
func (l *last) Limit(time.Time) models.Size   { return l.lim }
func (l *last) Recommend(time.Time) models.Recommendation {
	return models.Recommendation{
		CPU:    models.Estimate{Request: l.use.CPU, Limit: l.lim.CPU, Mean: l.use.CPU},
		Memory: models.Estimate{Request: l.use.Memory, Limit: l.lim.Memory, Mean: l.use.Memory},
	}
}

// A baseline packs on its limits (request = limit) also after an OOM kill
// raises its memory: a request left below the raised limit oversubscribed
// the machine (the oracle overloaded 2 machine-windows of Bitbrains VMs
// 151-250 so, with Σ memory limits 42.9 GB on a 34.4 GB machine).
func TestPackOnLimitSurvivesOOMKill(t *testing.T) {
	const gi = 1 << 30
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s := predictor.Series{Task: predictor.TaskKey{Namespace: "t", Job: "a"}}
	for k := range 40 {
		mem := 0.5 * gi
		if k >= 10 {
			mem = 1.5 * gi // past the recommender's 1 GiB limit: OOM kills, each raising the limit
		}
		s.Windows = append(s.Windows, models.Window{Start: t0.Add(time.Duration(k) * Step), CPU: 0.1, CPUPeak: 0.1, Memory: mem})
		s.Provisioned = append(s.Provisioned, models.Size{CPU: 1, Memory: 1 * gi})
	}
	w, err := FromSeries("synthetic", []predictor.Series{s}, scheduler.Batch)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(w, Options{
		Policies: []string{"vpa"}, Machine: models.Size{CPU: 4, Memory: 8 * gi}, SampleTasks: 1,
		New: func(string) (models.Recommender, error) { return &last{lim: models.Size{CPU: 1, Memory: 1 * gi}}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Cluster[0]; c.OOMKills == 0 {
		t.Fatalf("no OOM kill; the test needs one")
	}
	raised := false
	for _, p := range rep.TaskSeries {
		if p.Limit.Memory > 1.1*gi {
			raised = true
		}
		if p.Limit.Memory > 0 && p.Request.Memory != p.Limit.Memory {
			t.Fatalf("%s: memory request %.0f MiB under a limit of %.0f MiB; a baseline packs on its limit", p.Time.Format(time.TimeOnly),
				p.Request.Memory/(1<<20), p.Limit.Memory/(1<<20))
		}
	}
	if !raised {
		t.Fatalf("the OOM kills never raised the limit above 1 GiB: %+v", rep.TaskSeries)
	}
}

func TestMemoryOverloadEvictsLowestPriority(t *testing.T) {
	const gi = 1 << 30
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(job string, mem func(k int) float64) predictor.Series {
		s := predictor.Series{Task: predictor.TaskKey{Namespace: "t", Job: job}}
		for k := range 10 {
			s.Windows = append(s.Windows, models.Window{Start: t0.Add(time.Duration(k) * Step), CPU: 0.1, CPUPeak: 0.1, Memory: mem(k)})
			s.Provisioned = append(s.Provisioned, models.Size{CPU: 1, Memory: 1 * gi})
		}
		return s
	}
	flat := func(int) float64 { return 1 * gi }
	grow := func(k int) float64 {
		if k >= 4 {
			return 2 * gi
		}
		return 1 * gi
	}
	w, err := FromSeries("synthetic", []predictor.Series{mk("a", grow), mk("b", grow), mk("c", flat)}, scheduler.Batch)
	if err != nil {
		t.Fatal(err)
	}
	w.Tasks[2].Priority = scheduler.BestEffort // c goes first
	rep, err := Run(w, Options{
		Policies: []string{"fathom"}, Machine: models.Size{CPU: 4, Memory: 4 * gi}, Timeseries: true, SampleTasks: 3,
		New: func(string) (models.Recommender, error) {
			return &last{lim: models.Size{CPU: 1, Memory: 3 * gi}}, nil
		},
		// The recommender's own distribution: this test is about the
		// eviction order.
		StepSpread: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Cluster[0]
	// Three tasks of 1 GiB share one 4 GiB machine; from window 4, a and b
	// use 2 GiB each: 5 GiB > 4 GiB, the machine is overloaded and c
	// (best-effort) is evicted, and placed again elsewhere with a request
	// raised to what it used; a and b stay.
	if c.Overloaded < 1 || c.Evictions != 1 {
		t.Fatalf("overloaded %d, evictions %d; want ≥ 1, 1\n%+v", c.Overloaded, c.Evictions, rep.Timeseries)
	}
	moved := map[string]bool{}
	first := map[string]string{}
	for _, p := range rep.TaskSeries {
		if p.Machine == "" {
			continue
		}
		if m, ok := first[p.Task]; !ok {
			first[p.Task] = p.Machine
		} else if m != p.Machine {
			moved[p.Task] = true
		}
	}
	if !moved["t/c/0"] || moved["t/a/0"] || moved["t/b/0"] {
		t.Fatalf("moved %v; want only c (the best-effort task) moved by the eviction", moved)
	}
}

// The fathom policy steers to Options.Budget (the one `fathom sim
// --violation-budget` sets, as the server's and `model eval`'s): a budget
// ten times looser buys smaller limits and more windows over them, and the
// report says which budget was steered to.
func TestSimSteersToTheBudget(t *testing.T) {
	_, w := loadExcerpt(t)
	run := func(b models.ViolationBudget) (*Report, [2]predictor.Result) {
		t.Helper()
		rep, err := Run(w, Options{Policies: []string{"fathom"}, Budget: b})
		if err != nil {
			t.Fatal(err)
		}
		var out [2]predictor.Result
		for _, r := range rep.Results {
			out[map[string]int{"cpu": 0, "memory": 1}[r.Resource]] = r
		}
		return rep, out
	}
	def, tight := run(models.ViolationBudget{})
	loose := models.ViolationBudget{CPU: 0.05, Memory: 0.005}
	lrep, lr := run(loose)
	if def.Budget != models.DefaultViolationBudget() || lrep.Budget != loose {
		t.Errorf("reported budgets %v and %v; want %v and %v", def.Budget, lrep.Budget, models.DefaultViolationBudget(), loose)
	}
	for r := range 2 {
		t.Logf("%s: default budget footprint %.3f violations %.3f%%; loose %.3f %.3f%%", tight[r].Resource,
			tight[r].Footprint, 100*tight[r].Violations, lr[r].Footprint, 100*lr[r].Violations)
	}
	if !(lr[0].Footprint < tight[0].Footprint) || !(lr[0].Violations > tight[0].Violations) {
		t.Errorf("cpu: a 10x looser budget gave footprint %.3f violations %.4f; default %.3f %.4f", lr[0].Footprint, lr[0].Violations, tight[0].Footprint, tight[0].Violations)
	}
}

func TestOptionsRejectBadInput(t *testing.T) {
	_, w := loadExcerpt(t)
	for _, o := range []Options{
		{Policies: []string{"nope"}},
		{Policies: []string{"vpa", "vpa"}},
		{OverloadRisk: 0.7},
		{Machine: models.Size{CPU: -1}},
		{Failures: []Failure{{Machines: 0}}},
		{Correlation: &scheduler.Resources{-0.1, 0}},
		{Correlation: &scheduler.Resources{0, 1.5}},
		{Risk: scheduler.RiskBernstein, Correlation: &scheduler.Resources{0.1, 0}},
		{Budget: models.ViolationBudget{CPU: 0.9}},
		{Budget: models.ViolationBudget{Memory: -0.1}},
	} {
		if _, err := Run(w, o); !errors.Is(err, ErrInvalid) {
			t.Errorf("Run(%+v) = %v, want ErrInvalid", o, err)
		}
	}
}

func TestParseFailure(t *testing.T) {
	for in, want := range map[string]Failure{"2@3d": {2, 72 * time.Hour}, "1@36h": {1, 36 * time.Hour}, "3@0.5d": {3, 12 * time.Hour}} {
		got, err := ParseFailure(in)
		if err != nil || got != want {
			t.Errorf("ParseFailure(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"2", "x@1d", "0@1d", "1@soon", "1@-2h"} {
		if _, err := ParseFailure(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseFailure(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestLoadFathomFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fw := trace.NewFathomWriter(f)
	t0 := time.Unix(1700000000, 0).UTC()
	for k := range 12 {
		_ = fw.Write(trace.FathomRow{Time: t0.Add(time.Duration(k) * Step), Namespace: "ns", Job: "web", Priority: "prod", CPU: 0.5, Memory: 1 << 28, CPURequest: 1, MemoryRequest: 1 << 30})
		_ = fw.Write(trace.FathomRow{Time: t0.Add(time.Duration(k) * Step), Namespace: "ns", Job: "etl", Priority: "best-effort", CPU: 2, Memory: 1 << 29})
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	w, err := Load(path, "fathom", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Tasks) != 2 || w.Slots != 12 {
		t.Fatalf("%d tasks over %d slots, want 2 over 12", len(w.Tasks), w.Slots)
	}
	if w.Tasks[0].Key.Job != "etl" || w.Tasks[0].Priority != scheduler.BestEffort || w.Tasks[1].Priority != scheduler.Prod {
		t.Fatalf("tasks %+v %+v: want etl best-effort, web prod", w.Tasks[0].Key, w.Tasks[1].Key)
	}
	// etl has no provisioned size: the machine takes its peak usage.
	if got := w.LargestProvisioned(); got != (models.Size{CPU: 2, Memory: 1 << 30}) {
		t.Fatalf("largest provisioned %+v", got)
	}
	if _, err := Run(w, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, "nope", LoadOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown format: %v", err)
	}
}

func TestLoadGoogleJoinsUsage(t *testing.T) {
	w, err := Load("testdata/google2011", "google2011", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Tasks) != 2 {
		t.Fatalf("%d tasks, want the 2 with task_usage rows", len(w.Tasks))
	}
	tk := w.Tasks[0]
	// task_events: priority 9 (prod), request 0.125 CPU / 0.07446 memory;
	// task_usage: cpu_rate 0.001562, max_memory 0.06787.
	if tk.Priority != scheduler.Prod || !close(tk.Provisioned[0].CPU, 0.125*GoogleMachineCores) ||
		!close(tk.Windows[0].CPU, 0.001562*GoogleMachineCores) || !close(tk.Windows[0].Memory, 0.06787*GoogleMachineBytes) {
		t.Fatalf("task %+v", tk)
	}
	if _, err := Run(w, Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAlibabaContainers(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("trace/testdata/alibaba2018-container_meta-30rows.csv")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "container_meta.csv"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Load(dir, "alibaba2018", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Tasks) == 0 || len(w.Assumptions) < 2 {
		t.Fatalf("%d tasks, assumptions %q", len(w.Tasks), w.Assumptions)
	}
	// c_1: cpu_request 400 (4 cores), mem_size 1.56 of 100; usage = request.
	c1 := w.Tasks[0]
	if c1.Key.Job != "c_1" || c1.Windows[0].CPU != 4 || !close(c1.Windows[0].Memory, 1.56/100*AlibabaMachineBytes) || c1.Provisioned[0].CPU != 4 {
		t.Fatalf("c_1: %+v %+v", c1.Key, c1.Windows[0])
	}
	rep, err := Run(w, Options{Policies: []string{PolicyProvisioned, PolicyOracle}})
	if err != nil {
		t.Fatal(err)
	}
	// Usage equals the request: provisioned packs exactly like the oracle.
	if rep.Cluster[0].Overloaded != 0 || rep.Cluster[0].MachinesMean < rep.Cluster[1].MachinesMean-1e-9 {
		t.Fatalf("provisioned %+v, oracle %+v", rep.Cluster[0], rep.Cluster[1])
	}
}
