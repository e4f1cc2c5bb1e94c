package agent

import (
	"fmt"
	"sort"
)

// EvictionCandidate is a running task as the pressure rule sees it.
type EvictionCandidate struct {
	TaskID     string
	Priority   string // prod | batch | best-effort
	WorkingSet int64  // bytes in use
	Request    int64  // bytes requested (0 = none stated)
}

// Eviction is one task to kill now, and why.
type Eviction struct {
	TaskID string
	Reason string
	// WorkingSet is what the task was using: the control plane raises its
	// learned request to it so that it is not placed back where it cannot fit.
	WorkingSet int64
}

// priorityRank orders classes for eviction: lower goes first. prod (and any
// class this agent does not know) is never evicted by the agent.
func priorityRank(p string) (int, bool) {
	switch p {
	case PriorityBestEffort:
		return 0, true
	case PriorityBatch:
		return 1, true
	}
	return 0, false
}

// SelectEvictions picks tasks to evict so that about `over` bytes are freed:
// best-effort before batch, and within a class the largest overuse of the
// request first (a task with no request overuses by all it uses). Prod tasks
// are left to the kernel. It is a pure function: same input, same answer.
func SelectEvictions(cands []EvictionCandidate, over int64, why string) []Eviction {
	if over <= 0 {
		return nil
	}
	type c struct {
		EvictionCandidate
		rank    int
		overuse int64
	}
	var cs []c
	for _, x := range cands {
		r, ok := priorityRank(x.Priority)
		if !ok || x.WorkingSet <= 0 {
			continue
		}
		cs = append(cs, c{x, r, x.WorkingSet - x.Request})
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].rank != cs[j].rank {
			return cs[i].rank < cs[j].rank
		}
		if cs[i].overuse != cs[j].overuse {
			return cs[i].overuse > cs[j].overuse
		}
		return cs[i].TaskID < cs[j].TaskID
	})
	var out []Eviction
	freed := int64(0)
	for _, x := range cs {
		if freed >= over {
			break
		}
		freed += x.WorkingSet
		out = append(out, Eviction{TaskID: x.TaskID, WorkingSet: x.WorkingSet, Reason: fmt.Sprintf(
			"node memory pressure (%s); %s task using %s against a request of %s", why, x.Priority, fmtBytes(x.WorkingSet), fmtBytes(x.Request))})
	}
	return out
}

func fmtBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGi", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMi", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKi", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}
