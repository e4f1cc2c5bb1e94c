package sim

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// Report is what Run returns: the per-task figures (the same
// predictor.Result that `fathom model eval` prints) and the cluster figures
// per policy.
type Report struct {
	Trace   string             `json:"trace"`
	Results []predictor.Result `json:"results"`
	Cluster []Cluster          `json:"cluster"`
	// Machine is the machine shape used (CPU cores, memory bytes).
	Machine      models.Size `json:"machine"`
	Tasks        int         `json:"tasks"`
	Windows      int         `json:"windows"`
	OverloadRisk float64     `json:"overload_risk"`
	// RiskCorrelation is the ρ (CPU, memory) the scheduler's bound used;
	// StepCorrelation the estimate from this workload (whether or not it
	// was used).
	RiskCorrelation scheduler.Resources `json:"risk_correlation"`
	StepCorrelation StepCorrelation     `json:"step_correlation"`
	Assumptions     []string            `json:"assumptions,omitempty"`
	// Timeseries has one point per policy per window when asked for.
	Timeseries []Point `json:"-"`
	// TaskSeries has per-window usage and sizes of a few sample tasks.
	TaskSeries []TaskPoint `json:"-"`
}

// Cluster is one policy's cluster figures over the whole run.
type Cluster struct {
	Policy string `json:"policy"`
	// MachinesMean is the mean over windows of the machines running at
	// least one task; MachinesPeak the most in any window.
	MachinesMean float64 `json:"machines_mean"`
	MachinesPeak int     `json:"machines_peak"`
	// LowerBoundMean is the mean over windows of max over resources of
	// ⌈Σ usage / capacity⌉: no policy can use fewer machines.
	LowerBoundMean float64 `json:"lower_bound_mean"`
	// RequestBoundMean is the same bound on the policy's own placed
	// requests: how tightly the scheduler packed what the policy asked for.
	RequestBoundMean float64 `json:"request_bound_mean"`
	// Utilization is Σ usage / Σ capacity of the machines in use, for the
	// more used resource (UtilizationCPU and UtilizationMemory give both).
	Utilization       float64 `json:"utilization"`
	UtilizationCPU    float64 `json:"utilization_cpu"`
	UtilizationMemory float64 `json:"utilization_memory"`
	// OverloadedMachineWindows is the fraction of machine-windows whose
	// summed usage exceeded capacity in some resource; Overloaded counts them
	// and MachineWindows is Σ machines in use over windows.
	OverloadedMachineWindows float64 `json:"overloaded_machine_windows"`
	Overloaded               int     `json:"overloaded"`
	MachineWindows           int     `json:"machine_windows"`
	// Evictions: tasks evicted from a machine whose memory ran out.
	Evictions int `json:"evictions"`
	// Reschedules: placements of a task that had run before (after an
	// eviction, a machine failure, a resize that did not fit in place, or a
	// consolidation move).
	Reschedules int `json:"reschedules"`
	// Resizes: placed sizes changed in place.
	Resizes int `json:"resizes"`
	// Alone counts placements on a machine of the task's own because the
	// risk bound admitted the task nowhere, not even on an empty machine.
	Alone int `json:"alone"`
	// FailedMachines is how many machines --fail took down.
	FailedMachines int `json:"failed_machines"`
	// PendingTaskWindows counts task-windows a task could not be placed
	// (larger than a machine, or no machine left).
	PendingTaskWindows int `json:"pending_task_windows"`
	// SimSeconds is the wall time the policy took.
	SimSeconds float64 `json:"sim_seconds"`
}

// Point is one policy's cluster state in one window (for --timeseries).
type Point struct {
	Time        time.Time
	Policy      string
	Machines    int
	LowerBound  int
	Usage       models.Size // Σ usage of running tasks
	Requested   models.Size // Σ placed requests
	Overloaded  int         // machines overloaded in the window
	Evictions   int
	Reschedules int
	Pending     int
}

