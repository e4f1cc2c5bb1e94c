package sim

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// Report is what Run returns: the per-task figures (predictor.Result,
// as `fathom model eval` prints them, here of the limits the control loop
// applied) and the cluster figures per policy.
type Report struct {
	Trace   string             `json:"trace"`
	Results []predictor.Result `json:"results"`
	Cluster []Cluster          `json:"cluster"`
	// Machine is the machine shape used (CPU cores, memory bytes).
	Machine      models.Size `json:"machine"`
	Tasks        int         `json:"tasks"`
	Windows      int         `json:"windows"`
	OverloadRisk float64     `json:"overload_risk"`
	// Budget is the violation budget the fathom policy steered to.
	Budget models.ViolationBudget `json:"violation_budget"`
	// RiskCorrelation is the ρ (CPU, memory) the scheduler's bound used at
	// the end of the fathom run (online: the predictor's estimate then);
	// StepCorrelation the estimate from this whole workload (whether or not
	// it was used).
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
	// OOMKills: tasks killed for exceeding their memory limit.
	OOMKills int `json:"oom_kills"`
	// Reschedules: starts of a task on another machine than its last one
	// (after an eviction, a machine failure, a move for a resize, a drain
	// or consolidation); MovesPerTaskDay is Reschedules per task-day.
	Reschedules     int     `json:"reschedules"`
	MovesPerTaskDay float64 `json:"moves_per_task_day"`
	// Resizes: sizes changed in place.
	Resizes int `json:"resizes"`
	// FailedMachines is how many machines --fail took down.
	FailedMachines int `json:"failed_machines"`
	// PendingTaskWindows counts task-windows a task had no running copy
	// (waiting for room, or larger than a machine).
	PendingTaskWindows int `json:"pending_task_windows"`
	// MachinesAdded is how many machines the node provider was asked for.
	MachinesAdded int `json:"machines_added"`
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

// Run simulates the workload under each policy through the control loop
// (package controller), each policy in a run of its own. It does no I/O and
// reads the clock only to report SimSeconds; the results are deterministic
// for a workload, options and seed.
func Run(w *Workload, opts Options) (*Report, error) {
	if err := opts.normalize(w); err != nil {
		return nil, err
	}
	rep := &Report{
		Trace: w.Name, Machine: opts.Machine, Tasks: len(w.Tasks), Windows: w.Slots,
		OverloadRisk: opts.OverloadRisk, Budget: opts.Budget.OrDefault(), Assumptions: w.Assumptions,
	}
	rep.StepCorrelation = EstimateStepCorrelation(w, 0, 0)
	var fixed *scheduler.Resources
	switch {
	case opts.Correlation != nil:
		fixed = opts.Correlation
	case opts.Risk == scheduler.RiskBernstein:
		fixed = &scheduler.Resources{}
		rep.Assumptions = append(rep.Assumptions, "the bernstein risk model assumes independent tasks: correlation 0")
	case opts.CorrelationFromTrace:
		var c scheduler.Resources
		for r := range c {
			c[r] = min(max(rep.StepCorrelation.Weighted[r], 0), 1)
		}
		fixed = &c
	}
	if fixed != nil {
		rep.RiskCorrelation = *fixed
	}
	for i := range w.Tasks {
		p := w.Tasks[i].maxProvisioned()
		if p.CPU > opts.Machine.CPU || p.Memory > opts.Machine.Memory {
			rep.Assumptions = append(rep.Assumptions, fmt.Sprintf("some tasks (first: %s, %.3g cores / %.3g bytes) are larger than the machine; their hints are capped at it", w.Tasks[i].ID(), p.CPU, p.Memory))
			break
		}
	}
	runs := make([]*run, len(opts.Policies))
	errs := make([]error, len(runs))
	total := w.Slots * len(opts.Policies)
	var done atomic.Int64
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for i, p := range opts.Policies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := newRun(w, p, &opts, fixed)
			if err != nil {
				errs[i] = err
				return
			}
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
	for _, r := range runs {
		var cpu, mem predictor.Tally
		for i := range r.tasks {
			tl := r.tasks[i].tally
			for res := range tl {
				if tl[res].Windows > 0 {
					tl[res].Tasks = 1
				}
			}
			cpu.Merge(tl[0])
			mem.Merge(tl[1])
		}
		rep.Results = append(rep.Results, cpu.Result(r.policy, "cpu"), mem.Result(r.policy, "memory"))
		rep.Cluster = append(rep.Cluster, r.cluster())
		rep.Timeseries = append(rep.Timeseries, r.points...)
		rep.TaskSeries = append(rep.TaskSeries, r.samples...)
		if r.policy == "fathom" && fixed == nil {
			rep.RiskCorrelation = r.rho
		}
	}
	if fixed == nil {
		rep.Assumptions = append(rep.Assumptions, fmt.Sprintf("ρ estimated online by the predictor from the windows replayed so far; at the end cpu %.3f, memory %.3f",
			rep.RiskCorrelation[0], rep.RiskCorrelation[1]))
	}
	return rep, nil
}

// taskRun is one trace task in one policy's run: a job of one replica.
type taskRun struct {
	t           *Task
	job         string // job id
	first, last int    // first and last slot with a window
	next        int    // next window to replay
	active      bool   // arrived and not departed
	use         models.Size
	tally       [2]predictor.Tally
	prevLimit   [2]float64
	lastNode    string // machine of its last start
	started     bool
	sample      bool
}

// proc is a task's copy on a simulated machine.
type proc struct {
	sizes   controller.Sizes
	gen     int64
	desired controller.Desired
	running bool
}

// machine is a simulated node and its agent: it runs what its assignment
// set says (as agent.Executor does), heartbeats, and reports.
type machine struct {
	name   string
	up     bool // heartbeats; false once failed or removed
	procs  map[string]*proc
	queue  []controller.Status
	killed bool
}

// run is one policy's simulation.
type run struct {
	w      *Workload
	opts   *Options
	policy string
	c      *controller.Controller
	pred   *predictor.Predictor
	now    time.Time
	tasks  []taskRun
	byJob  map[string]int
	mach   map[string]*machine
	order  []string // machine names in creation order
	free   []string // released machine names, reused
	made   int
	tick   func()
	rho    scheduler.Resources

	// Totals.
	machineWindows, machinesPeak, overloaded int
	lowerBoundSum, requestBoundSum           int
	usageSum                                 models.Size
	evictions, ooms, reschedules, resizes    int
	failed, pendingTaskWindows, added        int
	seconds                                  float64

	slotEvictions, slotReschedules int
	points                         []Point
	samples                        []TaskPoint
}

// Sim-wide constants of the control loop: the node provider answers at once
// (a cloud whose machines come up instantly), so the figures measure the
// packing and the sizing, not the provider's latency.
const (
	simCooldown     = time.Nanosecond
	simRemovalDelay = Step
)

func newRun(w *Workload, policy string, opts *Options, fixed *scheduler.Resources) (*run, error) {
	r := &run{w: w, opts: opts, policy: policy, byJob: map[string]int{}, mach: map[string]*machine{}, now: w.Start}
	r.tasks = make([]taskRun, len(w.Tasks))
	stride := 0
	if opts.SampleTasks > 0 {
		stride = max(1, len(w.Tasks)/opts.SampleTasks)
	}
	for i := range w.Tasks {
		t := &w.Tasks[i]
		tr := &r.tasks[i]
		tr.t = t
		tr.job = fmt.Sprintf("t%05d", i)
		tr.first = w.slot(t.Windows[0].Start)
		tr.last = w.slot(t.Windows[len(t.Windows)-1].Start)
		tr.sample = stride > 0 && i%stride == 0 && i/stride < opts.SampleTasks
		tr.prevLimit = [2]float64{-1, -1}
		r.byJob[tr.job] = i
	}
	pc := predictor.Config{Kind: policy, Window: Step, StepSpread: opts.StepSpread, Budget: opts.Budget}
	switch policy {
	case PolicyProvisioned:
		pc.Kind = "fathom"                // not used: every task has its own recommender
		pc.EarlyHorizon = time.Nanosecond // no early margin over a size that is not learned
		pc.NewFor = func(k predictor.TaskKey) (models.Recommender, error) {
			return &provisionedRec{t: r.taskOf(k), c: opts.Machine}, nil
		}
	case PolicyOracle:
		pc.Kind = "fathom"
		pc.EarlyHorizon = time.Nanosecond
		pc.NewFor = func(k predictor.TaskKey) (models.Recommender, error) {
			return &oracleRec{t: r.taskOf(k), c: opts.Machine}, nil
		}
	default:
		pc.New = opts.New
	}
	pred, err := predictor.New(pc)
	if err != nil {
		return nil, fmt.Errorf("%w: policy %s: %v", ErrInvalid, policy, err)
	}
	r.pred = pred
	cfg := controller.Config{
		Placement: scheduler.Options{Seed: opts.Seed, OverloadRisk: opts.OverloadRisk, Risk: opts.Risk},
		Sizing: controller.SizingPolicy{Deadband: opts.ResizeDeadband, ShrinkDelay: opts.ShrinkDelay,
			PackOnLimit: policy != "fathom"},
		MaxPlacePerRound: max(len(w.Tasks), 1),
		Provider:         controller.ProviderPolicy{Enabled: true, Cooldown: simCooldown, RemovalDelay: simRemovalDelay},
		Predictor:        pred,
	}
	if policy == PolicyOracle {
		// Perfect foresight: no deadband, no delay, moves at once.
		cfg.Sizing.Deadband, cfg.Sizing.ShrinkDelay, cfg.Sizing.MinTaskAge, cfg.Sizing.MoveCost = 1e-9, time.Nanosecond, time.Nanosecond, 1e-9
	}
	if fixed != nil {
		cfg.Placement.Correlation = *fixed
	} else {
		cfg.OnlineCorrelation = true
	}
	if opts.ConsolidateEvery > 0 {
		cfg.Consolidate = true
		cfg.ConsolidateBelow = 1
		cfg.DrainBudget = opts.ConsolidateBudget
		cfg.ConsolidateInterval = time.Duration(opts.ConsolidateEvery) * Step
	}
	if cfg.Sizing.PackOnLimit {
		cfg.OnlineCorrelation = false // no spread: the correlation plays no part
	}
	c, err := controller.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	r.c = c
	return r, nil
}

// taskOf finds the trace task of a predictor key (its job's name).
func (r *run) taskOf(k predictor.TaskKey) *Task {
	if i, ok := r.byJob[k.Job]; ok {
		return r.tasks[i].t
	}
	return nil
}

func (r *run) capacity() models.Size { return r.opts.Machine }

func (r *run) simulate() error {
	start := time.Now()
	defer func() { r.seconds = time.Since(start).Seconds() }()
	// One machine to begin with: it gives the node provider the shape to
	// add more of.
	if err := r.addMachine(); err != nil {
		return err
	}
	fails := slices.Clone(r.opts.Failures)
	slices.SortStableFunc(fails, func(a, b Failure) int { return cmp.Compare(a.At, b.At) })
	for k := range r.w.Slots {
		r.now = r.w.SlotTime(k)
		r.slotEvictions, r.slotReschedules = 0, 0
		// Tasks that ended leave; new ones arrive (as unsized jobs whose
		// owners' guess, the provisioned size, is the hint).
		for i := range r.tasks {
			tr := &r.tasks[i]
			switch {
			case tr.active && k > tr.last:
				tr.active = false
				if err := r.c.Stop(tr.job, r.now); err != nil {
					return err
				}
			case !tr.active && k == tr.first:
				tr.active = true
				if err := r.c.Submit(controller.Job{ID: tr.job, Spec: r.spec(tr)}, r.now); err != nil {
					return err
				}
			}
		}
		for len(fails) > 0 && fails[0].At <= r.now.Sub(r.w.Start) {
			r.fail(fails[0].Machines, fails[0].At)
			fails = fails[1:]
		}
		// The agents heartbeat; then rounds of the control loop, each
		// followed by what the agents did about it, until nothing changes:
		// a real agent reports within a second, far inside a window, so a
		// moved task's old copy stops, and a machine the provider adds takes
		// its tasks, before the window's usage is counted.
		for _, name := range r.order {
			if m := r.mach[name]; m != nil && m.up {
				r.c.Heartbeat(name, controller.Usage{}, r.now)
			}
		}
		for range 8 {
			reported, err := r.report()
			if err != nil {
				return err
			}
			r.c.Tick(r.now)
			more, err := r.apply()
			if err != nil {
				return err
			}
			if !more && !reported && !r.pendingReports() {
				break
			}
		}
		// The tasks use what the trace says, within their limits.
		r.use(k)
		if r.tick != nil {
			r.tick()
		}
	}
	if r.policy == "fathom" {
		rho := r.pred.Correlation(r.now)
		r.rho = scheduler.Resources{rho[0], rho[1]}
	}
	return nil
}

// report delivers what the agents have to say; it reports whether any did.
func (r *run) report() (bool, error) {
	any := false
	for _, name := range r.order {
		m := r.mach[name]
		if m == nil || !m.up || len(m.queue) == 0 {
			continue
		}
		if err := r.c.Report(name, m.queue, r.now); err != nil {
			return false, err
		}
		m.queue = nil
		any = true
	}
	return any, nil
}

// pendingReports reports whether an agent has something to say.
func (r *run) pendingReports() bool {
	for _, m := range r.mach {
		if m.up && len(m.queue) > 0 {
			return true
		}
	}
	return false
}

// spec is the job a trace task is submitted as.
func (r *run) spec(tr *taskRun) controller.Spec {
	p := tr.t.provisioned(0)
	if p.CPU == 0 || p.Memory == 0 {
		p = tr.t.maxProvisioned()
	}
	if r.policy == PolicyOracle {
		// It knows: the first window's usage.
		w := tr.t.Windows[0]
		p = models.Size{CPU: max(w.CPU, 1e-3), Memory: max(w.Memory, 1<<20)}
	}
	c := r.capacity()
	// Hints in whole bytes, rounded up: a usage of 1,059,423,027.2 bytes
	// under a hint truncated to 1,059,423,027 would be an OOM kill.
	return controller.Spec{Name: tr.job, Namespace: "sim", Type: controller.TypeService, Priority: tr.t.Priority.String(),
		Replicas: 1, Command: []string{tr.t.ID()}, CPUHint: math.Min(p.CPU, c.CPU), MemoryHint: min(int64(math.Ceil(p.Memory)), int64(c.Memory))}
}

// apply takes the controller's Ready: assignment changes go to the
// machines' agents (which start, resize and stop copies), node provider
// calls are answered at once. It reports whether machines were added (so
// that the round runs again to place what waited for them).
func (r *run) apply() (bool, error) {
	rd := r.c.Ready()
	r.resizes += rd.Stats.Resized
	for _, ch := range rd.Assign {
		m := r.mach[ch.Node]
		if m == nil || !m.up {
			continue
		}
		r.assign(m, ch)
	}
	added := false
	if pc := rd.Provider; pc != nil {
		switch pc.Action {
		case "add":
			for range pc.Count {
				if err := r.addMachine(); err != nil {
					return false, err
				}
			}
			r.added += pc.Count
			added = pc.Count > 0
		case "remove":
			for _, name := range pc.Nodes {
				if err := r.removeMachine(name); err != nil {
					return false, err
				}
			}
		}
		r.c.ProviderDone(pc, true, r.now)
	}
	return added, nil
}

// assign is the agent's side of one assignment change.
func (r *run) assign(m *machine, ch controller.AssignmentChange) {
	p := m.procs[ch.TaskID]
	a := ch.Assignment
	switch {
	case a == nil:
		delete(m.procs, ch.TaskID) // stopped and forgotten
	case a.Desired == controller.DesiredStop:
		if p != nil && p.running {
			p.running = false
			m.queue = append(m.queue, controller.Status{TaskID: ch.TaskID, State: controller.ReportedStopped, Generation: a.Generation})
		}
	case a.Desired == controller.DesiredKeep:
		if p != nil {
			p.sizes, p.desired = a.Sizes, a.Desired
		}
	case p != nil && p.running && p.gen != a.Generation:
		p.sizes, p.gen = a.Sizes, a.Generation // resized in place
	case p == nil || !p.running:
		m.procs[ch.TaskID] = &proc{sizes: a.Sizes, gen: a.Generation, desired: a.Desired, running: true}
		m.queue = append(m.queue, controller.Status{TaskID: ch.TaskID, State: controller.ReportedRunning, Generation: a.Generation, StartedAt: r.now})
		job, _, _ := controller.SplitTaskID(ch.TaskID)
		if i, ok := r.byJob[job]; ok {
			tr := &r.tasks[i]
			if tr.started && tr.lastNode != m.name {
				r.reschedules++
				r.slotReschedules++
			}
			tr.started, tr.lastNode = true, m.name
		}
	}
}

// addMachine adds a machine of the shape: a released one first.
func (r *run) addMachine() error {
	var name string
	if k := len(r.free); k > 0 {
		name = r.free[k-1]
		r.free = r.free[:k-1]
	} else {
		r.made++
		name = fmt.Sprintf("m-%05d", r.made)
		r.order = append(r.order, name)
	}
	r.mach[name] = &machine{name: name, up: true, procs: map[string]*proc{}}
	c := r.capacity()
	_, err := r.c.Register(controller.NodeInfo{Name: name, CPU: c.CPU, Memory: int64(c.Memory), Enforcement: "cgroup1"}, r.now)
	return err
}

// removeMachine gives a machine back (it was emptied and handed to the
// provider): its agent is gone and the controller forgets it.
func (r *run) removeMachine(name string) error {
	m := r.mach[name]
	if m == nil || !m.up {
		return nil
	}
	m.up = false
	m.procs = map[string]*proc{}
	if err := r.c.RemoveNode(name, r.now); err != nil {
		return err
	}
	delete(r.mach, name)
	r.free = append(r.free, name)
	return nil
}

// fail takes n machines in use down (chosen by the seed): their processes
// are gone and they stop heartbeating; the controller declares them down
// after the heartbeat timeout and places their tasks again.
func (r *run) fail(n int, at time.Duration) {
	var used []string
	for _, name := range r.order {
		if m := r.mach[name]; m != nil && m.up && len(m.procs) > 0 {
			used = append(used, name)
		}
	}
	for j := 0; j < n && len(used) > 0; j++ {
		h := splitmix(r.opts.Seed ^ uint64(at) ^ uint64(j)*0x9e3779b97f4a7c15)
		i := int(h % uint64(len(used)))
		name := used[i]
		used = append(used[:i], used[i+1:]...)
		m := r.mach[name]
		m.up, m.killed, m.procs, m.queue = false, true, map[string]*proc{}, nil
		r.failed++
	}
}

// use replays slot k: every running copy uses what its task's trace says,
// capped at its limits (memory above the limit is an OOM kill); machines
// are counted, overloads noted, and memory that runs out evicts the
// lowest-priority copies. The predictor then learns the windows and the
// controller hears which tasks have new usage.
func (r *run) use(k int) {
	c := r.capacity()
	var usage, req models.Size
	pend := 0
	// The task's trace windows [a, b) in slot k (a gap in the trace: none,
	// and the usage of the last one carries over).
	windows := map[int][2]int{}
	for i := range r.tasks {
		tr := &r.tasks[i]
		if !tr.active {
			continue
		}
		a := tr.next
		for tr.next < len(tr.t.Windows) && r.w.slot(tr.t.Windows[tr.next].Start) <= k {
			w := tr.t.Windows[tr.next]
			if tr.next == a {
				tr.use = models.Size{CPU: w.CPU, Memory: w.Memory}
			} else {
				// Several trace windows in one slot: the slot's peak.
				tr.use = models.Size{CPU: max(tr.use.CPU, w.CPU), Memory: max(tr.use.Memory, w.Memory)}
			}
			tr.next++
		}
		if tr.next > a {
			windows[i] = [2]int{a, tr.next}
		}
		usage.CPU += tr.use.CPU
		usage.Memory += tr.use.Memory
	}
	// The sizes in effect as the window starts, taken before the window's
	// usage can OOM-kill a copy: the window of an OOM kill is scored
	// against the limit it broke (a memory violation, as `fathom model
	// eval` counts it), not skipped because no copy runs afterwards.
	lims := make([]controller.Sizes, len(r.tasks))
	for i := range r.tasks {
		if r.tasks[i].active {
			lims[i] = r.limitOf(&r.tasks[i])
		}
	}
	machines, over := 0, 0
	running := map[int]bool{}
	var observed []string
	for _, name := range r.order {
		m := r.mach[name]
		if m == nil || !m.up {
			continue
		}
		ids := slices.Sorted(maps.Keys(m.procs))
		var sum models.Size
		n := 0
		for _, id := range ids {
			p := m.procs[id]
			if !p.running {
				continue
			}
			job, _, _ := controller.SplitTaskID(id)
			i, ok := r.byJob[job]
			if !ok {
				continue
			}
			tr := &r.tasks[i]
			n++
			u := tr.use
			if p.sizes.MemoryLimit > 0 && u.Memory > float64(p.sizes.MemoryLimit) {
				// OOM-killed at its limit; the agent reports it.
				p.running = false
				r.ooms++
				m.queue = append(m.queue, controller.Status{TaskID: id, State: controller.ReportedFailed, OOMKilled: true, ExitCode: 137,
					Generation: p.gen, FinishedAt: r.now})
				u.Memory = float64(p.sizes.MemoryLimit)
			}
			if p.sizes.CPULimit > 0 {
				u.CPU = math.Min(u.CPU, p.sizes.CPULimit)
			}
			sum.CPU += u.CPU
			sum.Memory += u.Memory
			req.CPU += p.sizes.CPURequest
			req.Memory += float64(p.sizes.MemoryRequest)
			running[i] = true
		}
		if n == 0 {
			continue
		}
		machines++
		if sum.CPU > c.CPU*(1+1e-9) || sum.Memory > c.Memory*(1+1e-9) {
			over++
		}
		if sum.Memory > c.Memory*(1+1e-9) {
			r.evict(m, ids, sum.Memory-c.Memory)
		}
	}
	// Per-task figures: the limit in effect against what the task used.
	for i := range r.tasks {
		tr := &r.tasks[i]
		if !tr.active {
			continue
		}
		if !running[i] {
			pend++
		}
		ab, ok := windows[i]
		if !ok {
			continue
		}
		w := tr.t.Windows[ab[0]]
		lim := lims[i]
		prov := tr.t.provisioned(ab[0])
		if w.Start.Sub(tr.t.Windows[0].Start) >= r.opts.WarmUp && lim != (controller.Sizes{}) {
			for res, v := range [2][3]float64{{lim.CPULimit, tr.use.CPU, prov.CPU}, {float64(lim.MemoryLimit), tr.use.Memory, prov.Memory}} {
				l := v[0]
				if l == 0 {
					l = [2]float64{c.CPU, c.Memory}[res] // no limit: the machine
				}
				tr.tally[res].Add(l, v[1], v[2], tr.prevLimit[res], r.opts.ChangeThreshold)
				tr.prevLimit[res] = l
			}
		}
		if tr.sample {
			r.samples = append(r.samples, TaskPoint{Time: r.w.SlotTime(k), Policy: r.policy, Task: tr.t.ID(), Usage: tr.use,
				Request: models.Size{CPU: lim.CPURequest, Memory: float64(lim.MemoryRequest)},
				Limit:   models.Size{CPU: lim.CPULimit, Memory: float64(lim.MemoryLimit)}, Machine: tr.lastNode})
		}
		// The predictor learns the window (no look-ahead: the next round
		// sizes with it); the controller hears the task has new usage.
		r.pred.Observe(predictor.TaskKey{Namespace: "sim", Job: tr.job}, tr.t.Windows[ab[0]:ab[1]])
		observed = append(observed, controller.TaskID(tr.job, 0))
	}
	r.c.Observed(observed)
	lb, rlb := 0, 0
	for res, v := range []float64{usage.CPU, usage.Memory} {
		lb = max(lb, int(math.Ceil(v/[2]float64{c.CPU, c.Memory}[res]-1e-9)))
	}
	for res, v := range []float64{req.CPU, req.Memory} {
		rlb = max(rlb, int(math.Ceil(v/[2]float64{c.CPU, c.Memory}[res]-1e-9)))
	}
	r.requestBoundSum += rlb
	r.record(k, machines, lb, usage, req, over, pend)
}

// limitOf is the sizes in effect on a task's running copy (zero: none
// runs).
func (r *run) limitOf(tr *taskRun) controller.Sizes {
	id := controller.TaskID(tr.job, 0)
	if m := r.mach[tr.lastNode]; m != nil {
		if p := m.procs[id]; p != nil && p.running && p.desired != controller.DesiredKeep {
			return p.sizes
		}
	}
	for _, name := range r.order {
		if m := r.mach[name]; m != nil {
			if p := m.procs[id]; p != nil && p.running {
				return p.sizes
			}
		}
	}
	return controller.Sizes{}
}

// evict frees at least excess bytes of memory on a machine: lowest priority
// first, then the largest memory user (fewest evictions). The agent reports
// each eviction with what the task used.
func (r *run) evict(m *machine, ids []string, excess float64) {
	type cand struct {
		id  string
		tr  *taskRun
		mem float64
	}
	var cs []cand
	for _, id := range ids {
		p := m.procs[id]
		job, _, _ := controller.SplitTaskID(id)
		i, ok := r.byJob[job]
		if p == nil || !p.running || !ok {
			continue
		}
		mem := r.tasks[i].use.Memory
		if p.sizes.MemoryLimit > 0 {
			mem = math.Min(mem, float64(p.sizes.MemoryLimit))
		}
		cs = append(cs, cand{id, &r.tasks[i], mem})
	}
	slices.SortStableFunc(cs, func(a, b cand) int {
		if a.tr.t.Priority != b.tr.t.Priority {
			return cmp.Compare(a.tr.t.Priority, b.tr.t.Priority)
		}
		if c := cmp.Compare(b.mem, a.mem); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for _, cd := range cs {
		if excess <= 0 {
			break
		}
		excess -= cd.mem
		p := m.procs[cd.id]
		p.running = false
		m.queue = append(m.queue, controller.Status{TaskID: cd.id, State: controller.ReportedStopped, Evicted: true,
			MemoryUsed: int64(cd.mem), Generation: p.gen, Reason: "evicted under memory pressure"})
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

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (r *run) cluster() Cluster {
	c := Cluster{Policy: r.policy, MachinesPeak: r.machinesPeak, Overloaded: r.overloaded, MachineWindows: r.machineWindows,
		Evictions: r.evictions, OOMKills: r.ooms, Reschedules: r.reschedules, Resizes: r.resizes, FailedMachines: r.failed,
		PendingTaskWindows: r.pendingTaskWindows, MachinesAdded: r.added, SimSeconds: r.seconds}
	if n := float64(r.w.Slots); n > 0 {
		c.MachinesMean = float64(r.machineWindows) / n
		c.LowerBoundMean = float64(r.lowerBoundSum) / n
		c.RequestBoundMean = float64(r.requestBoundSum) / n
	}
	var taskWindows int
	for i := range r.tasks {
		taskWindows += len(r.tasks[i].t.Windows)
	}
	if taskWindows > 0 {
		c.MovesPerTaskDay = float64(r.reschedules) / (float64(taskWindows) * Step.Seconds() / 86400)
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

// provisionedRec answers, as request and limit, the size the task's owner
// provisioned for the window about to start: the provisioned policy through
// the same loop (packed on its limits).
type provisionedRec struct {
	t *Task
	c models.Size
}

func (p *provisionedRec) Kind() string                  { return "provisioned" }
func (p *provisionedRec) Observe(models.Window)         {}
func (p *provisionedRec) ObserveOOM(time.Time, float64) {}
func (p *provisionedRec) at(now time.Time) models.Size {
	ws := p.t.Windows
	i, _ := slices.BinarySearchFunc(ws, now, func(w models.Window, t time.Time) int { return w.Start.Compare(t) })
	if i >= len(ws) || !ws[i].Start.Before(now.Add(Step)) {
		i = max(i-1, 0) // a gap: the last size carries over
	}
	s := p.t.provisioned(i)
	if s.CPU == 0 || s.Memory == 0 {
		s = p.t.maxProvisioned()
	}
	return models.Size{CPU: math.Min(s.CPU, p.c.CPU), Memory: math.Min(s.Memory, p.c.Memory)}
}
func (p *provisionedRec) Limit(now time.Time) models.Size { return p.at(now) }
func (p *provisionedRec) Recommend(now time.Time) models.Recommendation {
	s := p.at(now)
	return models.Recommendation{CPU: models.Estimate{Request: s.CPU, Limit: s.CPU, Mean: s.CPU},
		Memory: models.Estimate{Request: s.Memory, Limit: s.Memory, Mean: s.Memory}, Why: "the owner's provisioned size"}
}

// oracleRec knows the task's usage in advance: request and limit are the
// usage of the window about to start (the floor a perfect recommender
// reaches through the same loop).
type oracleRec struct {
	t *Task
	c models.Size
}

func (o *oracleRec) Kind() string                  { return "oracle" }
func (o *oracleRec) Observe(models.Window)         {}
func (o *oracleRec) ObserveOOM(time.Time, float64) {}
func (o *oracleRec) at(now time.Time) models.Size {
	ws := o.t.Windows
	i, _ := slices.BinarySearchFunc(ws, now, func(w models.Window, t time.Time) int { return w.Start.Compare(t) })
	var u models.Size
	switch {
	case i < len(ws) && ws[i].Start.Before(now.Add(Step)):
		// The peak of the windows that start before the next sizing.
		for ; i < len(ws) && ws[i].Start.Before(now.Add(Step)); i++ {
			u = models.Size{CPU: max(u.CPU, ws[i].CPU), Memory: max(u.Memory, ws[i].Memory)}
		}
	case i > 0:
		u = models.Size{CPU: ws[i-1].CPU, Memory: ws[i-1].Memory} // a gap: the usage carries over
	}
	return models.Size{CPU: math.Min(max(u.CPU, 1e-3), o.c.CPU), Memory: math.Min(max(u.Memory, 1<<20), o.c.Memory)}
}

func (o *oracleRec) Limit(now time.Time) models.Size { return o.at(now) }
func (o *oracleRec) Recommend(now time.Time) models.Recommendation {
	s := o.at(now)
	return models.Recommendation{CPU: models.Estimate{Request: s.CPU, Limit: s.CPU, Mean: s.CPU},
		Memory: models.Estimate{Request: s.Memory, Limit: s.Memory, Mean: s.Memory}, Why: "the coming window's usage, known in advance"}
}
