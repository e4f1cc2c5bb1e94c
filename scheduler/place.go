package scheduler

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Options tune one Place call. The zero value is valid: ε = 0.001, the
// Gaussian risk model, 8 candidates, preemption on.
type Options struct {
	// Seed makes tie-breaks and candidate sampling reproducible: the same
	// state, tasks and seed give the same plan. Derive it from an evaluation
	// id to replay a decision later.
	Seed uint64
	// OverloadRisk is ε, the largest accepted probability that a machine's
	// summed usage exceeds its capacity. 0 means 0.001.
	OverloadRisk float64
	// Risk is the bound used to estimate that probability.
	Risk RiskModel
	// Correlation is ρ per resource, the mean pairwise correlation of the
	// usage of tasks sharing a machine (0: independent, the default; see
	// RiskModel). Gaussian and Cantelli only.
	Correlation Resources
	// Candidates is how many feasible nodes are scored per placement (0: 8).
	// The search walks nodes from least to most free capacity and stops after
	// this many feasible ones, so the cost per placement does not grow with
	// the cluster.
	Candidates int
	// KeepOrder places tasks in the given order. By default they are placed
	// by priority (highest first) and then by size (largest first), which
	// packs tighter.
	KeepOrder bool
	// NoPreemption stops prod tasks from preempting lower-priority ones.
	NoPreemption bool
	// fill scores by best fit alone: a node is filled before the next is
	// opened. The autoscaling report counts fresh machines so; the stranding
	// term would spread same-shaped tasks over more machines than they need.
	fill bool
}

// DefaultOverloadRisk is ε when Options.OverloadRisk is 0.
const DefaultOverloadRisk = 0.001

func (o *Options) normalize() error {
	if o.OverloadRisk == 0 {
		o.OverloadRisk = DefaultOverloadRisk
	}
	if !(o.OverloadRisk > 0 && o.OverloadRisk < 0.5) {
		return fmt.Errorf("%w: overload risk %v must be in (0, 0.5), e.g. 0.001", ErrInvalid, o.OverloadRisk)
	}
	if o.Candidates == 0 {
		o.Candidates = 8
	}
	if o.Candidates < 0 {
		return fmt.Errorf("%w: candidates %d must be > 0", ErrInvalid, o.Candidates)
	}
	if o.Risk < RiskGaussian || o.Risk > RiskCantelli {
		return fmt.Errorf("%w: unknown risk model %d", ErrInvalid, o.Risk)
	}
	return CheckCorrelation(o.Correlation, o.Risk)
}

// Plan is what Place decided. The caller applies it: start Placements,
// stop the Preemptions' victims and put them back to pending (a victim that
// fits elsewhere already has a Placement in this plan).
type Plan struct {
	Placements  []Placement
	Preemptions []Preemption
	Unplaced    []Unplaced
}

// Placement puts a task on a node.
type Placement struct {
	TaskID string
	Node   string
	// Ports are the task's ports on Node by name (static and the dynamic
	// ones chosen there); nil for a task without ports.
	Ports map[string]int
	Score float64
	Why   Explanation
}

// Preemption stops a running task to make room for a higher-priority one.
type Preemption struct {
	TaskID string // the victim
	Node   string
	For    string // the task that takes its place
	Reason string
}

// Unplaced is a task that stays pending, with why. Unplaced is an expected
// outcome, not an error.
type Unplaced struct {
	TaskID string
	Reason string
	Why    Explanation
}

// NodeScore is one scored candidate.
type NodeScore struct {
	Node  string  `json:"node"`
	Score float64 `json:"score"`
}

// Explanation says how a decision was reached: how many nodes exist, how
// many the search examined (candidate sampling stops early), how many were
// feasible, how many were filtered for each reason, and the best scores.
// For a task that stays pending every node is examined, so the counts
// cover the whole cluster.
type Explanation struct {
	Nodes    int
	Examined int
	Feasible int
	Filtered [NumReasons]int32
	Top      [3]NodeScore
	NTop     int
	// Preempted counts the tasks stopped to make room (0 normally).
	Preempted int
	// Cached is true when the decision was reused from an identical task
	// (same equivalence class) earlier in the same call.
	Cached bool
	// Constraints are the task's label constraints when they ruled out
	// nodes ("zone=b", "zone in (a,b)").
	Constraints string
	// Spread is the label the task spreads over; SpreadWidened how many
	// times the search had to go past the least-used values because their
	// nodes had no room (the number of values tried: the task went to any
	// node, labelled or not).
	Spread        string
	SpreadWidened int8
}

