package server

import (
	"sync"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// event is one job or task change for watchers.
type event struct {
	job  *fathomv1.JobEvent
	task *fathomv1.TaskEvent
}

// subscriber receives matching events on ch. A subscriber that falls more
// than its buffer behind is dropped (ch closed) rather than slowing writers.
type subscriber struct {
	match func(event) bool
	ch    chan event
}

// hub fans events out to watch streams. Safe for concurrent use.
type hub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

func newHub() *hub { return &hub{subs: map[*subscriber]struct{}{}} }

const subscriberBuffer = 4096

func (h *hub) subscribe(match func(event) bool) *subscriber {
	s := &subscriber{match: match, ch: make(chan event, subscriberBuffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
	h.mu.Unlock()
}

// active reports whether anyone watches (events need not be built).
func (h *hub) active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

func (h *hub) publish(evs ...event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		for _, ev := range evs {
			if !s.match(ev) {
				continue
			}
			select {
			case s.ch <- ev:
			default:
				delete(h.subs, s)
				close(s.ch)
			}
			if _, ok := h.subs[s]; !ok {
				break
			}
		}
	}
}