// TaskPoint is one sample task's window under one policy.
type TaskPoint struct {
	Time    time.Time
	Policy  string
	Task    string
	Usage   models.Size
	Request models.Size
	Limit   models.Size
	Machine string
}

// Run simulates the workload under each policy. It does no I/O and does not
// read the clock except to report SimSeconds; the results are deterministic
// for a workload, options and seed.
func Run(w *Workload, opts Options) (*Report, error) {
	if err := opts.normalize(w); err != nil {
		return nil, err
	}
	rep := &Report{
		Trace: w.Name, Machine: opts.Machine, Tasks: len(w.Tasks), Windows: w.Slots,
		OverloadRisk: opts.OverloadRisk, Assumptions: w.Assumptions,
	}
	rep.StepCorrelation = EstimateStepCorrelation(w, 0, 0)
	if opts.Correlation == nil {
		var c scheduler.Resources // online: updated per run as it goes
		switch {
		case opts.Risk == scheduler.RiskBernstein:
			rep.Assumptions = append(rep.Assumptions, "the bernstein risk model assumes independent tasks: correlation 0")
		case opts.CorrelationFromTrace:
			for r := range c {
				c[r] = min(max(rep.StepCorrelation.Weighted[r], 0), 1)
			}
		}
		opts.Correlation = &c
	}
	rep.RiskCorrelation = *opts.Correlation
	for i := range w.Tasks {
		p := w.Tasks[i].maxProvisioned()
		if p.CPU > opts.Machine.CPU || p.Memory > opts.Machine.Memory {
			rep.Assumptions = append(rep.Assumptions, fmt.Sprintf("some tasks (first: %s, %.3g cores / %.3g bytes) are larger than the machine; they may stay pending", w.Tasks[i].ID(), p.CPU, p.Memory))
			break
		}
	}
	runs := make([]*run, len(opts.Policies))
	total := w.Slots * len(opts.Policies)
	var done atomic.Int64
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for i, p := range opts.Policies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r := newRun(w, p, &opts)
			if opts.Progress != nil {
				r.tick = func() { opts.Progress(int(done.Add(1)), total) }
			}
			errs[i] = r.simulate()
			runs[i] = r
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if opts.online {
		rep.RiskCorrelation = runs[0].online.rho
		for _, r := range runs {
			if r.policy == "fathom" {
				rep.RiskCorrelation = r.online.rho
			}
		}
		rep.Assumptions = append(rep.Assumptions, fmt.Sprintf("ρ estimated online from the windows replayed so far; at the end cpu %.3f, memory %.3f", rep.RiskCorrelation[0], rep.RiskCorrelation[1]))
	}
	for _, r := range runs {
		var cpu, mem predictor.Tally
		for i := range r.tasks {
			tl := r.tasks[i].replay.Tallies()
			cpu.Merge(tl[0])
			mem.Merge(tl[1])
		}
		rep.Results = append(rep.Results, cpu.Result(r.policy, "cpu"), mem.Result(r.policy, "memory"))
		rep.Cluster = append(rep.Cluster, r.cluster())
		rep.Timeseries = append(rep.Timeseries, r.points...)
		rep.TaskSeries = append(rep.TaskSeries, r.samples...)
	}
	return rep, nil
}

// taskRun is one task's state in one policy's run.
type taskRun struct {
	t           *Task
	id          string
	first, last int // first and last slot with a window
	next        int // next window to replay
	rec         models.Recommender
	active      bool // arrived and not departed
	placed      bool
	ranBefore   bool              // was placed at some point (a new placement is a reschedule)
	spec        scheduler.Task    // the size the scheduler holds
	use         models.Size       // usage in the current slot (carried over gaps)
	want        scheduler.Task    // the size the policy wants this slot
	replay      *predictor.Replay // per-task figures, scored as predictor.Evaluate does
	sample      bool
	stepSeen    int        // windows folded into stepVar (stepDist)
	stepVar     [2]float64 // decayed mean of squared window-to-window changes
	stepN       int
	corrSS      [2]float64 // Σ squared changes seen (onlineCorrelation)
	corrN       int
}

