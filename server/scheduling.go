package server

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/fathom-scheduler/fathom/scheduler"
)

// Sizer decides the sizes a task starts with: the predictor's recommendation
// when the job's namespace/name has history, the hints when given, a cold
// start default otherwise. It must be pure apart from reading its own
// in-memory state, and safe for concurrent use. The right-sizing loop
// (RightSizer) implements it.
type Sizer interface {
	SizeNew(p PendingTask, now time.Time) Sizing
}

// Sizing is the size of one task and the distribution of its usage.
type Sizing struct {
	CPURequest, CPULimit       float64
	MemoryRequest, MemoryLimit int64
	// Predicted usage per window (zero = take the request as certain).
	CPUUsage, MemoryUsage scheduler.Dist
	// Source says where the sizes come from ("recommendation of fathom
	// model", "hints", "cold-start default").
	Source string
}

// DefaultSizer sizes tasks from hints, or DefaultCPURequest and
// DefaultMemoryRequest without limits when none are given.
type DefaultSizer struct{}

// SizeNew implements Sizer.
func (DefaultSizer) SizeNew(p PendingTask, _ time.Time) Sizing {
	return hintSizing(p)
}

func hintSizing(p PendingTask) Sizing {
	z := Sizing{CPURequest: p.CPUHint, CPULimit: p.CPUHint, MemoryRequest: p.MemoryHint, MemoryLimit: p.MemoryHint, Source: "hints"}
	var def []string
	if z.CPURequest == 0 {
		z.CPURequest, z.CPULimit = DefaultCPURequest, 0
		def = append(def, "cpu")
	}
	if z.MemoryRequest == 0 {
		z.MemoryRequest, z.MemoryLimit = DefaultMemoryRequest, 0
		def = append(def, "memory")
	}
	switch len(def) {
	case 2:
		z.Source = "cold-start default (no history, no hints)"
	case 1:
		z.Source = "hints; cold-start default for " + def[0]
	}
	return z
}

// SchedulerPlacer is the server's scheduling policy: tasks are packed on
// their predicted requests (sized by Sizer), replicas of a job are spread
// over the nodes, and a node takes a task only while its estimated
// probability of overload stays below OverloadRisk. The reconcile loop
// (reconcile.go) uses its sizing and translation every round; Place is a
// one-shot of the same path (scheduler.Reconcile on a view) for tools and
// tests. Pure: no I/O, now is given, the seed is derived from the input.
type SchedulerPlacer struct {
	// OverloadRisk is ε (0 = scheduler.DefaultOverloadRisk, 0.001).
	OverloadRisk float64
	// Sizer gives pending tasks their sizes (nil = DefaultSizer).
	Sizer Sizer
	// Seed is mixed into every round's seed.
	Seed uint64
}

// size returns the sizes task p starts with (limits never below requests).
func (sp *SchedulerPlacer) size(p PendingTask, now time.Time) Sizing {
	sizer := sp.Sizer
	if sizer == nil {
		sizer = DefaultSizer{}
	}
	z := sizer.SizeNew(p, now)
	if z.CPULimit > 0 && z.CPULimit < z.CPURequest {
		z.CPULimit = z.CPURequest
	}
	if z.MemoryLimit > 0 && z.MemoryLimit < z.MemoryRequest {
		z.MemoryLimit = z.MemoryRequest
	}
	return z
}

// schedTask is the scheduler's view of a task to place with sizes z.
func schedTask(id, jobID string, pr scheduler.Priority, z Sizing, maxPerNode int) (scheduler.Task, error) {
	t := scheduler.Task{ID: id, Job: jobID, Priority: pr,
		Request:    scheduler.Resources{z.CPURequest, float64(z.MemoryRequest)},
		Limit:      scheduler.Resources{z.CPULimit, float64(z.MemoryLimit)},
		Usage:      [scheduler.NumResources]scheduler.Dist{z.CPUUsage, z.MemoryUsage},
		MaxPerNode: maxPerNode,
	}
	return t, t.Validate()
}

