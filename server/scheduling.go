package server

import (
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

// startSizes returns the sizes pending task p starts with, from sizer (nil =
// DefaultSizer), limits never below requests.
func startSizes(sizer Sizer, p PendingTask, now time.Time) Sizing {
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