// run is one policy's simulation.
type run struct {
	w      *Workload
	opts   *Options
	policy string
	oracle bool
	state  *scheduler.State
	nodes  []string // machines in the cluster (not failed, not released)
	spare  []string // released machines, reused before new ones are added
	down   map[string]bool
	tasks  []taskRun
	byID   map[string]int
	q      eventQueue
	tick   func()
	made   int // machines created

	pending []int // tasks waiting for a machine, in arrival order

	online onlineCorrelation // when ρ is estimated as the run goes

	// Totals.
	machineWindows, machinesPeak, overloaded int
	lowerBoundSum, requestBoundSum           int
	usageSum                                 models.Size
	evictions, reschedules, resizes          int
	failed, pendingTaskWindows               int
	alone                                    int
	seconds                                  float64

	// Per-window counters for points.
	slotEvictions, slotReschedules int

	points  []Point
	samples []TaskPoint
}

// nodeLabel carries a machine's own name, so a resize can ask the real
// scheduler whether the new size fits where the task already runs.
const nodeLabel = "sim.fathom.io/machine"

func newRun(w *Workload, policy string, opts *Options) *run {
	r := &run{w: w, opts: opts, policy: policy, oracle: policy == PolicyOracle, down: map[string]bool{}, byID: map[string]int{}}
	r.state, _ = scheduler.NewState(scheduler.ClusterView{})
	r.tasks = make([]taskRun, len(w.Tasks))
	stride := 0
	if opts.SampleTasks > 0 {
		stride = max(1, len(w.Tasks)/opts.SampleTasks)
	}
	for i := range w.Tasks {
		t := &w.Tasks[i]
		tr := &r.tasks[i]
		tr.t = t
		tr.id = t.ID()
		tr.first = w.slot(t.Windows[0].Start)
		tr.last = w.slot(t.Windows[len(t.Windows)-1].Start)
		tr.sample = stride > 0 && i%stride == 0 && i/stride < opts.SampleTasks
		if policy != PolicyProvisioned && policy != PolicyOracle {
			tr.rec, _ = opts.New(policy) // checked by normalize
		}
		tr.replay = predictor.NewReplay(tr.rec, t.Windows[0].Start, predictor.EvalOptions{
			WarmUp: opts.WarmUp, ChangeThreshold: opts.ChangeThreshold, NoOOMFeedback: opts.NoOOMFeedback})
		r.byID[tr.id] = i
	}
	return r
}

func (r *run) simulate() error {
	start := time.Now()
	defer func() { r.seconds = time.Since(start).Seconds() }()
	for i := range r.tasks {
		tr := &r.tasks[i]
		r.q.push(event{at: time.Duration(tr.first) * Step, kind: evArrive, task: i})
		r.q.push(event{at: time.Duration(tr.last+1) * Step, kind: evDepart, task: i})
	}
	for i, f := range r.opts.Failures {
		r.q.push(event{at: f.At, kind: evFail, fail: i})
	}
	if r.w.Slots > 0 {
		r.q.push(event{at: 0, kind: evWindow, slot: 0})
	}
	for r.q.Len() > 0 {
		e := r.q.pop()
		switch e.kind {
		case evDepart:
			tr := &r.tasks[e.task]
			tr.active = false
			if tr.placed {
				r.state.Remove(tr.id)
				tr.placed = false
			}
		case evArrive:
			r.tasks[e.task].active = true
			r.pending = append(r.pending, e.task)
		case evFail:
			r.fail(r.opts.Failures[e.fail].Machines, e.at)
		case evWindow:
			if err := r.window(e.slot); err != nil {
				return err
			}
			if r.tick != nil {
				r.tick()
			}
			if e.slot+1 < r.w.Slots {
				r.q.push(event{at: time.Duration(e.slot+1) * Step, kind: evWindow, slot: e.slot + 1})
			}
		}
	}
	return nil
}

