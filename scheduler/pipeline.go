package scheduler

import "math"

// Reason says why a node was filtered out for a task. ReasonNone means the
// node passed every filter.
type Reason uint8

// Filter reasons, in the order the pipeline checks them.
const (
	ReasonNone        Reason = iota
	ReasonDown               // node failed (no heartbeat)
	ReasonCordoned           // node takes no new tasks
	ReasonDraining           // node is being emptied
	ReasonCPU                // requested CPU would exceed capacity
	ReasonMemory             // requested memory would exceed capacity
	ReasonProdLimits         // prod limits would exceed capacity
	ReasonConstraint         // a label constraint does not hold
	ReasonSpread             // the job already has MaxPerNode tasks there
	ReasonRisk               // overload probability would exceed ε
	ReasonAvoid              // the task avoids this node (it evicted the task)
	ReasonSpreadLabel        // the node's value of the spread label holds more of the job's tasks than another value's
	ReasonPorts              // a static port is taken there, or its port range has too few free ports
	NumReasons
)

var reasonNames = [NumReasons]string{"ok", "down", "cordoned", "draining", "insufficient-cpu", "insufficient-memory", "prod-limits", "constraint", "spread", "overload-risk", "avoided", "spread-label", "ports"}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// A Filter is one feasibility rule of the pipeline. It returns ReasonNone
// when task t may go to node n. Filters read the state and never change it.
type Filter interface {
	Name() string
	Filter(c *placeCtx, t *Task, n int32) Reason
}

// A Scorer ranks a feasible node for a task from 0 (worst) to 100 (best).
type Scorer interface {
	Name() string
	Score(c *placeCtx, t *Task, n int32) float64
}

// placeCtx is what the pipeline's rules see during one Place call, plus
// what is worked out once per task rather than once per node.
type placeCtx struct {
	s    *State
	risk riskParams
	// For the task being placed (see forTask):
	cur *Task
	job int32 // interned job, for spread
	// dense is the job's per-node counts when it keeps them (State.jobDense)
	// and spread applies: the walk skips nodes already holding the
	// job's share before running the other filters.
	dense  []int32
	maxPer int32
	cons   []int8 // constraint results per node, shared by the class
	fill   bool   // Options.fill
	// Spread over a label (spread.go): the task's interned job, whether
	// the spread-label filter is on and the most tasks a value may hold.
	sjob      int32
	spreadOn  bool
	spreadMax int32
	levels    []int32
	// quiet: a search that finds nothing returns without explaining
	// itself over every node (a spread level that is tried before others).
	quiet bool
}

// forTask prepares the per-task values for t.
func (c *placeCtx) forTask(t *Task) {
	c.cur = t
	c.cons = nil
	c.dense = nil
	if t.MaxPerNode > 0 && t.Job != "" {
		c.job = c.s.jobID(t.Job)
		c.dense, c.maxPer = c.s.jobDense[c.job], int32(t.MaxPerNode)
	}
	if t.Spread != "" && t.Job != "" {
		c.sjob = c.s.jobID(t.Job)
	}
	if len(t.Constraints) > 0 {
		key := constraintKey(t.Constraints)
		c.cons = c.s.consCache[key]
		if c.cons == nil {
			c.cons = make([]int8, len(c.s.nodes))
			c.s.consCache[key] = c.cons
		}
	}
}

// The default pipeline. Cheap rules that rule out most nodes come first, so
// that the costlier ones (a map lookup for spread, the risk bound) see few.
var (
	filters = []Filter{nodeHealth{}, avoidFilter{}, resourceFit{}, prodLimitFit{}, constraintFilter{}, portsFilter{}, spreadFilter{}, overloadRisk{}}
	scorers = []weighted{{bestFit{}, 0.75}, {stranding{}, 0.25}}
)

type weighted struct {
	Scorer
	w float64
}

// nodeHealth filters nodes that are down, cordoned or draining.
type nodeHealth struct{}

var _ Filter = nodeHealth{}

func (nodeHealth) Name() string { return "node-health" }
func (nodeHealth) Filter(c *placeCtx, _ *Task, n int32) Reason {
	ns := &c.s.nodes[n]
	switch {
	case ns.Down:
		return ReasonDown
	case ns.Cordoned:
		return ReasonCordoned
	case ns.Draining:
		return ReasonDraining
	}
	return ReasonNone
}

// avoidFilter keeps a task off the one node it avoids (Task.Avoid).
type avoidFilter struct{}

var _ Filter = avoidFilter{}

func (avoidFilter) Name() string { return "avoid" }
func (avoidFilter) Filter(c *placeCtx, t *Task, n int32) Reason {
	if t.Avoid != "" && c.s.nodes[n].Name == t.Avoid {
		return ReasonAvoid
	}
	return ReasonNone
}

// constraintFilter checks label constraints, caching the answer per
// constraint set and node (an equivalence class of tasks shares it).
type constraintFilter struct{}

var _ Filter = constraintFilter{}

func (constraintFilter) Name() string { return "constraints" }
func (constraintFilter) Filter(c *placeCtx, t *Task, n int32) Reason {
	if len(t.Constraints) == 0 {
		return ReasonNone
	}
	if c.cur != t {
		c.forTask(t)
	}
	cache := c.cons
	if cache[n] == 0 {
		cache[n] = 1
		labels := c.s.nodes[n].Labels
		for i := range t.Constraints {
			if !t.Constraints[i].Holds(labels) {
				cache[n] = 2
				break
			}
		}
	}
	if cache[n] == 2 {
		return ReasonConstraint
	}
	return ReasonNone
}