// Place chooses nodes for pending tasks given the nodes (all up) and what
// runs on them, through scheduler.Reconcile without preemption.
func (sp *SchedulerPlacer) Place(nodes []NodeView, pending []PendingTask, now time.Time) []Placement {
	var st scheduler.ClusterState
	replicas := map[string]int{} // job id -> active replicas (running + pending)
	for _, n := range nodes {
		for _, r := range n.Running {
			replicas[r.JobID]++
		}
	}
	for _, p := range pending {
		replicas[p.JobID]++
	}
	spread := func(job string) int {
		if len(nodes) == 0 {
			return 0
		}
		return int(math.Ceil(float64(replicas[job]) / float64(len(nodes))))
	}
	for _, n := range nodes {
		st.Nodes = append(st.Nodes, scheduler.NodeStatus{Node: scheduler.Node{
			Name: n.Name, Labels: n.Labels, Capacity: scheduler.Resources{n.CPUCores, float64(n.MemoryBytes)},
		}, LastHeartbeat: now})
		for _, r := range n.Running {
			pr, err := scheduler.ParsePriority(r.Priority)
			if err != nil {
				pr = scheduler.Batch
			}
			t := scheduler.Task{ID: r.TaskID, Job: r.JobID, Priority: pr, MaxPerNode: spread(r.JobID),
				Request: scheduler.Resources{r.CPURequest, float64(r.MemoryRequest)},
				Limit:   scheduler.Resources{r.CPULimit, float64(r.MemoryLimit)}}
			for i := range t.Limit {
				if t.Limit[i] > 0 && t.Limit[i] < t.Request[i] {
					t.Limit[i] = t.Request[i]
				}
			}
			st.Tasks = append(st.Tasks, scheduler.TaskStatus{Task: t, Phase: scheduler.Running, Node: n.Name, Attempt: 1, Since: now})
		}
	}
	out := make([]Placement, 0, len(pending))
	sizes := make(map[string]Sizing, len(pending))
	h := fnv.New64a()
	for _, p := range pending {
		z := sp.size(p, now)
		sizes[p.TaskID] = z
		pr, err := scheduler.ParsePriority(p.Priority)
		if err != nil {
			pr = scheduler.Batch
		}
		t, err := schedTask(p.TaskID, p.JobID, pr, z, spread(p.JobID))
		if err != nil {
			out = append(out, Placement{TaskID: p.TaskID, Reason: "cannot be scheduled as sized: " + err.Error()})
			continue
		}
		st.Tasks = append(st.Tasks, scheduler.TaskStatus{Task: t, Phase: scheduler.Pending})
		h.Write([]byte(p.TaskID))
	}
	opts := scheduler.ReconcileOptions{Options: scheduler.Options{Seed: h.Sum64() ^ sp.Seed, OverloadRisk: sp.OverloadRisk, NoPreemption: true}}
	res, err := scheduler.Reconcile(st, now, opts)
	if err != nil {
		for _, t := range st.Tasks {
			if t.Phase == scheduler.Pending {
				out = append(out, Placement{TaskID: t.ID, Reason: "scheduler refused the round: " + err.Error()})
			}
		}
		return out
	}
	for _, pl := range res.Place {
		z := sizes[pl.TaskID]
		out = append(out, Placement{TaskID: pl.TaskID, Node: pl.Node,
			Reason:     fmt.Sprintf("placed on %s (score %.1f): %s; sized by %s", pl.Node, pl.Score, pl.Why, z.Source),
			CPURequest: z.CPURequest, CPULimit: z.CPULimit, MemoryRequest: z.MemoryRequest, MemoryLimit: z.MemoryLimit})
	}
	for _, u := range res.Deferred {
		z := sizes[u.TaskID]
		out = append(out, Placement{TaskID: u.TaskID,
			Reason: fmt.Sprintf("%s (needs %.3g cores, %d MiB; %s)", strings.TrimSuffix(u.Reason, "."), z.CPURequest, z.MemoryRequest>>20, u.Why)})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].TaskID < out[b].TaskID })
	return out
}