// window simulates slot k: size every running task, place what waits, let
// the tasks use what the trace says, evict where memory runs out, and feed
// the recommenders the windows they just saw.
func (r *run) window(k int) error {
	r.slotEvictions, r.slotReschedules = 0, 0
	if r.oracle {
		return r.oracleWindow(k)
	}
	// 1. Size: what each active task should have for this slot, asked at the
	// start of its first window in the slot (no look-ahead).
	for i := range r.tasks {
		tr := &r.tasks[i]
		if !tr.active {
			continue
		}
		r.size(tr, k)
		if tr.placed {
			if err := r.resize(tr); err != nil {
				return err
			}
		}
	}
	// 2. Place what waits: arrivals, evicted and lost tasks.
	if err := r.placePending(); err != nil {
		return err
	}
	// 3. Use: replay the slot's windows (per-task figures, recommenders).
	r.use(k)
	if r.opts.online {
		r.online.endSlot()
	}
	// 4. Machines: count, overloads, evictions under memory pressure.
	r.account(k)
	// 5. Consolidate on schedule, then hand idle machines back.
	if r.opts.ConsolidateEvery > 0 && k%r.opts.ConsolidateEvery == r.opts.ConsolidateEvery-1 {
		if err := r.consolidate(); err != nil {
			return err
		}
	}
	return r.release()
}

// oracleWindow simulates slot k for the oracle: every task's limit is the
// usage of the window it is about to have (known in advance), and the
// cluster is packed from scratch by the real scheduler every window, so
// its machine count is a floor for policies that must predict and cannot
// move every task every five minutes. Moves are free for it: it reports no
// reschedules, and failures do not apply (its machines are new each window).
func (r *run) oracleWindow(k int) error {
	st, err := scheduler.NewState(scheduler.ClusterView{})
	if err != nil {
		return err
	}
	r.state, r.nodes, r.spare, r.made = st, nil, nil, 0
	r.pending = r.pending[:0]
	for i := range r.tasks {
		tr := &r.tasks[i]
		if !tr.active {
			continue
		}
		a, b := r.windowsIn(tr, k)
		if a < b {
			var use models.Size
			for wi := a; wi < b; wi++ {
				win := tr.t.Windows[wi]
				tr.replay.Score(win, models.Size{CPU: win.CPU, Memory: win.Memory}, tr.t.provisioned(wi))
				use.CPU, use.Memory = max(use.CPU, win.CPU), max(use.Memory, win.Memory)
			}
			tr.next, tr.use = b, use
		}
		tr.placed, tr.ranBefore = false, false
		t := scheduler.Task{ID: tr.id, Job: tr.t.Key.Namespace + "/" + tr.t.Key.Job, Priority: tr.t.Priority,
			Request: scheduler.Resources{tr.use.CPU, tr.use.Memory}}
		for res := range t.Request {
			t.Request[res] = max(t.Request[res], 1e-6*r.capacity()[res])
		}
		t.Limit = t.Request
		tr.want = t
		r.pending = append(r.pending, i)
		if tr.sample {
			r.samples = append(r.samples, TaskPoint{Time: r.w.SlotTime(k), Policy: r.policy, Task: tr.id, Usage: tr.use, Request: tr.use, Limit: tr.use})
		}
	}
	if err := r.placePending(); err != nil {
		return err
	}
	r.account(k)
	return nil
}

// windowsIn returns the task's windows [i, j) that fall in slot k.
func (r *run) windowsIn(tr *taskRun, k int) (int, int) {
	i := tr.next
	j := i
	for j < len(tr.t.Windows) && r.w.slot(tr.t.Windows[j].Start) <= k {
		j++
	}
	return i, j
}

