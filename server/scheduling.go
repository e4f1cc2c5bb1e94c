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

// SchedulerPlacer is the server's Placer backed by scheduler.Place: tasks
// are packed on their predicted requests, replicas of a job are spread over
// the nodes, and a node takes a task only while its estimated probability of
// overload stays below OverloadRisk. It is pure: no I/O, now is given, the
// seed is derived from the pending task ids so a round can be replayed.
//
// Preemption is off: the Placer contract has no way to stop running tasks,
// so a prod task that fits nowhere waits with the scheduler's reason.
type SchedulerPlacer struct {
	// OverloadRisk is ε (0 = scheduler.DefaultOverloadRisk, 0.001).
	OverloadRisk float64
	// Sizer gives pending tasks their sizes (nil = DefaultSizer).
	Sizer Sizer
	// Seed is mixed into every round's seed.
	Seed uint64
}

var _ Placer = (*SchedulerPlacer)(nil)

// Place implements Placer.
func (sp *SchedulerPlacer) Place(nodes []NodeView, pending []PendingTask, now time.Time) []Placement {
	sizer := sp.Sizer
	if sizer == nil {
		sizer = DefaultSizer{}
	}
	view := scheduler.ClusterView{Nodes: make([]scheduler.Node, 0, len(nodes))}
	replicas := map[string]int{} // job id -> active replicas (running + pending)
	for _, n := range nodes {
		view.Nodes = append(view.Nodes, scheduler.Node{
			Name: n.Name, Labels: n.Labels,
			Capacity: scheduler.Resources{n.CPUCores, float64(n.MemoryBytes)},
		})
		for _, r := range n.Running {
			pr, err := scheduler.ParsePriority(r.Priority)
			if err != nil {
				pr = scheduler.Batch
			}
			t := scheduler.Task{ID: r.TaskID, Job: r.JobID, Priority: pr,
				Request: scheduler.Resources{r.CPURequest, float64(r.MemoryRequest)}}
			t.Limit = scheduler.Resources{r.CPULimit, float64(r.MemoryLimit)}
			for i := range t.Limit {
				if t.Limit[i] > 0 && t.Limit[i] < t.Request[i] {
					t.Limit[i] = t.Request[i]
				}
			}
			view.Running = append(view.Running, scheduler.Assignment{Task: t, Node: n.Name})
			replicas[r.JobID]++
		}
	}
	for _, p := range pending {
		replicas[p.JobID]++
	}
	out := make([]Placement, 0, len(pending))
	sizes := make(map[string]Sizing, len(pending))
	tasks := make([]scheduler.Task, 0, len(pending))
	h := fnv.New64a()
	for _, p := range pending {
		z := sizer.SizeNew(p, now)
		if z.CPULimit > 0 && z.CPULimit < z.CPURequest {
			z.CPULimit = z.CPURequest
		}
		if z.MemoryLimit > 0 && z.MemoryLimit < z.MemoryRequest {
			z.MemoryLimit = z.MemoryRequest
		}
		sizes[p.TaskID] = z
		pr, err := scheduler.ParsePriority(p.Priority)
		if err != nil {
			pr = scheduler.Batch
		}
		t := scheduler.Task{ID: p.TaskID, Job: p.JobID, Priority: pr,
			Request: scheduler.Resources{z.CPURequest, float64(z.MemoryRequest)},
			Limit:   scheduler.Resources{z.CPULimit, float64(z.MemoryLimit)},
			Usage:   [scheduler.NumResources]scheduler.Dist{z.CPUUsage, z.MemoryUsage},
		}
		if len(nodes) > 0 {
			// Spread replicas evenly over the nodes that are up.
			t.MaxPerNode = int(math.Ceil(float64(replicas[p.JobID]) / float64(len(nodes))))
		}
		if err := t.Validate(); err != nil {
			out = append(out, Placement{TaskID: p.TaskID, Reason: "cannot be scheduled as sized: " + err.Error()})
			continue
		}
		tasks = append(tasks, t)
		h.Write([]byte(p.TaskID))
	}
	plan, err := scheduler.Place(view, tasks, scheduler.Options{Seed: h.Sum64() ^ sp.Seed, OverloadRisk: sp.OverloadRisk, NoPreemption: true})
	if err != nil {
		for _, t := range tasks {
			out = append(out, Placement{TaskID: t.ID, Reason: "scheduler refused the round: " + err.Error()})
		}
		return out
	}
	for _, pl := range plan.Placements {
		z := sizes[pl.TaskID]
		out = append(out, Placement{TaskID: pl.TaskID, Node: pl.Node,
			Reason:     fmt.Sprintf("placed on %s (score %.1f): %s; sized by %s", pl.Node, pl.Score, pl.Why, z.Source),
			CPURequest: z.CPURequest, CPULimit: z.CPULimit, MemoryRequest: z.MemoryRequest, MemoryLimit: z.MemoryLimit})
	}
	for _, u := range plan.Unplaced {
		z := sizes[u.TaskID]
		out = append(out, Placement{TaskID: u.TaskID,
			Reason: fmt.Sprintf("%s (needs %.3g cores, %d MiB; %s)", strings.TrimSuffix(u.Reason, "."), z.CPURequest, z.MemoryRequest>>20, u.Why)})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].TaskID < out[b].TaskID })
	return out
}
