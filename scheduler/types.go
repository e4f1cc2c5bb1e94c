package scheduler

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Resource indexes a dimension of Resources.
type Resource int

// The resources the scheduler packs.
const (
	CPU    Resource = iota // cores (or any consistent unit, e.g. normalized)
	Memory                 // bytes (or any consistent unit)
	NumResources
)

func (r Resource) String() string {
	switch r {
	case CPU:
		return "cpu"
	case Memory:
		return "memory"
	}
	return fmt.Sprintf("resource(%d)", int(r))
}

// Resources is an amount of every resource. Units are the caller's, but they
// must be the same for nodes and tasks.
type Resources [NumResources]float64

// Add returns r+o.
func (r Resources) Add(o Resources) Resources {
	for i := range r {
		r[i] += o[i]
	}
	return r
}

// Sub returns r-o.
func (r Resources) Sub(o Resources) Resources {
	for i := range r {
		r[i] -= o[i]
	}
	return r
}

// Fits reports whether r ≤ capacity in every resource (with a tiny tolerance
// for float rounding).
func (r Resources) Fits(capacity Resources) bool {
	for i := range r {
		if r[i] > capacity[i]*(1+1e-12)+1e-12 {
			return false
		}
	}
	return true
}

// Priority orders tasks; higher wins. Only prod tasks preempt.
type Priority int

// The three priority bands of the job spec.
const (
	BestEffort Priority = 0
	Batch      Priority = 100
	Prod       Priority = 200
)

// IsProd reports whether p is in the prod band (limits must fit capacity and
// the task may preempt).
func (p Priority) IsProd() bool { return p >= Prod }

func (p Priority) String() string {
	switch {
	case p >= Prod:
		return "prod"
	case p >= Batch:
		return "batch"
	}
	return "best-effort"
}

// ParsePriority reads "prod", "batch" or "best-effort".
func ParsePriority(s string) (Priority, error) {
	switch s {
	case "prod":
		return Prod, nil
	case "batch":
		return Batch, nil
	case "best-effort", "besteffort", "be":
		return BestEffort, nil
	}
	return 0, fmt.Errorf("priority %q: use prod, batch or best-effort", s)
}

// Dist is the predicted distribution of one task's usage of one resource over
// time: its mean and standard deviation. The zero Dist means "no prediction":
// the scheduler then takes the request as a certain usage (mean = request,
// stddev = 0).
type Dist struct {
	Mean   float64
	StdDev float64
}

// Op is a constraint operator.
type Op int

// Constraint operators on node labels.
const (
	OpEqual    Op = iota // label == value
	OpNotEqual           // label != value (a missing label counts as not equal)
	OpExists             // label is set
	OpIn                 // label is one of Values
)

// Constraint restricts the nodes a task may run on by their labels.
type Constraint struct {
	Label string
	Op    Op
	Value string
	// Values are OpIn's set.
	Values []string
}

// Holds reports whether a node with these labels satisfies c.
func (c *Constraint) Holds(labels map[string]string) bool {
	v, ok := labels[c.Label]
	return c.holdsFor(v, ok)
}

// holdsFor reports whether c holds for a node whose label c.Label is v (ok:
// the node has the label).
func (c *Constraint) holdsFor(v string, ok bool) bool {
	switch c.Op {
	case OpEqual:
		return ok && v == c.Value
	case OpNotEqual:
		return !ok || v != c.Value
	case OpExists:
		return ok
	case OpIn:
		return ok && slices.Contains(c.Values, v)
	}
	return false
}

// Equal reports whether c and o are the same rule.
func (c Constraint) Equal(o Constraint) bool {
	return c.Label == o.Label && c.Op == o.Op && c.Value == o.Value && slices.Equal(c.Values, o.Values)
}

func (c Constraint) String() string {
	switch c.Op {
	case OpNotEqual:
		return c.Label + "!=" + c.Value
	case OpExists:
		return c.Label + " exists"
	case OpIn:
		return c.Label + " in (" + strings.Join(c.Values, ",") + ")"
	}
	return c.Label + "=" + c.Value
}