// size sets tr.want for slot k.
func (r *run) size(tr *taskRun, k int) {
	i, j := r.windowsIn(tr, k)
	if i == j && tr.want.ID != "" {
		return // a gap in the trace: keep the last size
	}
	wi := min(i, len(tr.t.Windows)-1)
	at := tr.t.Windows[wi].Start
	t := scheduler.Task{ID: tr.id, Job: tr.t.Key.Namespace + "/" + tr.t.Key.Job, Priority: tr.t.Priority}
	switch {
	case tr.rec == nil: // provisioned
		p := tr.t.provisioned(wi)
		if p.CPU == 0 || p.Memory == 0 {
			p = tr.t.maxProvisioned()
		}
		t.Request = scheduler.Resources{p.CPU, p.Memory}
		t.Limit = t.Request
	case r.policy == "fathom":
		// Fathom packs on its predicted request with the predicted
		// distribution, so the scheduler's risk bound applies.
		rc := tr.rec.Recommend(at)
		lim := tr.rec.Limit(at)
		t.Limit = scheduler.Resources{lim.CPU, lim.Memory}
		t.Request = scheduler.Resources{min(rc.CPU.Request, lim.CPU), min(rc.Memory.Request, lim.Memory)}
		t.Usage = [scheduler.NumResources]scheduler.Dist{
			{Mean: rc.CPU.Mean, StdDev: rc.CPU.StdDev},
			{Mean: rc.Memory.Mean, StdDev: rc.Memory.StdDev},
		}
		if r.opts.StepSpread > 0 {
			tr.stepDist(&t, r.opts.StepSpread)
		}
	default:
		// Baselines pack on their own limits: no oversubscription.
		lim := tr.rec.Limit(at)
		t.Limit = scheduler.Resources{lim.CPU, lim.Memory}
		t.Request = t.Limit
	}
	c := r.capacity()
	for res := range t.Request {
		if !(t.Request[res] > 0) { // no history yet: a nominal size, never 0
			t.Request[res] = 1e-6 * c[res]
		}
		// A size beyond the machine is capped at the machine: no machine
		// could hold more, and the agent cannot enforce more.
		t.Request[res] = min(t.Request[res], c[res])
		t.Limit[res] = min(max(t.Limit[res], t.Request[res]), c[res])
	}
	tr.want = t
}

func (r *run) capacity() scheduler.Resources {
	return scheduler.Resources{r.opts.Machine.CPU, r.opts.Machine.Memory}
}

// needsResize reports whether the placed size must change: any raise at
// once, a cut only past the deadband.
func (r *run) needsResize(tr *taskRun) bool {
	for res := range tr.want.Request {
		for _, p := range [][2]float64{{tr.spec.Request[res], tr.want.Request[res]}, {tr.spec.Limit[res], tr.want.Limit[res]}} {
			if p[1] > p[0] || p[1] < p[0]*(1-r.opts.ResizeDeadband) {
				return true
			}
		}
		old, cur := tr.spec.Usage[res], tr.want.Usage[res]
		if math.Abs(cur.Mean-old.Mean) > r.opts.ResizeDeadband*old.Mean || math.Abs(cur.StdDev-old.StdDev) > r.opts.ResizeDeadband*max(old.StdDev, 0.1*old.Mean) {
			return true
		}
	}
	return false
}

// resize applies tr.want to a placed task: in place when the scheduler
// says it fits there, otherwise by moving it.
func (r *run) resize(tr *taskRun) error {
	if !r.needsResize(tr) {
		return nil
	}
	node, _ := r.state.TaskNode(tr.id)
	r.state.Remove(tr.id)
	if shrinks(tr.spec, tr.want, r.opts.Risk == scheduler.RiskBernstein) {
		// Nothing grows: the scheduler admits it where it is (every
		// check is monotone in request, limit, mean and spread), so skip
		// asking it.
		tr.spec = tr.want
		if err := r.state.Assign(tr.spec, node); err != nil {
			return err
		}
		r.resizes++
		return nil
	}
	t := tr.want
	t.Constraints = []scheduler.Constraint{{Label: nodeLabel, Op: scheduler.OpEqual, Value: node}}
	plan, err := r.state.Place([]scheduler.Task{t}, r.placeOpts())
	if err != nil {
		return err
	}
	if len(plan.Placements) == 1 {
		tr.spec = tr.want
		// Place committed the constrained copy; keep the plain spec.
		r.state.Remove(tr.id)
		if err := r.state.Assign(tr.spec, node); err != nil {
			return err
		}
		r.resizes++
		return nil
	}
	tr.placed = false
	r.pending = append(r.pending, r.byID[tr.id])
	return nil
}

