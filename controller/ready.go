package controller

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// Ready is what changed since the last call to Controller.Ready: the
// records to persist (in one or more transactions; all of them before any
// acknowledgement), then the assignment changes to send to agents and the
// changes to publish to watchers.
type Ready struct {
	// Jobs, Tasks and Nodes are the changed records, to put.
	Jobs  []Job
	Tasks []Task
	Nodes []Node
	// GhostPuts and GhostDeletes are changed copies (see Ghost).
	GhostPuts    []Ghost
	GhostDeletes []GhostKey
	// Names reserve (JobID set) or release (JobID "") a job name in a
	// namespace.
	Names []NameChange
	// DeletedJobs are jobs removed with all their tasks (finished and past
	// their retention).
	DeletedJobs []Job
	// RemovedNodes are nodes forgotten (RemoveNode): delete their records.
	RemovedNodes []string
	// DeletedTasks are tasks forgotten after a scale-down (ids): delete
	// their records. Versions are job versions to keep (put), sorted by job
	// then version.
	DeletedTasks []string
	Versions     []JobVersion
	// Created lists the ids of jobs submitted since the last Ready (for
	// watchers: their tasks exist without records).
	Created []string
	// Assign are per-task changes of nodes' assignment sets, sorted by node
	// then task.
	Assign []AssignmentChange
	// Provider is a node-provider call the caller should make (nil: none).
	// When it is done, the caller reports the outcome with ProviderDone.
	Provider *ProviderCall
	// Stats count what was decided, for metrics; Log are the decisions
	// worth a log line.
	Stats Stats
	Log   []string
}

// Empty reports whether nothing needs persisting or sending.
func (r *Ready) Empty() bool {
	return len(r.Jobs)+len(r.Tasks)+len(r.Nodes)+len(r.GhostPuts)+len(r.GhostDeletes)+len(r.Names)+len(r.DeletedJobs)+
		len(r.RemovedNodes)+len(r.Created)+len(r.Assign)+len(r.DeletedTasks)+len(r.Versions) == 0 && r.Provider == nil
}

// GhostKey names a copy: a task on a node.
type GhostKey struct{ TaskID, Node string }

// NameChange reserves or releases a job name.
type NameChange struct {
	Namespace, Name string
	JobID           string // "" = release
}

// Stats count one Ready's decisions.
type Stats struct {
	Placed, Rescheduled, Moved, Preempted, Resized, StaleStopped, Unschedulable int
	// Restarted counts tasks started again on their node by their restart
	// policy.
	Restarted          int
	NodesDown, NodesUp int
	// JobsDeleted counts finished jobs collected (gc.go).
	JobsDeleted int
	// Deferred counts waiting tasks a round left for a later one
	// (MaxPlacePerRound): the caller should run another round soon.
	Deferred int
	// PreemptedBy counts victims by their priority; MovedBy moves by why
	// (resize, drain, consolidation).
	PreemptedBy map[string]int
	MovedBy     map[string]int
	// Evictions are the OOM kills and evictions under memory pressure
	// handled, with the job and the reason (oom, memory_pressure).
	Evictions []Eviction
	// ResizedBy counts in-place changes by resource (cpu, memory).
	ResizedBy map[string]int
}

func (s *Stats) add(m *map[string]int, k string) {
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[k]++
}

// Eviction is one OOM kill or eviction handled.
type Eviction struct{ Namespace, JobName, Reason string }

type ghostKey = GhostKey

type nodeRef struct {
	node string
	r    ref
}

// ready accumulates changes between calls to Ready.
type ready struct {
	jobs         map[*jobEntry]struct{}
	tasks        map[ref]struct{}
	nodes        map[string]struct{}
	ghostPut     map[ghostKey]struct{}
	ghostDel     map[ghostKey]struct{}
	names        []NameChange
	deleted      []Job
	removedNodes []string
	deletedTasks []string
	versions     map[versionKey]JobVersion
	created      []string
	assign       map[nodeRef]struct{}
	provider     *ProviderCall
	stats        Stats
	log          []string
}

func newReady() ready {
	return ready{jobs: map[*jobEntry]struct{}{}, tasks: map[ref]struct{}{}, nodes: map[string]struct{}{},
		ghostPut: map[ghostKey]struct{}{}, ghostDel: map[ghostKey]struct{}{}, assign: map[nodeRef]struct{}{},
		versions: map[versionKey]JobVersion{}}
}

func (o *ready) logf(format string, args ...any) {
	if len(o.log) < 1000 {
		o.log = append(o.log, fmt.Sprintf(format, args...))
	}
}