// String is the compact one-line form, e.g.
// "examined 9/100 nodes, 8 feasible; filtered insufficient-cpu=1; top n3=91.2 n7=90.0".
func (e Explanation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "examined %d/%d nodes, %d feasible", e.Examined, e.Nodes, e.Feasible)
	sep := "; filtered "
	for r := Reason(1); r < NumReasons; r++ {
		if e.Filtered[r] > 0 {
			b.WriteString(sep)
			b.WriteString(r.String() + "=" + strconv.Itoa(int(e.Filtered[r])))
			sep = " "
		}
	}
	if e.NTop > 0 {
		b.WriteString("; top")
		for _, t := range e.Top[:e.NTop] {
			fmt.Fprintf(&b, " %s=%.1f", t.Node, t.Score)
		}
	}
	if e.Constraints != "" {
		b.WriteString("; constraints " + e.Constraints)
	}
	if e.Spread != "" {
		b.WriteString("; spread over " + e.Spread)
		if e.SpreadWidened > 0 {
			fmt.Fprintf(&b, ": the least-used values had no room (widened %d×)", e.SpreadWidened)
		} else {
			b.WriteString(": a least-used value")
		}
	}
	if e.Preempted > 0 {
		fmt.Fprintf(&b, "; placed by preempting %d lower-priority task(s)", e.Preempted)
	}
	if e.Cached {
		b.WriteString(" (same class as an earlier task)")
	}
	return b.String()
}

// FilteredBy returns the filtered counts by reason name.
func (e Explanation) FilteredBy() map[string]int {
	m := map[string]int{}
	for r := Reason(1); r < NumReasons; r++ {
		if e.Filtered[r] > 0 {
			m[r.String()] = int(e.Filtered[r])
		}
	}
	return m
}

// MarshalJSON writes the explanation with reasons by name.
func (e Explanation) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Nodes     int            `json:"nodes"`
		Examined  int            `json:"examined"`
		Feasible  int            `json:"feasible"`
		Filtered  map[string]int `json:"filtered,omitempty"`
		Top       []NodeScore    `json:"top,omitempty"`
		Preempted int            `json:"preempted,omitempty"`
		Cached    bool           `json:"cached,omitempty"`
		Cons      string         `json:"constraints,omitempty"`
		Spread    string         `json:"spread,omitempty"`
		Widened   int8           `json:"spread_widened,omitempty"`
	}{e.Nodes, e.Examined, e.Feasible, e.FilteredBy(), e.Top[:e.NTop], e.Preempted, e.Cached, e.Constraints, e.Spread, e.SpreadWidened})
}

// Place packs pending tasks onto the nodes of view. It is Place on a State
// built from view; see State.Place.
func Place(view ClusterView, pending []Task, opts Options) (Plan, error) {
	s, err := NewState(view)
	if err != nil {
		return Plan{}, err
	}
	return s.Place(pending, opts)
}

// classKey identifies an equivalence class: tasks that every filter and
// scorer treats alike.
type classKey struct {
	prio   Priority
	req    Resources
	lim    Resources
	usage  [NumResources]Dist
	cons   string
	job    string
	maxPer int
	avoid  string
	spread string
	ports  string
}

func classOf(t *Task) classKey {
	k := classKey{prio: t.Priority, req: t.Request, lim: t.Limit, usage: t.Usage, maxPer: t.MaxPerNode, avoid: t.Avoid}
	if len(t.Constraints) > 0 {
		k.cons = constraintKey(t.Constraints)
	}
	if t.MaxPerNode > 0 || t.Spread != "" {
		k.job = t.Job
	}
	k.spread = t.Spread
	k.ports = portKey(t.Ports)
	return k
}

type failMemo struct {
	epoch int64
	why   Explanation
	msg   string
}