// shrinks reports whether no request, limit, predicted mean or spread of b
// exceeds a's (and, when rng, no upward range limit − mean: Bernstein's
// margin grows with it).
func shrinks(a, b scheduler.Task, rng bool) bool {
	for res := range a.Request {
		if b.Request[res] > a.Request[res] || b.Limit[res] > a.Limit[res] ||
			b.Usage[res].Mean > a.Usage[res].Mean || b.Usage[res].StdDev > a.Usage[res].StdDev {
			return false
		}
		if rng && b.Limit[res]-b.Usage[res].Mean > a.Limit[res]-a.Usage[res].Mean {
			return false
		}
	}
	return true
}

func (r *run) placeOpts() scheduler.Options {
	rho := *r.opts.Correlation
	if r.opts.online {
		rho = r.online.rho
	}
	return scheduler.Options{Seed: r.opts.Seed, OverloadRisk: r.opts.OverloadRisk, Risk: r.opts.Risk, Correlation: rho, NoPreemption: true}
}

// addMachines adds n machines to the cluster: released ones first, then
// new ones.
func (r *run) addMachines(n int) error {
	for range n {
		if k := len(r.spare); k > 0 {
			name := r.spare[k-1]
			r.spare = r.spare[:k-1]
			if err := r.state.SetNodeFlags(name, false, false, false); err != nil {
				return err
			}
			r.nodes = append(r.nodes, name)
			continue
		}
		r.made++
		name := fmt.Sprintf("m-%05d", r.made)
		if _, err := r.state.AddNode(scheduler.Node{Name: name, Capacity: r.capacity(), Labels: map[string]string{nodeLabel: name}}); err != nil {
			return err
		}
		r.nodes = append(r.nodes, name)
	}
	return nil
}

// release returns the cluster's empty machines to the pool (like a cluster
// autoscaler), so that only machines running tasks are counted and the
// scheduler never spreads work onto idle machines.
func (r *run) release() error {
	kept := r.nodes[:0]
	for _, name := range r.nodes {
		if len(r.state.NodeTasks(name)) > 0 {
			kept = append(kept, name)
			continue
		}
		if err := r.state.SetNodeFlags(name, false, false, true); err != nil {
			return err
		}
		r.spare = append(r.spare, name)
	}
	r.nodes = kept
	return nil
}

// placePending places waiting tasks with the scheduler, adding machines
// while some task fits on none of the existing ones.
func (r *run) placePending() error {
	if len(r.pending) == 0 {
		return nil
	}
	byID := map[string]int{}
	var batch []scheduler.Task
	for _, i := range r.pending {
		tr := &r.tasks[i]
		if !tr.active || tr.placed {
			continue
		}
		byID[tr.id] = i
		batch = append(batch, tr.want)
	}
	r.pending = r.pending[:0]
	for round := 0; len(batch) > 0; round++ {
		plan, err := r.state.Place(batch, r.placeOpts())
		if err != nil {
			return err
		}
		for _, p := range plan.Placements {
			r.placed(byID[p.TaskID])
		}
		if len(plan.Unplaced) == 0 {
			break
		}
		left := batch[:0]
		var need scheduler.Resources
		for _, u := range plan.Unplaced {
			t := r.tasks[byID[u.TaskID]].want
			left = append(left, t)
			need = need.Add(t.Request)
		}
		batch = left
		if len(plan.Placements) == 0 && round > 0 {
			// Not even fresh machines took them. The risk bound can refuse
			// a task an empty machine (a wide predicted spread against a
			// large share of the machine); alone on a machine it cannot
			// overload it beyond its limit, so it gets a machine of its own
			// (State.Assign records it whatever the filters say, and the
			// risk filter then keeps other tasks off that machine). A task
			// whose request exceeds a machine waits.
			c := r.capacity()
			for _, t := range batch {
				if !t.Request.Fits(c) {
					r.pending = append(r.pending, byID[t.ID])
					continue
				}
				if err := r.addMachines(1); err != nil {
					return err
				}
				if err := r.state.Assign(t, r.nodes[len(r.nodes)-1]); err != nil {
					return err
				}
				r.placed(byID[t.ID])
				r.alone++
			}
			break
		}
		c := r.capacity()
		n := 1
		for res := range need {
			n = max(n, int(math.Ceil(need[res]/c[res])))
		}
		if err := r.addMachines(n); err != nil {
			return err
		}
	}
	return nil
}

