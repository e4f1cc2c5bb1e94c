package controller

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// TestScenarios runs the scripts in testdata/ through a controller, a store
// that keeps what Ready says to persist, and simulated agents that run what
// their assignment sets say (run with -rewrite to refresh the expected
// output). Commands:
//
//	option key=value ...          heartbeat, grace, mass-fraction, mass-rate, consolidate,
//	                              drain-budget, min-age, eps, move-cost, shrink-delay, risk,
//	                              provider, removal-delay, cooldown, correlation, retry-waiting,
//	                              job-retention, max-finished (before the first add-node)
//	add-node name=n1 [cpu=4] [mem=8] [zone=a] [rack=r1] [ports=LO-HI]   an agent that registers
//	submit job=web [replicas=1] [type=service] [prio=prod] [cpu=] [mem=] [schedule=]
//	       [restart=ATTEMPTS/INTERVAL/DELAY/MODE] [constraint=zone=b|zone!=b|zone~a,b|zone?]... [spread=zone]
//	       [ports=http;admin:8080]  (named ports; :N is static)
//	                              (constraints separated by ';': ~ is in, ? is exists)
//	recommend task=web-0 [cpu=] [mem=] [limit-cpu=] [limit-mem=] [mean-cpu= sd-cpu= mean-mem= sd-mem=]
//	                              the predictor's next answer for the task (it is sized at the next tick)
//	fail-node name=n1             the agent stops talking (partition or dead agent; its processes keep running)
//	kill-node name=n1             the machine dies (its processes are gone; it stays silent)
//	restore-node name=n1          the agent is back: registers, gets its full set, reports everything
//	exit task=web-0 [code=0] [oom] [evict] [used=MiB] [log=line_one|line_two]   the task's process on its node ends
//	stop job=web | drain name=n1 | cordon name=n1 [undo]
//	server-down                   the control plane is gone (agents keep running, queue reports)
//	restart-server                a new controller restored from the store
//	tick [dt=1s] [n=1]            advance time: agents talk, the controller ticks, Ready is applied
//	tasks | agents | nodes        print state
//	endpoints                     the service jobs' endpoints (Controller.Services)
//	explain task=web-0            why the task is where it is, or waits
//	expect [running=N] [pending=N] [lost=N] [succeeded=N] [processes=N] [max-processes=N] [starts=task:N,...]
//	                              [min-running=job:N] (fewest processes of the job running at the end of a tick)
//	                              [version=job:N] [stable=job:N] [deployment=job:status] [tasks-at=job:version:N]
//	submit and update also take [cmd=/bin/true] [check=/bin/true] (a command health check; /bin/false fails)
//	                              [max-parallel=] [min-healthy=] [deadline=] [auto-revert] [canary=]
//	update job=web ...            a new version of the job's spec (what is not given stays)
//	scale job=web replicas=N | promote job=web | revert job=web version=N
//	deployment job=web            the job's version and rollout
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := newHarness(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := h.run(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

// fixedRec is a recommender whose answer the test sets.
type fixedRec struct{ r models.Recommendation }

func (f *fixedRec) Kind() string          { return "fixed" }
func (f *fixedRec) Observe(models.Window) {}
func (f *fixedRec) ObserveOOM(_ time.Time, m float64) {
	f.r.Memory.Limit = max(f.r.Memory.Limit, m*1.2)
}
func (f *fixedRec) Limit(time.Time) models.Size {
	return models.Size{CPU: f.r.CPU.Limit, Memory: f.r.Memory.Limit}
}
func (f *fixedRec) Recommend(time.Time) models.Recommendation { return f.r }

type harness struct {
	t      *testing.T
	epoch  time.Time
	now    time.Time
	cfg    Config
	c      *Controller
	pred   *predictor.Predictor
	recs   map[predictor.TaskKey]*fixedRec
	store  *memStore
	agents map[string]*simAgent
	order  []string
	down   bool // the control plane is gone
	maxRun map[string]int
	minRun map[string]int // from the first update of the job
	starts map[string]int
	ids    map[string]int // submissions per job name
}

func newHarness(t *testing.T) *harness {
	epoch := time.Unix(0, 0).UTC()
	h := &harness{t: t, epoch: epoch, now: epoch, recs: map[predictor.TaskKey]*fixedRec{}, store: newMemStore(),
		agents: map[string]*simAgent{}, maxRun: map[string]int{}, minRun: map[string]int{}, starts: map[string]int{}, ids: map[string]int{}}
	h.cfg = Config{Placement: scheduler.Options{Seed: 1}, Sizing: SizingPolicy{MinTaskAge: time.Minute}}
	return h
}

// controller builds the controller lazily, so options can come first.
func (h *harness) controller() *Controller {
	if h.c != nil {
		return h.c
	}
	var err error
	h.pred, err = predictor.New(predictor.Config{Kind: "fixed", StepSpread: -1, EarlyHorizon: time.Nanosecond,
		New: func(string) (models.Recommender, error) { return &fixedRec{}, nil },
		NewFor: func(k predictor.TaskKey) (models.Recommender, error) {
			r := h.recs[k]
			if r == nil {
				r = &fixedRec{}
				h.recs[k] = r
			}
			return r, nil
		}})
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := h.cfg
	cfg.Predictor = h.pred
	h.c, err = New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.c
}

func args(d *datadriven.TestData) map[string]string {
	m := map[string]string{}
	for _, a := range d.CmdArgs {
		m[a.Key] = strings.Join(a.Vals, ",")
	}
	return m
}

func num(m map[string]string, k string, def float64) (float64, error) {
	v, ok := m[k]
	if !ok {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %v", k, v, err)
	}
	return f, nil
}

func dur(m map[string]string, k string, def time.Duration) (time.Duration, error) {
	v, ok := m[k]
	if !ok {
		return def, nil
	}
	return time.ParseDuration(v)
}

func (h *harness) run(d *datadriven.TestData) (string, error) {
	a := args(d)
	switch d.Cmd {
	case "option":
		if h.c != nil {
			return "", fmt.Errorf("options come before the first node or job")
		}
		return "ok\n", h.option(a)
	case "add-node":
		cpu, err := num(a, "cpu", 4)
		if err != nil {
			return "", err
		}
		mem, err := num(a, "mem", 8)
		if err != nil {
			return "", err
		}
		info := NodeInfo{Name: a["name"], CPU: cpu, Memory: int64(mem * (1 << 30)), Labels: map[string]string{}}
		for _, l := range []string{"zone", "rack"} {
			if z, ok := a[l]; ok {
				info.Labels[l] = z
			}
		}
		if info.PortRange, err = scheduler.ParsePortRange(a["ports"]); err != nil {
			return "", err
		}
		ag := &simAgent{info: info, alive: true, procs: map[string]*proc{}, set: map[string]Assignment{}}
		h.agents[info.Name] = ag
		h.order = append(h.order, info.Name)
		h.controller()
		if !h.down {
			h.connect(ag)
		}
		return "ok\n", nil
	case "submit":
		return "ok\n", h.submit(a)
	case "update", "scale", "promote", "revert":
		return h.deploy(d.Cmd, a)
	case "deployment":
		return h.printDeployment(a["job"]), nil
	case "recommend":
		return "ok\n", h.recommend(a)
	case "fail-node", "kill-node", "restore-node":
		ag := h.agents[a["name"]]
		if ag == nil {
			return "", fmt.Errorf("no node %q", a["name"])
		}
		switch d.Cmd {
		case "fail-node":
			ag.alive = false
		case "kill-node":
			ag.alive = false
			ag.procs = map[string]*proc{}
		case "restore-node":
			ag.alive = true
			if !h.down {
				h.connect(ag)
			}
		}
		return "ok\n", nil
	case "exit":
		return "ok\n", h.exit(a)
	case "stop":
		if err := h.controller().Stop(h.jobID(a["job"]), h.now); err != nil {
			return "", err
		}
		return h.apply(), nil
	case "drain":
		if _, err := h.controller().Drain(a["name"], h.now); err != nil {
			return "", err
		}
		return h.apply(), nil
	case "cordon":
		_, undo := a["undo"]
		if _, err := h.controller().Cordon(a["name"], undo, h.now); err != nil {
			return "", err
		}
		return h.apply(), nil
	case "server-down":
		h.down = true
		h.c = nil
		for _, ag := range h.agents {
			ag.connected = false
		}
		return "ok\n", nil
	case "restart-server":
		h.down = false
		c := h.controller()
		for _, w := range c.Restore(h.store.snapshot(), h.now) {
			h.t.Logf("restore: %s", w)
		}
		return "ok\n", nil
	case "tick":
		dt, err := dur(a, "dt", time.Second)
		if err != nil {
			return "", err
		}
		n, err := num(a, "n", 1)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for range int(n) {
			b.WriteString(h.tick(dt))
		}
		return b.String(), nil
	case "endpoints":
		var b strings.Builder
		for _, sv := range h.controller().Services("") {
			fmt.Fprintf(&b, "%s/%s ports=%v healthy=%d/%d\n", sv.Namespace, sv.Name, sv.PortNames, sv.Healthy(), len(sv.Endpoints))
			for _, e := range sv.Endpoints {
				fmt.Fprintf(&b, "  %s node=%s healthy=%v%s\n", e.TaskID, e.Node, e.Healthy, fmtPorts(e.Ports))
			}
		}
		return b.String(), nil
	case "tasks":
		return h.printTasks(), nil
	case "agents":
		return h.printAgents(), nil
	case "nodes":
		var b strings.Builder
		for _, v := range h.controller().Nodes() {
			fmt.Fprintf(&b, "%s up=%v schedulable=%v draining=%v tasks=%d requested=%.3g/%.3g cpu %.3g/%.3g GiB\n", v.Node.Name, v.Node.Up,
				v.Node.Schedulable, v.Node.Draining, v.Tasks, v.CPURequested, v.Node.CPU, float64(v.MemoryRequested)/(1<<30), float64(v.Node.Memory)/(1<<30))
		}
		return b.String(), nil
	case "autoscale":
		r := h.controller().AutoscaleView(h.now).Report
		return fmt.Sprintf("used=%d needed=%d add=%d could-remove=%v\n", r.MachinesUsed, r.MachinesNeeded, r.Add, r.CouldRemove), nil
	case "expect":
		return h.expect(a)
	case "explain":
		t, ok := h.controller().Task(a["task"])
		if !ok {
			return "", fmt.Errorf("no task %q", a["task"])
		}
		sz, _ := h.controller().Sizing(a["task"])
		return fmt.Sprintf("%s %s: %s\nsizing: %s\n", t.ID(), t.State, t.Reason, sz.Decision), nil
	}
	return "", fmt.Errorf("unknown command %q", d.Cmd)
}

func (h *harness) option(a map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(a)) {
		v := a[k]
		var err error
		switch k {
		case "heartbeat":
			h.cfg.HeartbeatTimeout, err = time.ParseDuration(v)
		case "grace":
			h.cfg.FailoverGrace, err = time.ParseDuration(v)
		case "min-age":
			h.cfg.Sizing.MinTaskAge, err = time.ParseDuration(v)
		case "shrink-delay":
			h.cfg.Sizing.ShrinkDelay, err = time.ParseDuration(v)
		case "mass-fraction":
			h.cfg.MassFailureFraction, err = strconv.ParseFloat(v, 64)
		case "mass-rate":
			h.cfg.MassFailureRate, err = strconv.Atoi(v)
		case "drain-budget":
			h.cfg.DrainBudget, err = strconv.Atoi(v)
		case "consolidate":
			h.cfg.Consolidate = v != "false"
		case "eps":
			h.cfg.Placement.OverloadRisk, err = strconv.ParseFloat(v, 64)
		case "move-cost":
			h.cfg.Sizing.MoveCost, err = strconv.ParseFloat(v, 64)
		case "risk":
			h.cfg.Placement.Risk, err = scheduler.ParseRiskModel(v)
		case "correlation":
			h.cfg.Placement.Correlation, err = scheduler.ParseCorrelation(v)
		case "provider":
			h.cfg.Provider.Enabled = v != "false"
		case "removal-delay":
			h.cfg.Provider.RemovalDelay, err = time.ParseDuration(v)
		case "cooldown":
			h.cfg.Provider.Cooldown, err = time.ParseDuration(v)
		case "retry-waiting":
			h.cfg.RetryWaiting, err = time.ParseDuration(v)
		case "job-retention":
			h.cfg.JobRetention, err = time.ParseDuration(v)
		case "max-finished":
			h.cfg.MaxFinishedJobs, err = strconv.Atoi(v)
		case "pack-on-limit":
			h.cfg.Sizing.PackOnLimit = v != "false"
		default:
			return fmt.Errorf("unknown option %q", k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// jobID is the id of the latest job submitted under name: name-id, then
// name-id2, name-id3, ...
func (h *harness) jobID(name string) string {
	if n := h.ids[name]; n > 1 {
		return fmt.Sprintf("%s-id%d", name, n)
	}
	return name + "-id"
}

func (h *harness) submit(a map[string]string) error {
	reps, err := num(a, "replicas", 1)
	if err != nil {
		return err
	}
	cpu, err := num(a, "cpu", 0)
	if err != nil {
		return err
	}
	mem, err := num(a, "mem", 0)
	if err != nil {
		return err
	}
	typ := a["type"]
	if typ == "" {
		typ = TypeService
	}
	prio := a["prio"]
	if prio == "" {
		prio = "batch"
		if typ == TypeService {
			prio = "prod"
		}
	}
	spec := Spec{Name: a["job"], Namespace: "default", Type: typ, Priority: prio, Replicas: int32(reps), Schedule: strings.ReplaceAll(a["schedule"], "_", " "),
		Command: []string{"/bin/true"}, CPUHint: cpu, MemoryHint: int64(mem * (1 << 30)), Spread: a["spread"]}
	if v, ok := a["ports"]; ok {
		for _, p := range strings.Split(v, ";") {
			name, st, _ := strings.Cut(p, ":")
			ps := PortSpec{Name: name}
			if st != "" {
				if ps.Static, err = strconv.Atoi(st); err != nil {
					return fmt.Errorf("ports=%q: %v", v, err)
				}
			}
			spec.Ports = append(spec.Ports, ps)
		}
	}
	if v, ok := a["restart"]; ok {
		f := strings.Split(v, "/")
		if len(f) != 4 {
			return fmt.Errorf("restart=%q: want ATTEMPTS/INTERVAL/DELAY/MODE", v)
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			return err
		}
		iv, err1 := time.ParseDuration(f[1])
		dl, err2 := time.ParseDuration(f[2])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("restart=%q: %v %v", v, err1, err2)
		}
		spec.Restart = &RestartPolicy{Attempts: int32(n), Interval: iv, Delay: dl, Mode: f[3]}
	}
	if v, ok := a["constraint"]; ok {
		for _, c := range strings.Split(v, ";") {
			var k Constraint
			switch {
			case strings.Contains(c, "!="):
				l, val, _ := strings.Cut(c, "!=")
				k = Constraint{Label: l, Op: OpNotEqual, Values: []string{val}}
			case strings.Contains(c, "="):
				l, val, _ := strings.Cut(c, "=")
				k = Constraint{Label: l, Op: OpEqual, Values: []string{val}}
			case strings.Contains(c, "~"):
				l, val, _ := strings.Cut(c, "~")
				k = Constraint{Label: l, Op: OpIn, Values: strings.Split(val, ",")}
			case strings.HasSuffix(c, "?"):
				k = Constraint{Label: strings.TrimSuffix(c, "?"), Op: OpExists}
			default:
				return fmt.Errorf("constraint %q: use label=v, label!=v, label~a,b or label?", c)
			}
			spec.Constraints = append(spec.Constraints, k)
		}
	}
	if err := specArgs(&spec, a); err != nil {
		return err
	}
	// Limits or predicted usage given: the job's name has history, so its
	// tasks start at the predictor's recommendation (request = cpu/mem).
	seeded := false
	for _, k := range []string{"limit-cpu", "limit-mem", "mean-cpu", "sd-cpu", "mean-mem", "sd-mem"} {
		_, ok := a[k]
		seeded = seeded || ok
	}
	if seeded {
		h.controller()
		spec.CPUHint, spec.MemoryHint = 0, 0
		var f [6]float64
		for i, k := range []string{"limit-cpu", "limit-mem", "mean-cpu", "sd-cpu", "mean-mem", "sd-mem"} {
			if f[i], err = num(a, k, 0); err != nil {
				return err
			}
		}
		for i := range int(reps) {
			k := predictor.TaskKey{Namespace: "default", Job: a["job"], Task: i}
			h.pred.Observe(k, []models.Window{{Start: h.now.Add(-5 * time.Minute)}})
			h.recs[k].r = models.Recommendation{
				CPU:    models.Estimate{Request: cpu, Limit: max(f[0], cpu), Mean: f[2], StdDev: f[3]},
				Memory: models.Estimate{Request: mem * (1 << 30), Limit: max(f[1], mem) * (1 << 30), Mean: f[4] * (1 << 30), StdDev: f[5] * (1 << 30)},
			}
		}
	}
	h.ids[a["job"]]++
	if err := h.controller().Submit(Job{ID: h.jobID(a["job"]), Spec: spec}, h.now); err != nil {
		h.ids[a["job"]]--
		return err
	}
	h.apply()
	return nil
}

func (h *harness) recommend(a map[string]string) error {
	c := h.controller()
	r, ok := c.lookup(a["task"])
	if !ok {
		return fmt.Errorf("no task %q", a["task"])
	}
	k := key(r)
	if _, err := h.pred.Recommend(k, h.now); err != nil {
		h.pred.Observe(k, []models.Window{{Start: h.now.Add(-5 * time.Minute)}})
	}
	fr := h.recs[k]
	t := r.task()
	var f [8]float64
	defs := []float64{t.CPURequest, float64(t.MemoryRequest) / (1 << 30), t.CPULimit, float64(t.MemoryLimit) / (1 << 30), 0, 0, 0, 0}
	for i, name := range []string{"cpu", "mem", "limit-cpu", "limit-mem", "mean-cpu", "sd-cpu", "mean-mem", "sd-mem"} {
		var err error
		if f[i], err = num(a, name, defs[i]); err != nil {
			return err
		}
	}
	fr.r = models.Recommendation{
		CPU:    models.Estimate{Request: f[0], Limit: max(f[2], f[0]), Mean: f[4], StdDev: f[5]},
		Memory: models.Estimate{Request: f[1] * (1 << 30), Limit: max(f[3], f[1]) * (1 << 30), Mean: f[6] * (1 << 30), StdDev: f[7] * (1 << 30)},
	}
	c.Observed([]string{a["task"]})
	return nil
}

func (h *harness) exit(a map[string]string) error {
	id := a["task"]
	for _, name := range h.order {
		ag := h.agents[name]
		p := ag.procs[id]
		if p == nil || !p.running {
			continue
		}
		code, _ := num(a, "code", 0)
		used, _ := num(a, "used", 0)
		p.running = false
		st := Status{TaskID: id, State: ReportedSucceeded, ExitCode: int32(code), Generation: p.gen, FinishedAt: h.now, Restarts: p.restarts,
			LogTail: strings.ReplaceAll(strings.ReplaceAll(a["log"], "_", " "), "|", "\n")}
		_, oom := a["oom"]
		_, evict := a["evict"]
		switch {
		case evict:
			st.State, st.Evicted, st.MemoryUsed = ReportedStopped, true, int64(used*(1<<20))
			p.evicted = true
		case oom:
			st.State, st.OOMKilled, st.ExitCode = ReportedFailed, true, 137
		case code != 0:
			st.State = ReportedFailed
		}
		if oom || code != 0 || !evict {
			p.exited = true
		}
		ag.queue = append(ag.queue, st)
		return nil
	}
	return fmt.Errorf("no process of %q runs", id)
}

// connect is an agent's (re)connection: register, full set, full report.
func (h *harness) connect(ag *simAgent) {
	c := h.controller()
	if _, err := c.Register(ag.info, h.now); err != nil {
		h.t.Fatal(err)
	}
	ag.connected = true
	ag.set = map[string]Assignment{}
	for _, as := range c.NodeAssignments(ag.info.Name) {
		ag.set[as.TaskID] = as
	}
	ag.reconcile(h)
	ag.queue = append(ag.snapshot(), nil...)
}

func (h *harness) tick(dt time.Duration) string {
	h.now = h.now.Add(dt)
	var b strings.Builder
	fmt.Fprintf(&b, "t=%s\n", h.now.Sub(h.epoch))
	if h.down {
		for _, name := range h.order {
			h.agents[name].reconcile(h)
		}
		h.count()
		return b.String()
	}
	c := h.controller()
	for _, name := range h.order {
		ag := h.agents[name]
		if !ag.alive {
			continue
		}
		if !ag.connected {
			h.connect(ag)
		}
		c.Heartbeat(name, Usage{}, h.now)
		ag.checkHealth()
		if len(ag.queue) > 0 {
			if err := c.Report(name, ag.queue, h.now); err != nil {
				h.t.Fatal(err)
			}
			ag.queue = nil
		}
	}
	c.Tick(h.now)
	b.WriteString(h.apply())
	h.count()
	return b.String()
}

// apply takes the controller's Ready: persists it in the store, prints it,
// and delivers the assignment changes to connected agents.
func (h *harness) apply() string {
	rd := h.controller().Ready()
	h.store.apply(&rd)
	var b strings.Builder
	for _, l := range rd.Log {
		fmt.Fprintf(&b, "log: %s\n", l)
	}
	for _, t := range rd.Tasks {
		fmt.Fprintf(&b, "task %s: %s node=%s gen=%d: %s\n", t.ID(), t.State, t.Node, t.Generation, t.Reason)
	}
	for _, j := range rd.DeletedJobs {
		fmt.Fprintf(&b, "deleted job %s\n", j.ID)
	}
	for _, ch := range rd.Assign {
		ag := h.agents[ch.Node]
		if ch.Assignment == nil {
			fmt.Fprintf(&b, "assign %s: -%s\n", ch.Node, ch.TaskID)
		} else {
			a := ch.Assignment
			fmt.Fprintf(&b, "assign %s: %s gen=%d %s cpu=%.3g mem=%dMi%s\n", ch.Node, ch.TaskID, a.Generation, a.Desired, a.CPURequest, a.MemoryRequest>>20, fmtPorts(a.Ports))
		}
		if ag == nil || !ag.alive || !ag.connected {
			continue
		}
		if ch.Assignment == nil {
			delete(ag.set, ch.TaskID)
		} else {
			ag.set[ch.TaskID] = *ch.Assignment
		}
	}
	if n := rd.Stats.Unschedulable; n > 0 {
		fmt.Fprintf(&b, "waiting for room: %d\n", n)
	}
	if rd.Provider != nil {
		fmt.Fprintf(&b, "provider: %s %s\n", rd.Provider.Action, strings.Join(rd.Provider.Args, " "))
		h.controller().ProviderDone(rd.Provider, true, h.now)
	}
	for _, name := range h.order {
		if ag := h.agents[name]; ag.alive && ag.connected {
			ag.reconcile(h)
		}
	}
	return b.String()
}

// count updates the highest number of processes per job seen at once.
func (h *harness) count() {
	per := map[string]int{}
	for _, name := range h.order {
		for id, p := range h.agents[name].procs {
			if p.running {
				job, _, _ := SplitTaskID(id)
				per[job]++
			}
		}
	}
	for j, n := range per {
		h.maxRun[j] = max(h.maxRun[j], n)
	}
	for j, m := range h.minRun {
		h.minRun[j] = min(m, per[j])
	}
}

func (h *harness) printTasks() string {
	var b strings.Builder
	for _, v := range h.controller().Jobs(nil) {
		ts, _ := h.controller().JobTasks(v.Job.ID)
		fmt.Fprintf(&b, "job %s: %s %v\n", v.Job.ID, v.State, v.Counts)
		for _, t := range ts {
			fmt.Fprintf(&b, "  %s %s node=%s gen=%d req=%.3g/%dMi lim=%.3g/%dMi", t.ID(), t.State, t.Node, t.Generation,
				t.CPURequest, t.MemoryRequest>>20, t.CPULimit, t.MemoryLimit>>20)
			if t.RestartAttempts > 0 || !t.RestartAt.IsZero() {
				fmt.Fprintf(&b, " restarts=%d", t.RestartAttempts)
				if !t.RestartAt.IsZero() {
					fmt.Fprintf(&b, " restart-at=%s", t.RestartAt.Sub(h.epoch))
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func (h *harness) printAgents() string {
	var b strings.Builder
	for _, name := range h.order {
		ag := h.agents[name]
		fmt.Fprintf(&b, "%s alive=%v:", name, ag.alive)
		for _, id := range slices.Sorted(maps.Keys(ag.procs)) {
			p := ag.procs[id]
			state := "exited"
			if p.running {
				state = "running"
			}
			fmt.Fprintf(&b, " %s(gen=%d %s)", id, p.gen, state)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (h *harness) expect(a map[string]string) (string, error) {
	count := map[TaskState]int{}
	for _, v := range h.controller().Jobs(nil) {
		ts, _ := h.controller().JobTasks(v.Job.ID)
		for _, t := range ts {
			count[t.State]++
		}
	}
	procs := 0
	for _, ag := range h.agents {
		for _, p := range ag.procs {
			if p.running {
				procs++
			}
		}
	}
	var fails []string
	for k, st := range map[string]TaskState{"running": Running, "lost": Lost, "pending": Pending, "succeeded": Succeeded, "placed": Placed, "failed": Failed, "stopped": Stopped} {
		if v, ok := a[k]; ok {
			if want, _ := strconv.Atoi(v); want != count[st] {
				fails = append(fails, fmt.Sprintf("%s: got %d, want %d", k, count[st], want))
			}
		}
	}
	if v, ok := a["processes"]; ok {
		if want, _ := strconv.Atoi(v); want != procs {
			fails = append(fails, fmt.Sprintf("processes: got %d, want %d", procs, want))
		}
	}
	if v, ok := a["max-processes"]; ok {
		job, n, _ := strings.Cut(v, ":")
		if want, _ := strconv.Atoi(n); h.maxRun[h.jobID(job)] > want {
			fails = append(fails, fmt.Sprintf("max processes of %s: %d at once, want at most %d", job, h.maxRun[h.jobID(job)], want))
		}
	}
	if v, ok := a["min-running"]; ok {
		job, n, _ := strings.Cut(v, ":")
		got, tracked := h.minRun[h.jobID(job)]
		if want, _ := strconv.Atoi(n); !tracked || got < want {
			fails = append(fails, fmt.Sprintf("fewest processes of %s running: %d (tracked %v), want at least %d", job, got, tracked, want))
		}
	}
	for _, k := range []string{"version", "stable", "deployment", "tasks-at"} {
		v, ok := a[k]
		if !ok {
			continue
		}
		parts := strings.Split(v, ":")
		jv, found := h.controller().Job(h.jobID(parts[0]))
		if !found || len(parts) < 2 {
			fails = append(fails, fmt.Sprintf("%s=%s: no such job", k, v))
			continue
		}
		var got string
		switch k {
		case "version":
			got = strconv.FormatInt(jv.Job.Version, 10)
		case "stable":
			got = strconv.FormatInt(jv.Job.StableVersion, 10)
		case "deployment":
			if d := jv.Job.Deployment; d != nil {
				got = d.Status
			}
		case "tasks-at":
			ts, _ := h.controller().JobTasks(jv.Job.ID)
			n := 0
			for _, t := range ts {
				if strconv.FormatInt(t.Version, 10) == parts[1] && t.State == Running {
					n++
				}
			}
			got = parts[1] + ":" + strconv.Itoa(n)
		}
		if want := strings.Join(parts[1:], ":"); got != want {
			fails = append(fails, fmt.Sprintf("%s of %s: got %s, want %s", k, parts[0], got, want))
		}
	}
	if v, ok := a["starts"]; ok {
		for _, kv := range strings.Split(v, ",") {
			id, n, _ := strings.Cut(kv, ":")
			if want, _ := strconv.Atoi(n); h.starts[id] != want {
				fails = append(fails, fmt.Sprintf("starts of %s: got %d, want %d", id, h.starts[id], want))
			}
		}
	}
	// Every node within requests and prod limits.
	for _, u := range h.controller().sched.Usage() {
		if !u.Requested.Fits(u.Capacity) || !u.ProdLimits.Fits(u.Capacity) {
			fails = append(fails, fmt.Sprintf("node %s over capacity: requested %v prod limits %v of %v", u.Name, u.Requested, u.ProdLimits, u.Capacity))
		}
	}
	if len(fails) > 0 {
		return "", fmt.Errorf("%s", strings.Join(fails, "; "))
	}
	return "ok\n", nil
}

// simAgent runs what its assignment set says, like agent.Executor: a new
// RUN assignment starts a process; a KEEP one keeps a running process but
// never starts one; a removed one is stopped; a new generation with the
// same spec is a resize in place. A process that ended is started again
// only for a new generation (the controller's restart policy decides).
type simAgent struct {
	info      NodeInfo
	alive     bool
	connected bool
	set       map[string]Assignment
	procs     map[string]*proc
	queue     []Status
}

type proc struct {
	gen       int64
	running   bool
	exited    bool // ended on its own (batch finished, crash)
	evicted   bool
	restarts  int32
	pid       int32
	command   []string
	check     *HealthCheck
	health    Health
	healthMsg string
}

func (ag *simAgent) reconcile(h *harness) {
	for id, p := range ag.procs {
		a, ok := ag.set[id]
		switch {
		case !ok:
			delete(ag.procs, id) // stopped and forgotten
		case a.Desired == DesiredStop:
			if p.running {
				p.running = false
				ag.queue = append(ag.queue, Status{TaskID: id, State: ReportedStopped, Generation: a.Generation, Reason: "stopped by the control plane"})
			}
			p.gen = a.Generation
		case a.Desired == DesiredKeep:
			p.gen = max(p.gen, 0)
		case p.running && !slices.Equal(p.command, a.Command):
			// A new spec: the process is restarted with it.
			p.running = false
			ag.start(h, id, a)
		case p.running:
			p.gen = a.Generation // resized in place
		case a.Generation != p.gen:
			ag.start(h, id, a)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(ag.set)) {
		a := ag.set[id]
		if _, ok := ag.procs[id]; ok || a.Desired != DesiredRun {
			continue
		}
		ag.start(h, id, a)
	}
}

func (ag *simAgent) start(h *harness, id string, a Assignment) {
	p := ag.procs[id]
	if p == nil {
		p = &proc{}
		ag.procs[id] = p
	} else {
		p.restarts++
	}
	h.starts[id]++
	p.gen, p.running, p.exited, p.evicted = a.Generation, true, false, false
	p.command, p.check, p.health = a.Command, a.HealthCheck, HealthNone
	if p.check != nil {
		p.health = HealthUnknown // checked at the next tick
	}
	p.pid = int32(1000 + h.starts[id])
	ag.queue = append(ag.queue, Status{TaskID: id, State: ReportedRunning, PID: p.pid, Generation: a.Generation, Restarts: p.restarts, StartedAt: h.now,
		Health: p.health})
}

// checkHealth runs the health checks of running processes not checked yet:
// a check whose command is /bin/false fails, any other passes.
func (ag *simAgent) checkHealth() {
	for _, id := range slices.Sorted(maps.Keys(ag.procs)) {
		p := ag.procs[id]
		if !p.running || p.check == nil || p.health != HealthUnknown {
			continue
		}
		p.health, p.healthMsg = Healthy, ""
		if len(p.check.Command) > 0 && p.check.Command[0] == "/bin/false" {
			p.health, p.healthMsg = Unhealthy, "exited 1"
		}
		ag.queue = append(ag.queue, Status{TaskID: id, State: ReportedRunning, PID: p.pid, Generation: p.gen, Restarts: p.restarts,
			Health: p.health, HealthMessage: p.healthMsg})
	}
}

// snapshot is the agent's full report on (re)connection.
func (ag *simAgent) snapshot() []Status {
	var out []Status
	for _, id := range slices.Sorted(maps.Keys(ag.procs)) {
		p := ag.procs[id]
		st := Status{TaskID: id, State: ReportedRunning, PID: p.pid, Generation: p.gen, Restarts: p.restarts, Health: p.health, HealthMessage: p.healthMsg}
		if !p.running {
			st = Status{TaskID: id, State: ReportedSucceeded, Generation: p.gen, Restarts: p.restarts}
			if !p.exited {
				st.State = ReportedStopped
			}
		}
		out = append(out, st)
	}
	return out
}

// memStore keeps what Ready says to persist, as the etcd store does.
type memStore struct {
	jobs   map[string]Job
	tasks  map[string]Task
	nodes  map[string]Node
	ghosts map[GhostKey]Ghost
	names  map[string]string
	// versions are the job versions kept (history).
	versions map[versionKey]JobVersion
}

func newMemStore() *memStore {
	return &memStore{versions: map[versionKey]JobVersion{}, jobs: map[string]Job{}, tasks: map[string]Task{}, nodes: map[string]Node{}, ghosts: map[GhostKey]Ghost{}, names: map[string]string{}}
}

func (s *memStore) apply(rd *Ready) {
	for _, j := range rd.Jobs {
		s.jobs[j.ID] = j
	}
	for _, t := range rd.Tasks {
		s.tasks[t.ID()] = t
	}
	for _, n := range rd.Nodes {
		s.nodes[n.Name] = n
	}
	for _, n := range rd.RemovedNodes {
		delete(s.nodes, n)
	}
	for _, g := range rd.GhostPuts {
		s.ghosts[GhostKey{g.TaskID, g.Node}] = g
	}
	for _, k := range rd.GhostDeletes {
		delete(s.ghosts, k)
	}
	for _, nc := range rd.Names {
		if nc.JobID == "" {
			delete(s.names, nc.Namespace+"/"+nc.Name)
		} else {
			s.names[nc.Namespace+"/"+nc.Name] = nc.JobID
		}
	}
	for _, id := range rd.DeletedTasks {
		delete(s.tasks, id)
	}
	for _, v := range rd.Versions {
		s.versions[versionKey{v.JobID, v.Version}] = v
	}
	for _, j := range rd.DeletedJobs {
		delete(s.jobs, j.ID)
		for id, t := range s.tasks {
			if t.JobID == j.ID {
				delete(s.tasks, id)
			}
		}
	}
}

func (s *memStore) snapshot() Snapshot {
	var snap Snapshot
	for _, k := range slices.Sorted(maps.Keys(s.jobs)) {
		snap.Jobs = append(snap.Jobs, s.jobs[k])
	}
	for _, k := range slices.Sorted(maps.Keys(s.tasks)) {
		snap.Tasks = append(snap.Tasks, s.tasks[k])
	}
	for _, k := range slices.Sorted(maps.Keys(s.nodes)) {
		snap.Nodes = append(snap.Nodes, s.nodes[k])
	}
	for _, g := range s.ghosts {
		snap.Ghosts = append(snap.Ghosts, g)
	}
	snap.Names = maps.Clone(s.names)
	return snap
}

// parseCmd builds a datadriven command from one line ("cmd k=v k2=v2").
func parseCmd(t *testing.T, line string) *datadriven.TestData {
	t.Helper()
	f := strings.Fields(line)
	d := &datadriven.TestData{Cmd: f[0]}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		a := datadriven.CmdArg{Key: k}
		if ok {
			a.Vals = []string{v}
		}
		d.CmdArgs = append(d.CmdArgs, a)
	}
	return d
}

// fmtPorts prints a task's ports as " ports=admin:20001,http:20002".
func fmtPorts(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+":"+strconv.Itoa(m[k]))
	}
	return " ports=" + strings.Join(parts, ",")
}

// specArgs applies the deployment arguments of submit and update to spec.
func specArgs(spec *Spec, a map[string]string) error {
	if v, ok := a["type"]; ok {
		spec.Type = v
	}
	if v, ok := a["cmd"]; ok {
		spec.Command = strings.Split(v, ",")
	}
	if v, ok := a["check"]; ok {
		spec.HealthCheck = &HealthCheck{Command: []string{v}, Interval: time.Second, Timeout: time.Second}
		if v == "none" {
			spec.HealthCheck = nil
		}
	}
	if v, ok := a["replicas"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		spec.Replicas = int32(n)
	}
	pol := spec.policy()
	set := false
	for _, k := range []string{"max-parallel", "min-healthy", "deadline", "auto-revert", "canary"} {
		v, ok := a[k]
		if !ok {
			continue
		}
		set = true
		var err error
		var n int
		switch k {
		case "max-parallel":
			n, err = strconv.Atoi(v)
			pol.MaxParallel = int32(n)
		case "canary":
			n, err = strconv.Atoi(v)
			pol.Canary = int32(n)
		case "min-healthy":
			pol.MinHealthyTime, err = time.ParseDuration(v)
		case "deadline":
			pol.HealthyDeadline, err = time.ParseDuration(v)
		case "auto-revert":
			pol.AutoRevert = v != "false"
		}
		if err != nil {
			return fmt.Errorf("%s=%q: %v", k, v, err)
		}
	}
	if set {
		spec.Update = &pol
	}
	return nil
}

// deploy runs update, scale, promote and revert.
func (h *harness) deploy(cmd string, a map[string]string) (string, error) {
	c := h.controller()
	id := h.jobID(a["job"])
	if _, tracked := h.minRun[id]; !tracked {
		h.minRun[id] = 1 << 30
	}
	v, ok := c.Job(id)
	if !ok {
		return "", fmt.Errorf("no job %q", a["job"])
	}
	var err error
	var version int64
	changed := true
	switch cmd {
	case "update":
		spec := v.Job.Spec.clone()
		if err := specArgs(&spec, a); err != nil {
			return "", err
		}
		version, changed, err = c.Update(id, spec, "submitted", h.now)
	case "scale":
		n, perr := strconv.Atoi(a["replicas"])
		if perr != nil {
			return "", perr
		}
		version, changed, err = c.Scale(id, int32(n), h.now)
	case "promote":
		err = c.Promote(id, h.now)
	case "revert":
		n, _ := strconv.ParseInt(a["version"], 10, 64)
		kept, ok := h.store.versions[versionKey{id, n}]
		if !ok {
			return "", fmt.Errorf("version %d of %s is not kept", n, id)
		}
		version, changed, err = c.Update(id, kept.Spec, fmt.Sprintf("reverted to version %d", n), h.now)
	}
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if cmd != "promote" {
		fmt.Fprintf(&b, "version %d changed=%v\n", version, changed)
	}
	b.WriteString(h.apply())
	return b.String(), nil
}

func (h *harness) printDeployment(job string) string {
	v, ok := h.controller().Job(h.jobID(job))
	if !ok {
		return "no job\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version %d stable %d previous %d\n", v.Job.Version, v.Job.StableVersion, len(v.Job.Previous))
	if d := v.Job.Deployment; d != nil {
		fmt.Fprintf(&b, "deployment %d<-%d %s placed=%d healthy=%d desired=%d revert=%v: %s\n", d.Version, d.FromVersion, d.Status,
			d.Placed, d.Healthy, d.Desired, d.Revert, d.Message)
	}
	ts, _ := h.controller().JobTasks(v.Job.ID)
	for _, t := range ts {
		fmt.Fprintf(&b, "  %s v%d %s health=%s node=%s gen=%d\n", t.ID(), t.Version, t.State, t.Health, t.Node, t.Generation)
	}
	var keys []versionKey
	for k := range h.store.versions {
		if k.job == v.Job.ID {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y versionKey) int { return int(x.version - y.version) })
	for _, k := range keys {
		kv := h.store.versions[k]
		fmt.Fprintf(&b, "history v%d %q replicas=%d cmd=%v status=%s\n", kv.Version, kv.Reason, kv.Spec.Replicas, kv.Spec.Command, kv.Status)
	}
	return b.String()
}