// Place packs pending tasks and commits the result into s (placed tasks now
// count against their nodes; preempted ones are removed). Tasks go, by
// default, highest priority first and largest first. For each task the
// pipeline walks nodes from least to most free capacity, filters them
// (health, constraints, spread, requests, prod limits, overload risk) until
// Options.Candidates feasible nodes are found, scores those 0-100 (best fit
// and stranding avoidance) and picks the best; ties go to a seeded hash.
// A prod task that fits nowhere may preempt lower-priority tasks (see
// preempt.go). It returns an error only for invalid options; an invalid task
// is reported in Plan.Unplaced with the field to fix.
func (s *State) Place(pending []Task, opts Options) (Plan, error) {
	if err := opts.normalize(); err != nil {
		return Plan{}, err
	}
	c := &placeCtx{s: s, risk: opts.riskParams(), fill: opts.fill}
	var queue []Task
	if opts.KeepOrder {
		queue = slices.Clone(pending)
	} else {
		queue = s.Order(pending)
	}
	var plan Plan
	plan.Placements = make([]Placement, 0, len(queue))
	failed := map[classKey]failMemo{}
	cands := make([]int32, 0, opts.Candidates)
	var preemptedBy map[string]string
	for q := 0; q < len(queue); q++ {
		t := &queue[q]
		if err := t.Validate(); err != nil {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.ID, Reason: err.Error()})
			continue
		}
		if on, ok := s.TaskNode(t.ID); ok {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.ID, Reason: "already placed on " + on + "; remove it first to move it"})
			continue
		}
		key := classOf(t)
		if m, ok := failed[key]; ok && m.epoch == s.epoch {
			why := m.why
			why.Cached = true
			msg := m.msg
			if by, ok := preemptedBy[t.ID]; ok {
				msg = "preempted by " + by + "; " + msg
			}
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.ID, Reason: msg, Why: why})
			continue
		}
		seq := uint64(q)
		c.cur = nil
		n, why := c.selectSpread(t, opts, seq, &cands)
		if n >= 0 {
			s.choosePorts(t, n)
			s.commit(*t, n)
			plan.Placements = append(plan.Placements, Placement{TaskID: t.ID, Node: s.nodes[n].Name, Ports: t.PortMap(), Score: why.Top[0].Score, Why: why})
			continue
		}
		if t.Priority.IsProd() && !opts.NoPreemption {
			if n, victims := c.preempt(t); n >= 0 {
				for _, v := range victims {
					vt := s.tasks[v].Task
					plan.Preemptions = append(plan.Preemptions, Preemption{
						TaskID: vt.ID, Node: s.nodes[n].Name, For: t.ID,
						Reason: fmt.Sprintf("preempted by %s task %s: no node had room for it (%s)", t.Priority, t.ID, why),
					})
					s.uncommit(v)
					queue = append(queue, vt)
					if preemptedBy == nil {
						preemptedBy = map[string]string{}
					}
					preemptedBy[vt.ID] = t.ID
				}
				s.choosePorts(t, n)
				s.commit(*t, n)
				why.Top = [3]NodeScore{{Node: s.nodes[n].Name, Score: c.score(t, n)}}
				why.NTop = 1
				why.Preempted = len(victims)
				plan.Placements = append(plan.Placements, Placement{TaskID: t.ID, Node: s.nodes[n].Name, Ports: t.PortMap(), Score: why.Top[0].Score, Why: why})
				continue
			}
		}
		msg := unplacedReason(why)
		failed[key] = failMemo{s.epoch, why, msg}
		if by, ok := preemptedBy[t.ID]; ok {
			msg = "preempted by " + by + "; " + msg
		}
		plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.ID, Reason: msg, Why: why})
	}
	return plan, nil
}

// Order returns pending tasks in the order Place takes them by default:
// highest priority first; within a priority, largest first, with tasks heavy
// in CPU and tasks heavy in memory interleaved so that the placed mix keeps
// the batch's overall CPU:memory ratio. Packing one kind first fills nodes
// in one resource and strands the other; interleaving lets best fit pair
// them (on the Google 2011 trace's initial state, about 1% above the lower
// bound instead of about 5%).
func (s *State) Order(pending []Task) []Task {
	scale := s.idx.scale
	if scale == (Resources{}) {
		scale = Resources{1, 1}
	}
	out := slices.Clone(pending)
	slices.SortStableFunc(out, func(a, b Task) int {
		if a.Priority != b.Priority {
			return cmp.Compare(b.Priority, a.Priority)
		}
		return cmp.Compare(size(&b, scale), size(&a, scale))
	})
	for lo := 0; lo < len(out); {
		hi := lo
		for hi < len(out) && out[hi].Priority == out[lo].Priority {
			hi++
		}
		interleave(out[lo:hi], scale)
		lo = hi
	}
	return out
}

// interleave reorders tasks (sorted largest first) in place: it merges the
// CPU-heavy and the memory-heavy ones, each kept largest first, taking next
// from whichever kind keeps the running memory:CPU share closest to the
// total's.
func interleave(ts []Task, scale Resources) {
	var mem, cpu []Task
	var tot Resources
	for i := range ts {
		sh := Resources{ts[i].Request[CPU] / scale[CPU], ts[i].Request[Memory] / scale[Memory]}
		tot = tot.Add(sh)
		if sh[Memory] > sh[CPU] {
			mem = append(mem, ts[i])
		} else {
			cpu = append(cpu, ts[i])
		}
	}
	if len(mem) == 0 || len(cpu) == 0 || tot[CPU] == 0 {
		return
	}
	ratio := tot[Memory] / tot[CPU]
	var sum Resources
	i, j := 0, 0
	for k := range ts {
		if j >= len(cpu) || (i < len(mem) && sum[Memory] < ratio*sum[CPU]) {
			ts[k] = mem[i]
			i++
		} else {
			ts[k] = cpu[j]
			j++
		}
		sum = sum.Add(Resources{ts[k].Request[CPU] / scale[CPU], ts[k].Request[Memory] / scale[Memory]})
	}
}