// placed records that task i now runs.
func (r *run) placed(i int) {
	tr := &r.tasks[i]
	tr.placed = true
	tr.spec = tr.want
	if tr.ranBefore {
		r.reschedules++
		r.slotReschedules++
	}
	tr.ranBefore = true
}

// use replays slot k's windows of every active task: the limit for each
// window is asked at its start and scored by predictor.Replay, the step
// predictor.Evaluate runs, then the window is observed.
func (r *run) use(k int) {
	for i := range r.tasks {
		tr := &r.tasks[i]
		if !tr.active {
			continue
		}
		a, b := r.windowsIn(tr, k)
		if a == b {
			continue // a gap: usage and limit carry over
		}
		var use, lim models.Size
		for wi := a; wi < b; wi++ {
			win := tr.t.Windows[wi]
			// predictor.Evaluate's step: the limit asked at the window's
			// start and scored, then the OOM feedback and the window
			// observed.
			l := tr.replay.Step(win, tr.t.provisioned(wi))
			use.CPU, use.Memory = max(use.CPU, win.CPU), max(use.Memory, win.Memory)
			if wi == a {
				lim = l
			}
		}
		if r.opts.online {
			r.online.add(r.w, tr, a, b, k)
		}
		tr.next = b
		tr.use = use
		if tr.sample {
			r.samples = append(r.samples, TaskPoint{Time: r.w.SlotTime(k), Policy: r.policy, Task: tr.id, Usage: use, Request: models.Size{CPU: tr.spec.Request[0], Memory: tr.spec.Request[1]}, Limit: lim})
		}
	}
}

// running returns what a placed task puts on its machine in the current
// slot: its usage capped by the limit the agent enforces (the placed one,
// raised at once and lowered past the resize deadband). CPU above the limit
// is throttled; memory above it is an OOM kill, which the per-task figures
// count as a violation.
func (tr *taskRun) running() models.Size {
	return models.Size{CPU: min(tr.use.CPU, tr.spec.Limit[0]), Memory: min(tr.use.Memory, tr.spec.Limit[1])}
}

// account counts machines, overloads and evictions for slot k.
func (r *run) account(k int) {
	c := r.capacity()
	var usage, req models.Size
	machines, over, pend := 0, 0, 0
	for i := range r.tasks {
		tr := &r.tasks[i]
		if tr.active {
			usage.CPU += tr.use.CPU
			usage.Memory += tr.use.Memory
			if !tr.placed {
				pend++
			}
		}
	}
	for _, name := range r.nodes {
		ids := r.state.NodeTasks(name)
		if len(ids) == 0 {
			continue
		}
		machines++
		var sum models.Size
		for _, id := range ids {
			tr := &r.tasks[r.byID[id]]
			u := tr.running()
			sum.CPU += u.CPU
			sum.Memory += u.Memory
			req.CPU += tr.spec.Request[0]
			req.Memory += tr.spec.Request[1]
		}
		if sum.CPU > c[0]*(1+1e-9) || sum.Memory > c[1]*(1+1e-9) {
			over++
		}
		if sum.Memory > c[1]*(1+1e-9) {
			r.evict(ids, sum.Memory-c[1])
		}
	}
	lb, rlb := 0, 0
	for res, v := range []float64{usage.CPU, usage.Memory} {
		lb = max(lb, int(math.Ceil(v/c[res]-1e-9)))
	}
	for res, v := range []float64{req.CPU, req.Memory} {
		rlb = max(rlb, int(math.Ceil(v/c[res]-1e-9)))
	}
	r.requestBoundSum += rlb
	r.record(k, machines, lb, usage, req, over, pend)
}

