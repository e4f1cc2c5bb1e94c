package server

import (
	"sync"
	"time"

	"github.com/fathom-scheduler/fathom/controller"
)

// beatBuffer coalesces heartbeats. A heartbeat is answered at once — the agent
// only learns whether it must register again — and its usage waits here,
// the latest per node, until the loop's next step applies them all: 5,000
// nodes beating every 3 s would otherwise be 1,667 ops a second queued
// behind whatever the loop is committing, and a heartbeat that waits past
// its interval ends the agent's session. A heartbeat changes nothing
// stored except when a down node comes back, and that record is committed
// with the step that applies it.
type beatBuffer struct {
	mu    sync.Mutex
	last  map[string]beat
	known map[string]bool // the nodes the controller has (kept by the loop)
}

type beat struct {
	u  controller.Usage
	at time.Time
}

func newBeats() *beatBuffer { return &beatBuffer{last: map[string]beat{}, known: map[string]bool{}} }

// record keeps a node's heartbeat; false when the node is not known (the
// agent must register).
func (b *beatBuffer) record(node string, u controller.Usage, at time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.known[node] {
		return false
	}
	b.last[node] = beat{u, at}
	return true
}

// take returns the heartbeats waiting and forgets them.
func (b *beatBuffer) take() map[string]beat {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.last) == 0 {
		return nil
	}
	m := b.last
	b.last = make(map[string]beat, len(m))
	return m
}

// setKnown replaces the set of known nodes (after a restore).
func (b *beatBuffer) setKnown(nodes []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.known = make(map[string]bool, len(nodes))
	for _, n := range nodes {
		b.known[n] = true
	}
}

func (b *beatBuffer) add(node string) {
	b.mu.Lock()
	b.known[node] = true
	b.mu.Unlock()
}

func (b *beatBuffer) remove(nodes []string) {
	if len(nodes) == 0 {
		return
	}
	b.mu.Lock()
	for _, n := range nodes {
		delete(b.known, n)
		delete(b.last, n)
	}
	b.mu.Unlock()
}