// size is a task's dominant share of the largest node, for ordering.
func size(t *Task, scale Resources) float64 {
	m := 0.0
	for r := range scale {
		if scale[r] > 0 {
			m = max(m, t.Request[r]/scale[r])
		}
	}
	return m
}

func unplacedReason(why Explanation) string {
	if why.Nodes == 0 {
		return "no nodes in the cluster"
	}
	return "no node fits: " + why.String()
}

// boundaryScan is how many nodes of a crowded boundary bucket the first
// pass examines.
const boundaryScan = 16

// mix is a splitmix64 step: a seeded, deterministic hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// selectNode runs filter → score → select for one task. It returns -1 and a
// whole-cluster explanation when no node is feasible.
func (c *placeCtx) selectNode(t *Task, opts Options, seq uint64, buf *[]int32) (int32, Explanation) {
	s := c.s
	var why Explanation
	why.Nodes = s.live
	k := opts.Candidates
	cands := (*buf)[:0]
	w := Resources{t.Request[CPU] / s.idx.scale[CPU], t.Request[Memory] / s.idx.scale[Memory]}
	// Boundary buckets mix nodes with and without room; a crowded one is
	// sampled (boundaryScan nodes) on the first pass and finished only if
	// the whole walk finds nothing, so the search stays complete.
	type rest struct {
		nodes       []int32
		start, done int
	}
	var later []rest
	if c.cur != t {
		c.forTask(t)
	}
	scan := func(nodes []int32, start, from, to int) bool {
		l := len(nodes)
		for i := from; i < to; i++ {
			n := nodes[(start+i)%l]
			why.Examined++
			if c.dense != nil && int(n) < len(c.dense) && c.dense[n] >= c.maxPer {
				// Holds its job's share already (see placeCtx.dense).
				why.Filtered[ReasonSpread]++
				continue
			}
			if r := c.filter(t, n); r != ReasonNone {
				why.Filtered[r]++
				continue
			}
			cands = append(cands, n)
			if len(cands) >= k {
				return false
			}
		}
		return true
	}
	s.idx.walk(t.Request, w, func(nodes []int32, boundary bool) bool {
		l := len(nodes)
		start := 0
		if l > k {
			// Sample where to start in a large bucket so that equal
			// nodes share the work, reproducibly for a seed.
			start = int(mix(opts.Seed^mix(seq)) % uint64(l))
		}
		to := l
		if boundary && l > boundaryScan {
			to = boundaryScan
			later = append(later, rest{nodes, start, to})
		}
		if !scan(nodes, start, 0, to) {
			return false
		}
		return len(cands) == 0 || why.Examined < 4*k
	})
	for _, r := range later {
		if len(cands) > 0 {
			break
		}
		scan(r.nodes, r.start, r.done, len(r.nodes))
	}
	*buf = cands
	why.Feasible = len(cands)
	if len(cands) == 0 {
		if c.quiet {
			return -1, why
		}
		return -1, c.explainAll(t)
	}
	if why.Filtered[ReasonConstraint] > 0 {
		why.Constraints = constraintKey(t.Constraints)
	}
	best, bestScore, bestTie := int32(-1), -1.0, uint64(0)
	for _, n := range cands {
		sc := c.score(t, n)
		tie := mix(opts.Seed ^ uint64(n)*0x9e3779b97f4a7c15)
		if sc > bestScore || (sc == bestScore && tie < bestTie) {
			best, bestScore, bestTie = n, sc, tie
		}
		why.addTop(s.nodes[n].Name, sc)
	}
	return best, why
}

func (e *Explanation) addTop(node string, score float64) {
	ns := NodeScore{Node: node, Score: score}
	i := e.NTop
	if i < len(e.Top) {
		e.NTop++
	} else if score <= e.Top[i-1].Score {
		return
	} else {
		i--
	}
	for i > 0 && e.Top[i-1].Score < score {
		e.Top[i] = e.Top[i-1]
		i--
	}
	e.Top[i] = ns
}

// explainAll filters every node, so an unplaced task can say exactly how
// many nodes were ruled out for which reason.
func (c *placeCtx) explainAll(t *Task) Explanation {
	var why Explanation
	why.Nodes = c.s.live
	for n := range c.s.nodes {
		if c.s.nodes[n].removed {
			continue
		}
		why.Examined++
		if r := c.filter(t, int32(n)); r != ReasonNone {
			why.Filtered[r]++
		} else {
			why.Feasible++
		}
	}
	if why.Filtered[ReasonConstraint] > 0 {
		why.Constraints = constraintKey(t.Constraints)
	}
	return why
}
