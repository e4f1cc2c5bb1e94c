package scheduler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the scripts in testdata/ (run with -rewrite to refresh
// their expected output). Commands:
//
//	option key=value ...                 reconcile options: heartbeat, mass-fraction, mass-rate,
//	                                     consolidate, drain-budget, min-age, risk, eps, move-cost
//	add-node name=n1 cpu=4 mem=8 [zone=a] [cordon]
//	submit job=web replicas=3 cpu=1 mem=1 [prio=prod] [limit-cpu= limit-mem=]
//	       [mean-cpu= sd-cpu= mean-mem= sd-mem=] [spread=1] [zone=a]
//	recommend task=web-0 [cpu=] [mem=] [limit-cpu=] [limit-mem=]
//	fail-node name=n1                    the node stops heartbeating (its copies keep running)
//	restore-node name=n1                 heartbeats resume
//	tick [dt=5s]                         advance time, reconcile, apply, print the result
//	tasks | nodes                        print state
//	explain task=web-0                   why the task sits where it sits, or waits
//	expect running=N [lost=N] [pending=N] [distinct]
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := newHarness()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := h.run(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

type harness struct {
	now    time.Time
	nodes  []NodeStatus
	failed map[string]bool
	tasks  []TaskStatus
	copies []Copy
	opts   ReconcileOptions
	why    map[string]string
}

func newHarness() *harness {
	return &harness{now: time.Unix(0, 0).UTC(), failed: map[string]bool{}, why: map[string]string{},
		opts: ReconcileOptions{Options: Options{Seed: 1}, MinTaskAge: time.Minute}}
}

func (h *harness) task(id string) *TaskStatus {
	for i := range h.tasks {
		if h.tasks[i].ID == id {
			return &h.tasks[i]
		}
	}
	return nil
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

func (h *harness) run(d *datadriven.TestData) (string, error) {
	a := args(d)
	switch d.Cmd {
	case "option":
		for k, v := range a {
			var err error
			switch k {
			case "heartbeat":
				h.opts.HeartbeatTimeout, err = time.ParseDuration(v)
			case "min-age":
				h.opts.MinTaskAge, err = time.ParseDuration(v)
			case "mass-fraction":
				h.opts.MassFailureFraction, err = strconv.ParseFloat(v, 64)
			case "mass-rate":
				h.opts.MassFailureRate, err = strconv.Atoi(v)
			case "drain-budget":
				h.opts.DrainBudget, err = strconv.Atoi(v)
			case "consolidate":
				h.opts.Consolidate = v != "false"
			case "eps":
				h.opts.OverloadRisk, err = strconv.ParseFloat(v, 64)
			case "move-cost":
				h.opts.MoveCost, err = strconv.ParseFloat(v, 64)
			case "risk":
				h.opts.Risk, err = ParseRiskModel(v)
			default:
				return "", fmt.Errorf("unknown option %q", k)
			}
			if err != nil {
				return "", err
			}
		}
		return "ok\n", nil
	case "add-node":
		cpu, err := num(a, "cpu", 4)
		if err != nil {
			return "", err
		}
		mem, err := num(a, "mem", 8)
		if err != nil {
			return "", err
		}
		n := Node{Name: a["name"], Capacity: Resources{cpu, mem}, Labels: map[string]string{}}
		if z, ok := a["zone"]; ok {
			n.Labels["zone"] = z
		}
		_, n.Cordoned = a["cordon"]
		if err := n.Validate(); err != nil {
			return "", err
		}
		h.nodes = append(h.nodes, NodeStatus{Node: n, LastHeartbeat: h.now})
		return "ok\n", nil
	case "submit":
		reps, err := num(a, "replicas", 1)
		if err != nil {
			return "", err
		}
		var f [10]float64
		for i, k := range []string{"cpu", "mem", "limit-cpu", "limit-mem", "mean-cpu", "sd-cpu", "mean-mem", "sd-mem", "spread"} {
			if f[i], err = num(a, k, 0); err != nil {
				return "", err
			}
		}
		prio := Batch
		if p, ok := a["prio"]; ok {
			if prio, err = ParsePriority(p); err != nil {
				return "", err
			}
		}
		for i := 0; i < int(reps); i++ {
			tk := Task{ID: fmt.Sprintf("%s-%d", a["job"], i), Job: a["job"], Priority: prio,
				Request: Resources{f[0], f[1]}, Limit: Resources{f[2], f[3]},
				Usage:      [NumResources]Dist{{Mean: f[4], StdDev: f[5]}, {Mean: f[6], StdDev: f[7]}},
				MaxPerNode: int(f[8])}
			if z, ok := a["zone"]; ok {
				tk.Constraints = []Constraint{{Label: "zone", Op: OpEqual, Value: z}}
			}
			if err := tk.Validate(); err != nil {
				return "", err
			}
			h.tasks = append(h.tasks, TaskStatus{Task: tk, Phase: Pending})
		}
		return "ok\n", nil
	case "recommend":
		ts := h.task(a["task"])
		if ts == nil {
			return "", fmt.Errorf("no task %q", a["task"])
		}
		var err error
		for i, k := range []string{"cpu", "mem"} {
			if ts.Request[i], err = num(a, k, ts.Request[i]); err != nil {
				return "", err
			}
			if ts.Limit[i], err = num(a, "limit-"+k, ts.Limit[i]); err != nil {
				return "", err
			}
		}
		return "ok\n", nil
	case "fail-node", "restore-node":
		found := false
		for _, n := range h.nodes {
			found = found || n.Name == a["name"]
		}
		if !found {
			return "", fmt.Errorf("no node %q", a["name"])
		}
		h.failed[a["name"]] = d.Cmd == "fail-node"
		return "ok\n", nil
	case "tick":
		dt := 5 * time.Second
		if v, ok := a["dt"]; ok {
			var err error
			if dt, err = time.ParseDuration(v); err != nil {
				return "", err
			}
		}
		return h.tick(dt)
	case "tasks":
		var b strings.Builder
		for _, ts := range h.tasks {
			fmt.Fprintf(&b, "%s %s node=%s attempt=%d req=%v\n", ts.ID, ts.Phase, ts.Node, ts.Attempt, ts.Request)
		}
		slices.SortFunc(h.copies, func(x, y Copy) int { return strings.Compare(fmt.Sprint(x), fmt.Sprint(y)) })
		fmt.Fprintf(&b, "copies: %v\n", h.copies)
		return b.String(), nil
	case "nodes":
		s, err := h.state()
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, u := range s.Usage() {
			flags := ""
			if u.Down {
				flags += " down"
			}
			if u.Cordoned {
				flags += " cordoned"
			}
			fmt.Fprintf(&b, "%s tasks=%d requested=%.3g/%.3g cpu %.3g/%.3g mem%s\n", u.Name, u.Tasks, u.Requested[CPU], u.Capacity[CPU], u.Requested[Memory], u.Capacity[Memory], flags)
		}
		return b.String(), nil
	case "explain":
		w, ok := h.why[a["task"]]
		if !ok {
			return "", fmt.Errorf("no decision recorded for %q", a["task"])
		}
		return w + "\n", nil
	case "expect":
		return h.expect(a)
	}
	return "", fmt.Errorf("unknown command %q", d.Cmd)
}

// state builds a State of what runs, for printing.
func (h *harness) state() (*State, error) {
	var v ClusterView
	for _, n := range h.nodes {
		v.Nodes = append(v.Nodes, n.Node)
	}
	for _, ts := range h.tasks {
		if ts.Phase == Running {
			v.Running = append(v.Running, Assignment{Task: applied(&ts), Node: ts.Node})
		}
	}
	return NewState(v)
}

func (h *harness) tick(dt time.Duration) (string, error) {
	h.now = h.now.Add(dt)
	for i := range h.nodes {
		if !h.failed[h.nodes[i].Name] {
			h.nodes[i].LastHeartbeat = h.now
		}
	}
	res, err := Reconcile(ClusterState{Nodes: h.nodes, Tasks: h.tasks, Copies: h.copies}, h.now, h.opts)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "t=%s\n", h.now.Sub(time.Unix(0, 0)))
	setDown := func(names []string, down bool, label string) {
		for _, name := range names {
			fmt.Fprintf(&b, "%s: %s\n", label, name)
			for i := range h.nodes {
				if h.nodes[i].Name == name {
					h.nodes[i].Down = down
				}
			}
		}
	}
	setDown(res.NodesDown, true, "node down")
	setDown(res.NodesUp, false, "node up")
	for _, l := range res.Lost {
		fmt.Fprintf(&b, "lost: %s on %s: %s\n", l.TaskID, l.Node, l.Reason)
		h.task(l.TaskID).Phase = Lost
	}
	for _, id := range res.Adopted {
		fmt.Fprintf(&b, "adopted: %s on %s\n", id, h.task(id).Node)
		h.task(id).Phase = Running
	}
	for _, p := range res.Preempt {
		fmt.Fprintf(&b, "preempt: %s on %s for %s\n", p.TaskID, p.Node, p.For)
		ts := h.task(p.TaskID)
		h.removeCopy(ts.ID, ts.Attempt, p.Node)
		ts.Phase, ts.Node = Pending, ""
		h.why[ts.ID] = p.Reason
	}
	for _, s := range res.Stop {
		fmt.Fprintf(&b, "stop: %s#%d on %s: %s\n", s.TaskID, s.Attempt, s.Node, s.Reason)
		h.removeCopy(s.TaskID, s.Attempt, s.Node)
	}
	for _, r := range res.Resize {
		fmt.Fprintf(&b, "resize: %s on %s %v -> %v in-place=%v moved=%v: %s\n", r.TaskID, r.Node, r.From, r.To, r.InPlace, r.Moved, r.Reason)
		if r.InPlace {
			ts := h.task(r.TaskID)
			ts.Applied, ts.AppliedLimit = r.To, r.Limit
			ts.ResizedAt = h.now
		}
	}
	for _, d := range res.Drain {
		fmt.Fprintf(&b, "drain: %s tasks=%v: %s\n", d.Node, d.Tasks, d.Reason)
	}
	for _, p := range res.Place {
		fmt.Fprintf(&b, "place: %s -> %s (score %.1f)\n", p.TaskID, p.Node, p.Score)
		ts := h.task(p.TaskID)
		ts.Phase, ts.Node, ts.Since = Running, p.Node, h.now
		ts.Attempt++
		ts.Applied, ts.AppliedLimit = ts.Request, ts.Limit
		h.copies = append(h.copies, Copy{TaskID: ts.ID, Attempt: ts.Attempt, Node: p.Node})
		h.why[ts.ID] = "on " + p.Node + ": " + p.Why.String()
	}
	for _, u := range res.Deferred {
		fmt.Fprintf(&b, "waiting: %s: %s\n", u.TaskID, u.Reason)
		h.why[u.TaskID] = "waiting: " + u.Reason
	}
	if res.StaleKept > 0 {
		fmt.Fprintf(&b, "stale copies kept until replacements run: %d\n", res.StaleKept)
	}
	as := res.Autoscale
	fmt.Fprintf(&b, "autoscale: up=%d used=%d needed=%d lower-bound=%d add=%d could-remove=%v\n", as.NodesUp, as.MachinesUsed, as.MachinesNeeded, as.LowerBound, as.Add, as.CouldRemove)
	return b.String(), nil
}

func (h *harness) removeCopy(id string, attempt int, node string) {
	h.copies = slices.DeleteFunc(h.copies, func(c Copy) bool { return c.TaskID == id && c.Attempt == attempt && c.Node == node })
}

func (h *harness) expect(a map[string]string) (string, error) {
	count := map[Phase]int{}
	nodes := map[string]bool{}
	for _, ts := range h.tasks {
		count[ts.Phase]++
		if ts.Phase == Running {
			nodes[ts.Node+"/"+ts.Job] = true
		}
	}
	var fails []string
	for k, p := range map[string]Phase{"running": Running, "lost": Lost, "pending": Pending} {
		if v, ok := a[k]; ok {
			if want, _ := strconv.Atoi(v); want != count[p] {
				fails = append(fails, fmt.Sprintf("%s: got %d, want %d", k, count[p], want))
			}
		}
	}
	if _, ok := a["distinct"]; ok && len(nodes) != count[Running] {
		fails = append(fails, fmt.Sprintf("distinct: %d running tasks on %d node/job pairs", count[Running], len(nodes)))
	}
	// Every node within requests and prod limits.
	s, err := h.state()
	if err != nil {
		return "", err
	}
	for _, u := range s.Usage() {
		if !u.Requested.Fits(u.Capacity) || !u.ProdLimits.Fits(u.Capacity) {
			fails = append(fails, fmt.Sprintf("node %s over capacity: requested %v prod limits %v of %v", u.Name, u.Requested, u.ProdLimits, u.Capacity))
		}
	}
	if len(fails) > 0 {
		return "", fmt.Errorf("%s", strings.Join(fails, "; "))
	}
	return "ok\n", nil
}