// Ready returns the changes since the last call and forgets them. Records
// are copies the caller may keep.
func (c *Controller) Ready() Ready {
	o := &c.out
	var rd Ready
	for e := range o.jobs {
		if c.jobs[e.job.ID] == e {
			rd.Jobs = append(rd.Jobs, e.job.clone())
		}
	}
	slices.SortFunc(rd.Jobs, func(a, b Job) int { return cmp.Compare(a.ID, b.ID) })
	for r := range o.tasks {
		if c.jobs[r.job.job.ID] == r.job && int(r.idx) < len(r.job.tasks) {
			rd.Tasks = append(rd.Tasks, r.task().clone())
		}
	}
	slices.SortFunc(rd.Tasks, func(a, b Task) int {
		if x := cmp.Compare(a.JobID, b.JobID); x != 0 {
			return x
		}
		return cmp.Compare(a.Index, b.Index)
	})
	for name := range o.nodes {
		if ne := c.nodes[name]; ne != nil {
			rd.Nodes = append(rd.Nodes, ne.node.clone())
		}
	}
	slices.SortFunc(rd.Nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	for k := range o.ghostPut {
		if g := c.ghosts[k.TaskID][k.Node]; g != nil {
			rd.GhostPuts = append(rd.GhostPuts, *g)
		}
	}
	slices.SortFunc(rd.GhostPuts, func(a, b Ghost) int { return cmp.Or(cmp.Compare(a.TaskID, b.TaskID), cmp.Compare(a.Node, b.Node)) })
	for k := range o.ghostDel {
		rd.GhostDeletes = append(rd.GhostDeletes, k)
	}
	slices.SortFunc(rd.GhostDeletes, func(a, b GhostKey) int { return cmp.Or(cmp.Compare(a.TaskID, b.TaskID), cmp.Compare(a.Node, b.Node)) })
	rd.Names, rd.DeletedJobs, rd.Created, rd.RemovedNodes, rd.DeletedTasks = o.names, o.deleted, o.created, o.removedNodes, o.deletedTasks
	for _, v := range o.versions {
		rd.Versions = append(rd.Versions, v)
	}
	slices.SortFunc(rd.Versions, func(a, b JobVersion) int {
		return cmp.Or(cmp.Compare(a.JobID, b.JobID), cmp.Compare(a.Version, b.Version))
	})
	for k := range o.assign {
		if c.jobs[k.r.job.job.ID] != k.r.job {
			continue // the job is gone; DeletedJobs says so
		}
		rd.Assign = append(rd.Assign, AssignmentChange{Node: k.node, TaskID: k.r.id(), Assignment: c.assignmentOn(k.node, k.r)})
	}
	slices.SortFunc(rd.Assign, func(a, b AssignmentChange) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.TaskID, b.TaskID))
	})
	rd.Provider, rd.Stats, rd.Log = o.provider, o.stats, o.log
	c.out = newReady()
	return rd
}

// assignmentOn is task r's assignment on node now (nil: none).
func (c *Controller) assignmentOn(node string, r ref) *Assignment {
	if int(r.idx) >= len(r.job.tasks) {
		return nil // forgotten after a scale-down
	}
	t := r.task()
	if t.Node == node && (t.State == Placed || t.State == Running) {
		a := c.assignment(r, t.Generation, t.Sizes, t.Desired)
		return &a
	}
	if g := c.ghosts[r.id()][node]; g != nil && c.ghostLive(r, node) {
		a := c.assignment(r, g.Generation, g.Sizes, DesiredKeep)
		return &a
	}
	return nil
}

func (c *Controller) assignment(r ref, gen int64, z Sizes, d Desired) Assignment {
	s := c.specOf(r)
	return Assignment{TaskID: r.id(), JobID: r.job.job.ID, Namespace: s.Namespace, JobName: s.Name, Index: r.idx,
		Command: s.Command, Env: s.Env, User: s.User, Type: s.Type, Priority: s.Priority,
		Sizes: z, Desired: d, Generation: gen, HealthCheck: s.HealthCheck, Version: r.task().Version, Ports: maps.Clone(r.task().Ports)}
}

// NodeAssignments is the full assignment set of a node, sorted by task id:
// what an agent reconciles to when it (re)connects. Later changes come as
// AssignmentChanges in Ready.
func (c *Controller) NodeAssignments(node string) []Assignment {
	ne := c.nodes[node]
	if ne == nil {
		return nil
	}
	var out []Assignment
	for r := range ne.tasks {
		if a := c.assignmentOn(node, r); a != nil {
			out = append(out, *a)
		}
	}
	for id, m := range c.ghosts {
		if _, ok := m[node]; !ok {
			continue
		}
		r, ok := c.lookup(id)
		if !ok {
			continue
		}
		if _, placedHere := ne.tasks[r]; placedHere {
			continue
		}
		if a := c.assignmentOn(node, r); a != nil {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b Assignment) int { return cmp.Compare(a.TaskID, b.TaskID) })
	return out
}
