package server

import (
	"context"
	"sync"
	"time"

	"github.com/fathom-scheduler/fathom/scheduler"
)

// autoscaleState keeps the scheduler's latest autoscaling report: how many
// machines the current work needs and which could go. The reconcile loop
// publishes it with observeAutoscale; `fathom node list`, the metrics and the
// node-provider hook read it.
type autoscaleState struct {
	mu  sync.Mutex
	rep scheduler.AutoscaleReport
	at  time.Time
	ok  bool
}

// observeAutoscale records the report computed by a reconcile round at now.
func (s *Server) observeAutoscale(_ context.Context, rep scheduler.AutoscaleReport, now time.Time) {
	s.autoscale.mu.Lock()
	defer s.autoscale.mu.Unlock()
	rep.CouldRemove = append([]string(nil), rep.CouldRemove...)
	s.autoscale.rep, s.autoscale.at, s.autoscale.ok = rep, now, true
}

// autoscaleReport returns the latest report and when it was computed; ok is
// false until a reconcile round has run.
func (s *Server) autoscaleReport() (rep scheduler.AutoscaleReport, at time.Time, ok bool) {
	s.autoscale.mu.Lock()
	defer s.autoscale.mu.Unlock()
	rep = s.autoscale.rep
	rep.CouldRemove = append([]string(nil), rep.CouldRemove...)
	return rep, s.autoscale.at, s.autoscale.ok
}
