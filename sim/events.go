package sim

import (
	"container/heap"
	"time"
)

// eventKind orders events that happen at the same virtual time: tasks that
// end leave first, then machines fail, then tasks arrive, then the window
// is simulated.
type eventKind uint8

const (
	evDepart eventKind = iota
	evFail
	evArrive
	evWindow
)

// event is one thing that happens at a virtual time.
type event struct {
	at   time.Duration // from the workload's start
	kind eventKind
	seq  int // insertion order: the last tie-break, so runs are deterministic
	task int // evArrive, evDepart
	fail int // evFail: index into Options.Failures
	slot int // evWindow
}

// eventQueue is a min-heap of events by (at, kind, seq).
type eventQueue struct {
	ev  []event
	seq int
}

func (q *eventQueue) Len() int { return len(q.ev) }
func (q *eventQueue) Less(i, j int) bool {
	a, b := &q.ev[i], &q.ev[j]
	if a.at != b.at {
		return a.at < b.at
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.seq < b.seq
}
func (q *eventQueue) Swap(i, j int) { q.ev[i], q.ev[j] = q.ev[j], q.ev[i] }
func (q *eventQueue) Push(x any)    { q.ev = append(q.ev, x.(event)) }
func (q *eventQueue) Pop() any {
	e := q.ev[len(q.ev)-1]
	q.ev = q.ev[:len(q.ev)-1]
	return e
}

// push schedules an event.
func (q *eventQueue) push(e event) {
	e.seq = q.seq
	q.seq++
	heap.Push(q, e)
}

// pop returns the earliest event.
func (q *eventQueue) pop() event { return heap.Pop(q).(event) }
