package server

import (
	"sync"

	"github.com/fathom-scheduler/fathom/controller"
)

// streams are the agents' assignment streams, one per connected node. The
// loop delivers each committed assignment change to its node's stream
// without blocking: a stream whose buffer is full is marked for a resend of
// the whole set instead (level-triggered), so a slow agent never holds up
// the loop and memory stays bounded.
type streams struct {
	mu     sync.Mutex
	byNode map[string]*nodeStream
}

// streamBuffer bounds the changes queued for one agent.
const streamBuffer = 1024

type nodeStream struct {
	node    string
	changes chan controller.AssignmentChange
	mu      sync.Mutex
	resync  bool
	wake    chan struct{}
	closed  chan struct{}
}

func newStreams() *streams { return &streams{byNode: map[string]*nodeStream{}} }

// attach registers a stream for node, replacing (and closing) an older one:
// an agent that reconnects before its old stream noticed takes over. The
// new stream starts with a full resend.
func (s *streams) attach(node string) *nodeStream {
	ns := &nodeStream{node: node, changes: make(chan controller.AssignmentChange, streamBuffer), resync: true,
		wake: make(chan struct{}, 1), closed: make(chan struct{})}
	s.mu.Lock()
	if old := s.byNode[node]; old != nil {
		close(old.closed)
	}
	s.byNode[node] = ns
	s.mu.Unlock()
	return ns
}

// detach removes the stream if it is still the node's.
func (s *streams) detach(ns *nodeStream) {
	s.mu.Lock()
	if s.byNode[ns.node] == ns {
		delete(s.byNode, ns.node)
	}
	s.mu.Unlock()
}

// deliver queues committed changes to their nodes' streams.
func (s *streams) deliver(chs []controller.AssignmentChange) {
	if len(chs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range chs {
		ns := s.byNode[ch.Node]
		if ns == nil {
			continue // not connected: it gets its whole set when it connects
		}
		select {
		case ns.changes <- ch:
		default:
			ns.markResync()
		}
	}
}

// resyncAll marks every stream for a resend of its whole set.
func (s *streams) resyncAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ns := range s.byNode {
		ns.markResync()
	}
}

// connected reports whether a node has a stream.
func (s *streams) connected(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byNode[node] != nil
}

func (ns *nodeStream) markResync() {
	ns.mu.Lock()
	ns.resync = true
	ns.mu.Unlock()
	select {
	case ns.wake <- struct{}{}:
	default:
	}
}

// takeResync reports (and clears) a pending resend; the changes queued
// before it are dropped, since the resend covers them.
func (ns *nodeStream) takeResync() bool {
	ns.mu.Lock()
	r := ns.resync
	ns.resync = false
	ns.mu.Unlock()
	if r {
		for {
			select {
			case <-ns.changes:
			default:
				return true
			}
		}
	}
	return false
}
