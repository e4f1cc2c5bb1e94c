package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/store"
)

// Options configure a Server.
type Options struct {
	// Store is where state lives. Required.
	Store *store.Store
	// Registerer receives the fathom_api_* metrics; Gatherer serves /metrics.
	// Both nil = a private registry.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// MetricsHandler serves the Prometheus-compatible API under /api/v1/
	// (query, query_range, series, labels, write). nil = 503 with a message.
	MetricsHandler http.Handler
	// Controller configures the control loop (package controller): heartbeat
	// timeout, failover grace, placement and sizing policy, consolidation,
	// node provider policy. Its Predictor is set from RightSizer.
	Controller controller.Config
	// HeartbeatInterval told to agents. Default Controller.HeartbeatTimeout/3.
	HeartbeatInterval time.Duration
	// RemoteWriteURL told to agents. When empty and RemoteWriteHTTPPort is
	// set, agents are told http://<host they dialled>:<RemoteWriteHTTPPort>/api/v1/write
	// (the embedded TSDB behind this server's HTTP port); when both are empty,
	// "" (the agent's own default).
	RemoteWriteURL      string
	RemoteWriteHTTPPort string
	// RightSizer, when set, reads every running task's usage, feeds the
	// predictor the controller sizes with, and serves the recommendation and
	// model services (see rightsizing.go, registry.go).
	RightSizer *RightSizer
	// Recommendations and Models serve those services; nil = UNIMPLEMENTED
	// with a message saying the predictor is not wired in.
	Recommendations fathomv1.RecommendationServiceServer
	Models          fathomv1.ModelServiceServer
	// NodeProvider is the hook that adds and removes machines on the
	// controller's autoscaling decisions (autoscale.go); zero = report only.
	NodeProvider NodeProviderOptions
	// Logger; nil = slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil = time.Now. Tests set it.
	Now func() time.Time
}

// Server is the control plane's wiring: the API, the agents' streams, the
// store, and the loop that feeds package controller (which owns every
// task's life) and applies what it returns. Create with New, run with Serve.
type Server struct {
	fathomv1.UnimplementedJobServiceServer
	fathomv1.UnimplementedNodeServiceServer
	fathomv1.UnimplementedAgentServiceServer

	o       Options
	st      *store.Store
	log     *slog.Logger
	now     func() time.Time
	metrics *apiMetrics
	hub     *hub

	// mu guards c. Readers take it shared; the loop takes it exclusively
	// while it applies events and commits what they changed, so readers
	// only ever see committed state.
	mu    sync.RWMutex
	c     *controller.Controller
	stale bool // the controller is ahead of the store: rebuild before use
	ready bool

	ops     chan *op
	kick    chan struct{}
	streams *streams
	beats   *beatBuffer
	prov    providerState
}

// New loads the state from the store into a controller. Call Serve to start
// serving.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("server: Options.Store is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registerer == nil {
		reg := prometheus.NewRegistry()
		o.Registerer, o.Gatherer = reg, reg
	}
	if o.Gatherer == nil {
		if g, ok := o.Registerer.(prometheus.Gatherer); ok {
			o.Gatherer = g
		} else {
			o.Gatherer = prometheus.DefaultGatherer
		}
	}
	if err := o.NodeProvider.normalize(); err != nil {
		return nil, err
	}
	cc := o.Controller
	if o.RightSizer != nil {
		cc.Predictor = o.RightSizer.Predictor()
	}
	if cc.MaxPlacePerRound == 0 {
		cc.MaxPlacePerRound = placePerRound
	}
	cc.Provider.Enabled = o.NodeProvider.Command != ""
	cc.Provider.Cooldown, cc.Provider.RemovalDelay = o.NodeProvider.Cooldown, o.NodeProvider.RemovalDelay
	c, err := controller.New(cc)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	o.Controller = c.Config()
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = max(o.Controller.HeartbeatTimeout/3, time.Second)
	}
	s := &Server{o: o, st: o.Store, log: o.Logger, now: o.Now, hub: newHub(), c: c,
		ops: make(chan *op, 4096), kick: make(chan struct{}, 1), streams: newStreams(), beats: newBeats()}
	if o.RightSizer != nil {
		s.wireRightSizer(ctx)
	}
	m, err := newAPIMetrics(o.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if err := s.initAutoscale(o.Registerer); err != nil {
		return nil, err
	}
	if err := s.restore(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// restore rebuilds the controller from the store. Caller holds mu, or is New.
func (s *Server) restore(ctx context.Context) error {
	snap, err := s.st.Load(ctx)
	if err != nil {
		return err
	}
	var cs controller.Snapshot
	for _, j := range snap.Jobs {
		cs.Jobs = append(cs.Jobs, jobFromRecord(j))
	}
	for _, t := range snap.Tasks {
		cs.Tasks = append(cs.Tasks, taskFromRecord(t))
	}
	for _, n := range snap.Nodes {
		cs.Nodes = append(cs.Nodes, nodeFromRecord(n))
	}
	for _, g := range snap.Copies {
		cs.Ghosts = append(cs.Ghosts, copyFromRecord(g))
	}
	cs.Names = snap.JobNames
	for _, w := range s.c.Restore(cs, s.now()) {
		s.log.Warn("restore: " + w)
	}
	s.stale = false
	names := make([]string, 0, len(snap.Nodes))
	for _, n := range snap.Nodes {
		names = append(names, n.GetName())
	}
	s.beats.setKnown(names)
	s.log.Info("state loaded", "jobs", len(snap.Jobs), "tasks", len(snap.Tasks), "nodes", len(snap.Nodes),
		"copies", len(snap.Copies), "revision", snap.Revision, "failover_grace", s.o.Controller.FailoverGrace)
	return nil
}

// Run drives the background loops (the control loop, right-sizing, the node
// provider) until ctx ends.
func (s *Server) Run(ctx context.Context) {
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(s.loop)
	if s.o.RightSizer != nil {
		run(s.rightsizeLoop)
	}
	wg.Wait()
	s.prov.wg.Wait()
}

// Kick asks the control loop for a round soon.
func (s *Server) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newID returns "<name>-<8 random characters>".
func newID(name string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return name + "-" + string(b)
}

// TaskID is the stable id of task index idx of a job.
func TaskID(jobID string, idx int32) string { return controller.TaskID(jobID, idx) }
