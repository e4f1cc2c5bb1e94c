package controller

import (
	"slices"
	"strings"
	"time"

	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// The read side: copies of the state for the API, safe to keep.

// JobView is a job with its derived state.
type JobView struct {
	Job    Job
	State  JobState
	Counts map[string]int32 // tasks by state name
	// NextRunAt is when a cron job's next run is due (zero otherwise).
	NextRunAt time.Time
}

func (c *Controller) jobView(e *jobEntry) JobView {
	v := JobView{Job: e.job.clone()}
	v.State, v.Counts = c.jobState(e)
	if e.isCron() && !e.job.StopRequested {
		v.NextRunAt = nextRun(&e.job)
	}
	return v
}

// Job returns one job.
func (c *Controller) Job(id string) (JobView, bool) {
	e := c.jobs[id]
	if e == nil {
		return JobView{}, false
	}
	return c.jobView(e), true
}

// JobSpec returns a job's spec (without deriving its state, as Job does).
func (c *Controller) JobSpec(id string) (Spec, bool) {
	e := c.jobs[id]
	if e == nil {
		return Spec{}, false
	}
	return e.job.Spec.clone(), true
}

// Jobs returns the jobs match accepts (nil: all), oldest first.
func (c *Controller) Jobs(match func(*Job) bool) []JobView {
	var out []JobView
	for _, e := range c.sortedJobs() {
		if match == nil || match(&e.job) {
			out = append(out, c.jobView(e))
		}
	}
	return out
}

// JobTasks returns a job's tasks by index, each with why it waits (if it
// does) in its Reason.
func (c *Controller) JobTasks(id string) ([]Task, bool) {
	e := c.jobs[id]
	if e == nil {
		return nil, false
	}
	out := make([]Task, len(e.tasks))
	for i := range e.tasks {
		out[i] = c.taskView(ref{e, int32(i)})
	}
	return out, true
}

// JobTasksFrom returns, by index, up to limit (0: no limit) of a job's
// tasks from index from on that keep accepts (nil: all), as JobTasks does,
// and the index to continue from (-1: none left).
func (c *Controller) JobTasksFrom(id string, from int32, limit int, keep func(*Task) bool) ([]Task, int32, bool) {
	e := c.jobs[id]
	if e == nil {
		return nil, -1, false
	}
	var out []Task
	for i := max(from, 0); int(i) < len(e.tasks); i++ {
		if keep != nil && !keep(e.tasks[i]) {
			continue
		}
		if limit > 0 && len(out) == limit {
			return out, i, true
		}
		out = append(out, c.taskView(ref{e, i}))
	}
	return out, -1, true
}

// Task returns one task (see JobTasks).
func (c *Controller) Task(id string) (Task, bool) {
	r, ok := c.lookup(id)
	if !ok {
		return Task{}, false
	}
	return c.taskView(r), true
}

// taskView is the task as clients see it: waiting tasks say why; a running
// task whose recommended sizes were not applied says why.
func (c *Controller) taskView(r ref) Task {
	t := r.task().clone()
	if t.State.Terminal() {
		return t
	}
	why := r.meta().wait
	if (t.State == Pending || t.State == Lost) && c.noNodes != "" && c.waiting(r) {
		why = c.noNodes
	}
	if why != "" {
		if t.State == Pending && t.Generation == 0 && t.Reason == "waiting for a node" {
			t.Reason = "waiting for a node: " + why
		} else {
			t.Reason = strings.TrimSuffix(t.Reason, ".") + "; " + why
		}
	}
	return t
}

// TaskSizing is what the controller knows of a task's sizing: the sizes in
// effect, the predicted usage distribution they were packed with, where the
// starting sizes came from, and the sizing loop's last decision.
type TaskSizing struct {
	Sizes    Sizes
	Dist     [scheduler.NumResources]scheduler.Dist
	Source   string
	Decision string
	Key      predictor.TaskKey
	Spec     Spec
}

// Sizing returns a task's sizing state.
func (c *Controller) Sizing(id string) (TaskSizing, bool) {
	r, ok := c.lookup(id)
	if !ok {
		return TaskSizing{}, false
	}
	m := r.meta()
	return TaskSizing{Sizes: r.task().Sizes, Dist: m.dist, Source: m.sized, Decision: m.decision, Key: key(r), Spec: r.job.job.Spec.clone()}, true
}

// StartSizes are the sizes a task of the job would start with now (for a
// task that has not run: what it will be placed with).
func (c *Controller) StartSizes(id string, now time.Time) (Sizing, bool) {
	r, ok := c.lookup(id)
	if !ok {
		return Sizing{}, false
	}
	return c.startSizes(r, now), true
}

// RunningTask names a running task for the usage feeder.
type RunningTask struct {
	ID   string
	Key  predictor.TaskKey
	Node string
}

// Running lists the running tasks not being stopped, in job then index
// order: the tasks whose usage the right-sizing loop reads.
func (c *Controller) Running() []RunningTask {
	var out []RunningTask
	for _, e := range c.sortedJobs() {
		if e.job.StopRequested {
			continue
		}
		for i, t := range e.tasks {
			if t.State == Running && t.Desired == DesiredRun {
				r := ref{e, int32(i)}
				out = append(out, RunningTask{ID: r.id(), Key: key(r), Node: t.Node})
			}
		}
	}
	return out
}

// NodeView is a node with what the controller knows of it beyond its
// record.
type NodeView struct {
	Node     Node
	LastSeen time.Time
	Usage    Usage
	// Requested are the sums of the requests of the tasks placed there;
	// Tasks counts them.
	CPURequested    float64
	MemoryRequested int64
	Tasks           int
}

func (c *Controller) nodeView(ne *nodeEntry) NodeView {
	v := NodeView{Node: ne.node.clone(), LastSeen: ne.lastSeen, Usage: ne.usage}
	for r := range ne.tasks {
		t := r.task()
		if t.State.Terminal() {
			continue
		}
		v.CPURequested += t.CPURequest
		v.MemoryRequested += t.MemoryRequest
		v.Tasks++
	}
	return v
}

// Nodes lists the nodes by name.
func (c *Controller) Nodes() []NodeView {
	out := make([]NodeView, 0, len(c.nodes))
	for _, name := range sortedNames(c.nodes) {
		out = append(out, c.nodeView(c.nodes[name]))
	}
	return out
}

// NodesAfter lists, by name, up to limit (0: no limit) nodes whose names
// sort after after, and whether more follow.
func (c *Controller) NodesAfter(after string, limit int) ([]NodeView, bool) {
	names := sortedNames(c.nodes)
	i, found := slices.BinarySearch(names, after)
	if found {
		i++
	}
	names = names[i:]
	more := limit > 0 && len(names) > limit
	if more {
		names = names[:limit]
	}
	out := make([]NodeView, 0, len(names))
	for _, name := range names {
		out = append(out, c.nodeView(c.nodes[name]))
	}
	return out, more
}

// NodeByName returns one node.
func (c *Controller) NodeByName(name string) (NodeView, bool) {
	ne := c.nodes[name]
	if ne == nil {
		return NodeView{}, false
	}
	return c.nodeView(ne), true
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Placement returns where a task is placed and its node's agent address
// ("" when unplaced); for a task not placed now, the last node that ran it.
func (c *Controller) Placement(id string) (node, agentAddress string, ok bool) {
	r, ok := c.lookup(id)
	if !ok {
		return "", "", false
	}
	t := r.task()
	node = t.Node
	if node == "" {
		for _, h := range t.History {
			if h.Node != "" {
				node = h.Node
			}
		}
	}
	if ne := c.nodes[node]; ne != nil {
		agentAddress = ne.node.AgentAddress
	}
	return node, agentAddress, true
}

// Holds reports whether task id is assigned to node (its current placement
// or a copy the node keeps): what a node may report on.
func (c *Controller) Holds(node, id string) bool {
	r, ok := c.lookup(id)
	if !ok {
		return false
	}
	return r.task().Node == node || c.ghosts[id][node] != nil
}

// Now is the controller's clock: the latest time an event carried.
func (c *Controller) Now() time.Time { return c.now }