func constraintKey(cs []Constraint) string {
	if len(cs) == 1 {
		return cs[0].String()
	}
	k := ""
	for _, c := range cs {
		if k != "" {
			k += ", "
		}
		k += c.String()
	}
	return k
}

// spreadFilter keeps replicas of one job on distinct machines (up to
// MaxPerNode per machine) and, while a spread level is tried, on the values
// of the spread label that level allows (spreadLabel, spread.go): one
// stage, so that tasks without either pay one call.
type spreadFilter struct{}

var _ Filter = spreadFilter{}

func (spreadFilter) Name() string { return "spread" }
func (spreadFilter) Filter(c *placeCtx, t *Task, n int32) Reason {
	if c.spreadOn {
		if r := (spreadLabel{}).Filter(c, t, n); r != ReasonNone {
			return r
		}
	}
	if t.MaxPerNode <= 0 || t.Job == "" {
		return ReasonNone
	}
	if c.cur != t {
		c.forTask(t)
	}
	if int(c.s.jobOn(c.job, n)) >= t.MaxPerNode {
		return ReasonSpread
	}
	return ReasonNone
}

// resourceFit packs on requests: Σ requests ≤ capacity.
type resourceFit struct{}

var _ Filter = resourceFit{}

func (resourceFit) Name() string { return "resources" }
func (resourceFit) Filter(c *placeCtx, t *Task, n int32) Reason {
	ns := &c.s.nodes[n]
	if !fitsOne(ns.alloc[CPU]+t.Request[CPU], ns.Capacity[CPU]) {
		return ReasonCPU
	}
	if !fitsOne(ns.alloc[Memory]+t.Request[Memory], ns.Capacity[Memory]) {
		return ReasonMemory
	}
	return ReasonNone
}

func fitsOne(x, c float64) bool { return x <= c*(1+1e-12)+1e-12 }

// prodLimitFit keeps Σ limits of prod tasks within capacity, so prod tasks
// are never oversubscribed against each other.
type prodLimitFit struct{}

var _ Filter = prodLimitFit{}

func (prodLimitFit) Name() string { return "prod-limits" }
func (prodLimitFit) Filter(c *placeCtx, t *Task, n int32) Reason {
	if !t.Priority.IsProd() {
		return ReasonNone
	}
	ns := &c.s.nodes[n]
	if !ns.prodLimit.Add(effLimit(t)).Fits(ns.Capacity) {
		return ReasonProdLimits
	}
	return ReasonNone
}

// overloadRisk admits the task only while the node's estimated probability of
// overload stays ≤ ε in every resource (see RiskModel).
type overloadRisk struct{}

var _ Filter = overloadRisk{}

func (overloadRisk) Name() string { return "overload-risk" }
func (overloadRisk) Filter(c *placeCtx, t *Task, n int32) Reason {
	ns := &c.s.nodes[n]
	if len(ns.tasks) == 0 {
		// Alone, a task cannot overload its node: what it uses is capped at
		// its limit (a task without one at the node). Without this, a task
		// with a wide predicted spread would fit no node at all.
		return ReasonNone
	}
	for r := Resource(0); r < NumResources; r++ {
		d := t.dist(r)
		v := ns.v[r] + d.StdDev*d.StdDev
		b := max(ns.bmax[r], taskCap(t, ns, r)-d.Mean)
		if !fitsOne(ns.mu[r]+d.Mean+c.risk.marginFor(r, v, ns.sd[r]+d.StdDev, b), ns.Capacity[r]) {
			return ReasonRisk
		}
	}
	return ReasonNone
}

// bestFit prefers the node left fullest (on requests) after placement: the
// mean over resources of the requested share, ×100.
type bestFit struct{}

var _ Scorer = bestFit{}

func (bestFit) Name() string { return "best-fit" }
func (bestFit) Score(c *placeCtx, t *Task, n int32) float64 {
	ns := &c.s.nodes[n]
	sum := 0.0
	for r := Resource(0); r < NumResources; r++ {
		sum += (ns.alloc[r] + t.Request[r]) / ns.Capacity[r]
	}
	return 100 * math.Min(1, sum/float64(NumResources))
}

// stranding is Borg's hybrid term against stranded resources: it marks down
// a node that the placement leaves nearly full in one resource while the
// other still has room, since that room can then hardly be used. The
// stranded share is (f_max − f_min)·(1 − f_min)⁴ for the free fractions
// f_min ≤ f_max after placement: zero on an empty or evenly used node,
// close to f_max − f_min on a node about to fill up in one resource.
type stranding struct{}

var _ Scorer = stranding{}

func (stranding) Name() string { return "stranding" }
func (stranding) Score(c *placeCtx, t *Task, n int32) float64 {
	ns := &c.s.nodes[n]
	fc := max(0, 1-(ns.alloc[CPU]+t.Request[CPU])/ns.Capacity[CPU])
	fm := max(0, 1-(ns.alloc[Memory]+t.Request[Memory])/ns.Capacity[Memory])
	lo, hi := min(fc, fm), max(fc, fm)
	u := 1 - lo
	u *= u
	return 100 * (1 - (hi-lo)*u*u)
}

// filter runs the pipeline's filters and returns the first failing reason.
func (c *placeCtx) filter(t *Task, n int32) Reason {
	for _, f := range filters {
		if r := f.Filter(c, t, n); r != ReasonNone {
			return r
		}
	}
	return ReasonNone
}

// score returns the weighted 0-100 score of a feasible node.
func (c *placeCtx) score(t *Task, n int32) float64 {
	if c.fill {
		return bestFit{}.Score(c, t, n)
	}
	var s, w float64
	for _, sc := range scorers {
		s += sc.w * sc.Score(c, t, n)
		w += sc.w
	}
	return s / w
}