// evict frees at least excess bytes of memory on a machine: lowest priority
// first, then the largest memory user (fewest evictions).
func (r *run) evict(ids []string, excess float64) {
	cand := make([]*taskRun, 0, len(ids))
	for _, id := range ids {
		cand = append(cand, &r.tasks[r.byID[id]])
	}
	slices.SortStableFunc(cand, func(a, b *taskRun) int {
		if a.t.Priority != b.t.Priority {
			return cmp.Compare(a.t.Priority, b.t.Priority)
		}
		if c := cmp.Compare(b.running().Memory, a.running().Memory); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, tr := range cand {
		if excess <= 0 {
			break
		}
		excess -= tr.running().Memory
		r.state.Remove(tr.id)
		tr.placed = false
		r.pending = append(r.pending, r.byID[tr.id])
		r.evictions++
		r.slotEvictions++
	}
}

func (r *run) record(k, machines, lb int, usage, req models.Size, over, pend int) {
	r.machineWindows += machines
	r.machinesPeak = max(r.machinesPeak, machines)
	r.overloaded += over
	r.lowerBoundSum += lb
	r.usageSum.CPU += usage.CPU
	r.usageSum.Memory += usage.Memory
	r.pendingTaskWindows += pend
	if r.opts.Timeseries {
		r.points = append(r.points, Point{Time: r.w.SlotTime(k), Policy: r.policy, Machines: machines, LowerBound: lb,
			Usage: usage, Requested: req, Overloaded: over, Evictions: r.slotEvictions, Reschedules: r.slotReschedules, Pending: pend})
	}
}

// fail takes n machines in use down (chosen by the seed), and queues their
// tasks to be placed again at once.
func (r *run) fail(n int, at time.Duration) {
	var used []string
	for _, name := range r.nodes {
		if len(r.state.NodeTasks(name)) > 0 {
			used = append(used, name)
		}
	}
	for j := 0; j < n && len(used) > 0; j++ {
		h := splitmix(r.opts.Seed ^ uint64(at) ^ uint64(j)*0x9e3779b97f4a7c15)
		i := int(h % uint64(len(used)))
		name := used[i]
		used = append(used[:i], used[i+1:]...)
		for _, id := range r.state.NodeTasks(name) {
			tr := &r.tasks[r.byID[id]]
			r.state.Remove(id)
			tr.placed = false
			r.pending = append(r.pending, r.byID[id])
		}
		_ = r.state.SetNodeFlags(name, false, false, true)
		r.down[name] = true
		r.nodes = slices.DeleteFunc(r.nodes, func(s string) bool { return s == name })
		r.failed++
	}
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (r *run) cluster() Cluster {
	c := Cluster{Policy: r.policy, MachinesPeak: r.machinesPeak, Overloaded: r.overloaded, MachineWindows: r.machineWindows,
		Evictions: r.evictions, Reschedules: r.reschedules, Resizes: r.resizes, FailedMachines: r.failed,
		PendingTaskWindows: r.pendingTaskWindows, SimSeconds: r.seconds, Alone: r.alone}
	if n := float64(r.w.Slots); n > 0 {
		c.MachinesMean = float64(r.machineWindows) / n
		c.LowerBoundMean = float64(r.lowerBoundSum) / n
		c.RequestBoundMean = float64(r.requestBoundSum) / n
	}
	if r.machineWindows > 0 {
		mw := float64(r.machineWindows)
		c.OverloadedMachineWindows = float64(r.overloaded) / mw
		c.UtilizationCPU = r.usageSum.CPU / (mw * r.opts.Machine.CPU)
		c.UtilizationMemory = r.usageSum.Memory / (mw * r.opts.Machine.Memory)
		c.Utilization = max(c.UtilizationCPU, c.UtilizationMemory)
	}
	return c
}
