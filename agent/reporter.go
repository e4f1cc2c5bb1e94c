package agent

import (
	"context"
	"sync"
)

// reporter queues status changes for the control plane. While the server is
// away the queue is bounded; on every (re)connection the agent first sends
// the full current state, so nothing that matters depends on the queue.
type reporter struct {
	mu      sync.Mutex
	pending []TaskStatus
	max     int
	signal  chan struct{}
}

func newReporter(max int) *reporter {
	return &reporter{max: max, signal: make(chan struct{}, 1)}
}

// add is the executor's OnStatus hook; it never blocks.
func (r *reporter) add(s TaskStatus) {
	r.mu.Lock()
	r.pending = append(r.pending, s)
	if len(r.pending) > r.max {
		r.pending = append([]TaskStatus(nil), r.pending[len(r.pending)-r.max:]...)
	}
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *reporter) take() []TaskStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending
	r.pending = nil
	return p
}

// putBack returns unsent statuses to the front of the queue.
func (r *reporter) putBack(ss []TaskStatus) {
	r.mu.Lock()
	r.pending = append(ss, r.pending...)
	if len(r.pending) > r.max {
		r.pending = r.pending[len(r.pending)-r.max:]
	}
	r.mu.Unlock()
}

// run reports a full snapshot and then every change until an error or ctx ends.
func (r *reporter) run(ctx context.Context, cp ControlPlane, nodeID string, snapshot func() []TaskStatus) error {
	r.take() // the snapshot supersedes what queued while disconnected
	if ss := snapshot(); len(ss) > 0 {
		if err := cp.ReportTaskStatus(ctx, nodeID, ss); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.signal:
		}
		ss := r.take()
		if len(ss) == 0 {
			continue
		}
		if err := cp.ReportTaskStatus(ctx, nodeID, ss); err != nil {
			r.putBack(ss)
			return err
		}
	}
}