// Task is one replica to place. Request is what the scheduler packs with (the
// predicted need); Limit is what the agent enforces (zero: no limit); Usage is
// the predicted distribution per resource.
type Task struct {
	ID       string
	Job      string // namespace/name; replicas of one job share it
	Priority Priority
	Request  Resources
	Limit    Resources
	Usage    [NumResources]Dist
	// Constraints must all hold on the chosen node.
	Constraints []Constraint
	// MaxPerNode caps how many tasks of Job may share one node (0: no cap).
	// A six-replica service with MaxPerNode 1 spreads over six machines.
	MaxPerNode int
	// Avoid names a node the task must not go to (for example the node
	// that just evicted it); "" = none.
	Avoid string
	// Spread names a node label whose values the replicas of Job spread
	// over: a task goes to a node whose value has the fewest of them, and
	// to the next fewest only when those nodes have no room (nodes without
	// the label last). "" = none.
	Spread string
	// Ports are the named ports the task holds on its node (ports.go).
	Ports []Port
}

// sameRules reports whether a and b have the same constraints and spread.
func sameRules(a, b *Task) bool {
	return a.Spread == b.Spread && slices.EqualFunc(a.Constraints, b.Constraints, Constraint.Equal)
}

// dist returns the usage distribution to use for resource r.
func (t *Task) dist(r Resource) Dist {
	d := t.Usage[r]
	if d.Mean == 0 && d.StdDev == 0 {
		return Dist{Mean: t.Request[r]}
	}
	return d
}

// Validate reports what is wrong with the task, naming the field to fix.
func (t *Task) Validate() error {
	if t.ID == "" {
		return fmt.Errorf("%w: task has no ID", ErrInvalid)
	}
	for r := Resource(0); r < NumResources; r++ {
		for _, v := range []struct {
			name string
			x    float64
		}{{"request", t.Request[r]}, {"limit", t.Limit[r]}, {"usage mean", t.Usage[r].Mean}, {"usage stddev", t.Usage[r].StdDev}} {
			if v.x < 0 || math.IsNaN(v.x) || math.IsInf(v.x, 0) {
				return fmt.Errorf("%w: task %s: %s %s is %v; it must be a finite number ≥ 0", ErrInvalid, t.ID, r, v.name, v.x)
			}
		}
		if t.Limit[r] > 0 && t.Limit[r] < t.Request[r] {
			return fmt.Errorf("%w: task %s: %s limit %v is below its request %v; raise the limit or lower the request", ErrInvalid, t.ID, r, t.Limit[r], t.Request[r])
		}
	}
	for i := range t.Constraints {
		k := &t.Constraints[i]
		switch {
		case k.Label == "":
			return fmt.Errorf("%w: task %s: constraint %d has no label", ErrInvalid, t.ID, i)
		case k.Op < OpEqual || k.Op > OpIn:
			return fmt.Errorf("%w: task %s: constraint %d has an unknown operator %d", ErrInvalid, t.ID, i, k.Op)
		case k.Op == OpIn && len(k.Values) == 0:
			return fmt.Errorf("%w: task %s: constraint %d (%s in ...) has no values", ErrInvalid, t.ID, i, k.Label)
		}
	}
	if err := t.validatePorts(); err != nil {
		return err
	}
	if t.MaxPerNode < 0 {
		return fmt.Errorf("%w: task %s: max per node %d must be ≥ 0", ErrInvalid, t.ID, t.MaxPerNode)
	}
	return nil
}

// Node is a machine as the scheduler sees it.
type Node struct {
	Name     string
	Capacity Resources
	Labels   map[string]string
	// Cordoned nodes take no new tasks; Draining nodes take none and are being
	// emptied; Down nodes are failed (no heartbeat).
	Cordoned bool
	Draining bool
	Down     bool
	// PortRange is where dynamic ports come from (ports.go).
	PortRange PortRange
}

// Validate reports what is wrong with the node.
func (n *Node) Validate() error {
	if n.Name == "" {
		return fmt.Errorf("%w: node has no name", ErrInvalid)
	}
	for r := Resource(0); r < NumResources; r++ {
		if !(n.Capacity[r] > 0) || math.IsInf(n.Capacity[r], 0) {
			return fmt.Errorf("%w: node %s: %s capacity is %v; it must be a finite number > 0", ErrInvalid, n.Name, r, n.Capacity[r])
		}
	}
	return nil
}

// Assignment is a task running (or placed) on a node.
type Assignment struct {
	Task Task
	Node string
}

// ClusterView is the snapshot Place reads: the nodes and what already runs on
// them.
type ClusterView struct {
	Nodes   []Node
	Running []Assignment
}

// ErrInvalid marks bad input (a node or task that cannot be scheduled as
// given). Check with errors.Is.
var ErrInvalid = errors.New("invalid scheduler input")
