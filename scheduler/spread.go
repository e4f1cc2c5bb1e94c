package scheduler

import (
	"slices"
)

// Spread over a label's values (Task.Spread): the State counts, per job and
// value of the label, the job's tasks on nodes with that value
// (spreadCount), and per label and value the schedulable nodes that have it
// (labelNodes), so that a placement knows the values in play and which of
// them hold the fewest of the job's tasks without looking at every node.
//
// Placement tries the values level by level: first only nodes whose value
// holds the fewest tasks (spreadLabel filter, ReasonSpreadLabel), then, if
// none of those has room, the next fewest, and so on; last, any node,
// including nodes without the label. While the nodes of the least-used
// values have room, the per-value counts therefore differ by at most one.

// spreadKey is one (job, label, value) count.
type spreadKey struct {
	job   int32
	label string
	value string
}

// spreadLabel keeps a task with Spread on nodes whose value of the label
// holds at most c.spreadMax of the job's tasks (when c.spreadOn).
type spreadLabel struct{}

var _ Filter = spreadLabel{}

func (spreadLabel) Name() string { return "spread-label" }
func (spreadLabel) Filter(c *placeCtx, t *Task, n int32) Reason {
	if !c.spreadOn || t.Spread == "" {
		return ReasonNone
	}
	v, ok := c.s.nodes[n].Labels[t.Spread]
	if !ok || c.s.spreadCount[spreadKey{c.sjob, t.Spread, v}] > c.spreadMax {
		return ReasonSpreadLabel
	}
	return ReasonNone
}

// spreadLevels returns the distinct counts of the job's tasks over the
// values of t.Spread that schedulable nodes have and the task's constraints
// on that label allow (a value they rule out would only cost a search that
// finds nothing), lowest first.
func (s *State) spreadLevels(t *Task, job int32, buf []int32) []int32 {
	buf = buf[:0]
values:
	for v := range s.labelNodes[t.Spread] {
		for i := range t.Constraints {
			if c := &t.Constraints[i]; c.Label == t.Spread && !c.holdsFor(v, true) {
				continue values
			}
		}
		k := s.spreadCount[spreadKey{job, t.Spread, v}]
		if !slices.Contains(buf, k) {
			buf = append(buf, k)
		}
	}
	slices.Sort(buf)
	return buf
}

// SpreadCounts returns, for a job and label, how many of the job's tasks
// run on nodes with each value of the label (values that schedulable nodes
// have are listed even at 0).
func (s *State) SpreadCounts(job, label string) map[string]int {
	out := map[string]int{}
	for v := range s.labelNodes[label] {
		out[v] = 0
	}
	id, ok := s.jobIDs[job]
	if !ok {
		return out
	}
	for k, n := range s.spreadCount {
		if k.job == id && k.label == label {
			out[k.value] = int(n)
		}
	}
	return out
}

// selectSpread is selectNode for a task with Spread: level by level over
// the label's values, then anywhere.
func (c *placeCtx) selectSpread(t *Task, opts Options, seq uint64, buf *[]int32) (int32, Explanation) {
	if t.Spread == "" || t.Job == "" {
		return c.selectNode(t, opts, seq, buf)
	}
	c.forTask(t)
	c.levels = c.s.spreadLevels(t, c.sjob, c.levels)
	c.quiet = true
	for i, lv := range c.levels {
		c.spreadOn, c.spreadMax = true, lv
		if n, why := c.selectNode(t, opts, seq, buf); n >= 0 {
			c.spreadOn, c.quiet = false, false
			why.Spread, why.SpreadWidened = t.Spread, int8(i)
			return n, why
		}
	}
	c.spreadOn, c.quiet = false, false
	n, why := c.selectNode(t, opts, seq, buf)
	why.Spread, why.SpreadWidened = t.Spread, int8(min(len(c.levels), 127))
	return n, why
}

// countSpread adds d to the count of task i's value on its node.
func (s *State) countSpread(i int32, d int32) {
	ts := &s.tasks[i]
	if ts.Spread == "" || ts.Job == "" {
		return
	}
	if d > 0 {
		v, ok := s.nodes[ts.node].Labels[ts.Spread]
		if !ok {
			return
		}
		ts.spreadVal, ts.spreadCounted = v, true
	} else if !ts.spreadCounted {
		return
	}
	k := spreadKey{s.jobID(ts.Job), ts.Spread, ts.spreadVal}
	if s.spreadCount[k] += d; s.spreadCount[k] <= 0 {
		delete(s.spreadCount, k)
	}
	if d < 0 {
		ts.spreadCounted = false
	}
}

// trackLabels adds d to the schedulable-node counts of node n's labels.
func (s *State) trackLabels(n int32, d int32) {
	for k, v := range s.nodes[n].Labels {
		m := s.labelNodes[k]
		if m == nil {
			m = map[string]int32{}
			s.labelNodes[k] = m
		}
		if m[v] += d; m[v] <= 0 {
			delete(m, v)
			if len(m) == 0 {
				delete(s.labelNodes, k)
			}
		}
	}
}
