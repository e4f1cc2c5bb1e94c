package server

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/scheduler"
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
	// HeartbeatTimeout: a node without a heartbeat for this long is down and
	// its tasks are lost. Default 10 s.
	HeartbeatTimeout time.Duration
	// HeartbeatInterval told to agents. Default HeartbeatTimeout/3.
	HeartbeatInterval time.Duration
	// RemoteWriteURL told to agents. When empty and RemoteWriteHTTPPort is
	// set, agents are told http://<host they dialled>:<RemoteWriteHTTPPort>/api/v1/write
	// (the embedded TSDB behind this server's HTTP port); when both are empty,
	// "" (the agent's own default).
	RemoteWriteURL      string
	RemoteWriteHTTPPort string
	// OverloadRisk is ε, the scheduler's overload bound (0 = 0.001).
	OverloadRisk float64
	// Reconcile tunes the reconcile loop (reconcile.go): partition rate
	// limit, moves, consolidation. Zero fields take the scheduler's
	// defaults; HeartbeatTimeout and OverloadRisk above override theirs.
	Reconcile scheduler.ReconcileOptions
	// RightSizer, when set, runs the right-sizing loop, sizes new tasks,
	// raises memory after OOM kills and serves the recommendation and model
	// services (see rightsizing.go, registry.go).
	RightSizer *RightSizer
	// Recommendations and Models serve those services; nil = UNIMPLEMENTED
	// with a message saying the predictor is not wired in.
	Recommendations fathomv1.RecommendationServiceServer
	Models          fathomv1.ModelServiceServer
	// NodeProvider is the hook that adds and removes machines on the
	// scheduler's autoscaling report (autoscale.go); zero = report only.
	NodeProvider NodeProviderOptions
	// Logger; nil = slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil = time.Now. Tests set it.
	Now func() time.Time
}

// Server is the control plane. Create with New, run with Serve.
type Server struct {
	fathomv1.UnimplementedJobServiceServer
	fathomv1.UnimplementedNodeServiceServer
	fathomv1.UnimplementedAgentServiceServer

	o       Options
	st      *store.Store
	log     *slog.Logger
	now     func() time.Time
	sizer   Sizer // sizes waiting tasks (nil = DefaultSizer)
	metrics *apiMetrics
	hub     *hub
	kick    chan struct{}

	// wmu serializes every mutation of existing state (tasks, nodes, stops)
	// across its etcd commit, so that changes are computed from what is
	// installed. CreateJob only inserts and does not take it.
	wmu sync.Mutex
	// mu guards the maps below and the messages they point to. Installed
	// messages are never modified in place: a change installs a new message.
	mu      sync.RWMutex
	jobs    map[string]*jobEntry
	nodes   map[string]*nodeEntry
	byNode  map[string]map[string]struct{} // node name -> task ids placed there
	noNodes string                         // why nothing can be placed at all ("" = nodes exist)
	rc      reconcileState                 // the reconcile loop's memory (reconcile.go)
	ready   bool

	// autoscale is the latest autoscaling report (autoscale.go).
	autoscale autoscaleState
}

type jobEntry struct {
	job      *fathomv1.Job
	tasks    []*fathomv1.Task // len = replicas; nil = never placed
	nameHeld bool
	// why pending tasks still wait, by task index (memory only; from the
	// last reconcile round)
	waits map[int32]string
}

type nodeEntry struct {
	node     *fathomv1.Node
	lastSeen time.Time
	rev      int64
	watchers map[chan struct{}]struct{}
}

// New loads the state from the store. Call Serve to start serving.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("server: Options.Store is required")
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 10 * time.Second
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = max(o.HeartbeatTimeout/3, time.Second)
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
	s := &Server{
		o: o, st: o.Store, log: o.Logger, now: o.Now,
		hub: newHub(), kick: make(chan struct{}, 1),
		jobs: map[string]*jobEntry{}, nodes: map[string]*nodeEntry{},
		byNode: map[string]map[string]struct{}{},
	}
	if o.RightSizer != nil {
		s.sizer = o.RightSizer
	}
	if err := s.initReconcile(); err != nil {
		return nil, err
	}
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
	snap, err := s.st.Load(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	for _, j := range snap.Jobs {
		e := &jobEntry{job: j, tasks: make([]*fathomv1.Task, j.GetSpec().GetReplicas())}
		e.nameHeld = snap.JobNames[j.GetNamespace()+"/"+j.GetName()] == j.GetId()
		s.jobs[j.GetId()] = e
	}
	for _, t := range snap.Tasks {
		e := s.jobs[t.GetJobId()]
		if e == nil || int(t.GetIndex()) >= len(e.tasks) {
			s.log.Warn("ignoring task without its job", "task", t.GetId())
			continue
		}
		e.tasks[t.GetIndex()] = t
		if t.GetNode() != "" {
			s.indexNode(t.GetNode(), t.GetId(), true)
		}
	}
	for _, n := range snap.Nodes {
		// Nodes get one heartbeat timeout of grace after a restart of the
		// control plane before they are declared down.
		s.nodes[n.GetName()] = &nodeEntry{node: n, lastSeen: now, rev: snap.Revision, watchers: map[chan struct{}]struct{}{}}
	}
	s.log.Info("state loaded", "jobs", len(snap.Jobs), "tasks", len(snap.Tasks), "nodes", len(snap.Nodes), "revision", snap.Revision)
	return s, nil
}

func (s *Server) indexNode(node, taskID string, add bool) {
	m := s.byNode[node]
	if add {
		if m == nil {
			m = map[string]struct{}{}
			s.byNode[node] = m
		}
		m[taskID] = struct{}{}
		return
	}
	delete(m, taskID)
}

// Run drives the background loops (reconcile, cron, right-sizing) until
// ctx ends.
func (s *Server) Run(ctx context.Context) {
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.reconcileLoop(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.cronLoop(ctx) }()
	if s.o.RightSizer != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.rightsizeLoop(ctx) }()
	}
	if s.o.NodeProvider.Command != "" {
		wg.Add(1)
		go func() { defer wg.Done(); s.autoscaleLoop(ctx) }()
	}
	wg.Wait()
}

// Kick asks the reconcile loop for a round soon.
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
func TaskID(jobID string, idx int32) string { return jobID + "-" + strconv.Itoa(int(idx)) }

// splitTaskID inverts TaskID.
func splitTaskID(id string) (jobID string, idx int32, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(id[i+1:], 10, 32)
	if err != nil || n < 0 {
		return "", 0, false
	}
	return id[:i], int32(n), true
}

func terminal(st fathomv1.TaskState) bool {
	switch st {
	case fathomv1.TaskState_TASK_STATE_SUCCEEDED, fathomv1.TaskState_TASK_STATE_FAILED, fathomv1.TaskState_TASK_STATE_STOPPED:
		return true
	}
	return false
}

// needsPlacement: the slot has no node and should run.
func needsPlacement(e *jobEntry, t *fathomv1.Task) bool {
	if e.job.GetStopRequested() || (isCron(e.job) && e.job.GetLastRunAt() == nil) {
		return false
	}
	if t == nil {
		return true
	}
	return t.GetState() == fathomv1.TaskState_TASK_STATE_PENDING || t.GetState() == fathomv1.TaskState_TASK_STATE_LOST
}

// StateName is the short lower-case name of a task state ("running").
func StateName(st fathomv1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "TASK_STATE_"))
}

// JobStateName is the short lower-case name of a job state.
func JobStateName(st fathomv1.JobState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "JOB_STATE_"))
}

// taskView returns the task at slot i as clients see it; a never-placed slot
// is synthesized. Caller holds mu (read).
func (s *Server) taskView(e *jobEntry, i int) *fathomv1.Task {
	if t := e.tasks[i]; t != nil {
		// Pending and lost tasks say why they wait; a placed or running one
		// whose grown request was left as is says why (reconcile.go).
		why := s.waitReason(e, i)
		if st := t.GetState(); st != fathomv1.TaskState_TASK_STATE_PENDING && st != fathomv1.TaskState_TASK_STATE_LOST {
			why = e.waits[int32(i)]
		}
		if !terminal(t.GetState()) && why != "" {
			c := proto.Clone(t).(*fathomv1.Task)
			c.Reason = strings.TrimSuffix(c.GetReason(), ".") + "; " + why
			return c
		}
		return t
	}
	j := e.job
	t := &fathomv1.Task{
		Id: TaskID(j.GetId(), int32(i)), JobId: j.GetId(), Namespace: j.GetNamespace(), JobName: j.GetName(),
		Index: int32(i), State: fathomv1.TaskState_TASK_STATE_PENDING, UpdatedAt: j.GetCreatedAt(),
		Reason: "waiting for a node", DesiredState: fathomv1.DesiredState_DESIRED_STATE_RUN,
	}
	if isCron(j) && j.GetLastRunAt() == nil {
		t.Reason = "waiting for the schedule: first run at " + nextRun(j).UTC().Format(time.RFC3339)
	} else if why := s.waitReason(e, i); why != "" {
		t.Reason = "waiting for a node: " + why
	}
	if j.GetStopRequested() {
		t.State = fathomv1.TaskState_TASK_STATE_STOPPED
		t.DesiredState = fathomv1.DesiredState_DESIRED_STATE_STOP
		t.Reason = "job stopped before the task was placed"
		t.UpdatedAt = j.GetStoppedAt()
	}
	return t
}

// waitReason says why task i of a job waits. Caller holds mu (read).
func (s *Server) waitReason(e *jobEntry, i int) string {
	if s.noNodes != "" {
		return s.noNodes
	}
	return e.waits[int32(i)]
}

// jobState derives a job's state from its tasks. Caller holds mu (read).
func (s *Server) jobState(e *jobEntry) (fathomv1.JobState, map[string]int32) {
	counts := map[string]int32{}
	var active, failed, done int
	for i := range e.tasks {
		st := fathomv1.TaskState_TASK_STATE_PENDING
		if t := e.tasks[i]; t != nil {
			st = t.GetState()
		} else if e.job.GetStopRequested() {
			st = fathomv1.TaskState_TASK_STATE_STOPPED
		}
		counts[StateName(st)]++
		switch st {
		case fathomv1.TaskState_TASK_STATE_PLACED, fathomv1.TaskState_TASK_STATE_RUNNING, fathomv1.TaskState_TASK_STATE_LOST:
			active++
		case fathomv1.TaskState_TASK_STATE_FAILED:
			failed++
			done++
		case fathomv1.TaskState_TASK_STATE_SUCCEEDED, fathomv1.TaskState_TASK_STATE_STOPPED:
			done++
		}
	}
	switch {
	case e.job.GetStopRequested():
		return fathomv1.JobState_JOB_STATE_STOPPED, counts
	case isCron(e.job) && active == 0:
		// Between runs a cron job waits for its schedule.
		return fathomv1.JobState_JOB_STATE_PENDING, counts
	case len(e.tasks) > 0 && done == len(e.tasks) && failed > 0:
		return fathomv1.JobState_JOB_STATE_FAILED, counts
	case len(e.tasks) > 0 && done == len(e.tasks):
		return fathomv1.JobState_JOB_STATE_SUCCEEDED, counts
	case active > 0:
		return fathomv1.JobState_JOB_STATE_RUNNING, counts
	}
	return fathomv1.JobState_JOB_STATE_PENDING, counts
}

// jobView returns the job as clients see it. Caller holds mu (read).
func (s *Server) jobView(e *jobEntry) *fathomv1.Job {
	j := proto.Clone(e.job).(*fathomv1.Job)
	j.State, j.TaskCounts = s.jobState(e)
	if isCron(j) && !j.GetStopRequested() {
		j.NextRunAt = timestamppb.New(nextRun(j))
	}
	return j
}

func (s *Server) sortedJobs(filter func(*jobEntry) bool) []*jobEntry {
	var out []*jobEntry
	for _, e := range s.jobs {
		if filter(e) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(a, b int) bool {
		ta, tb := out[a].job.GetCreatedAt().AsTime(), out[b].job.GetCreatedAt().AsTime()
		if !ta.Equal(tb) {
			return ta.Before(tb)
		}
		return out[a].job.GetId() < out[b].job.GetId()
	})
	return out
}

// batch is a set of changes committed to etcd together and then installed.
type batch struct {
	tasks   []*fathomv1.Task
	jobs    []*fathomv1.Job
	nodes   []*fathomv1.Node
	release []*jobEntry // give the job name back
	// ghosts are copies of tasks left on (or removed from) other nodes'
	// assignment sets (reconcile.go); memory only.
	ghosts []ghostChange
}

func (b *batch) empty() bool {
	return len(b.tasks) == 0 && len(b.jobs) == 0 && len(b.nodes) == 0 && len(b.release) == 0 && len(b.ghosts) == 0
}

// commit writes b to etcd and then installs it in memory, notifies the
// affected nodes' assignment watchers and publishes events. Caller holds wmu.
func (s *Server) commit(ctx context.Context, b *batch) error {
	if b.empty() {
		return nil
	}
	ops := make([]store.Op, 0, len(b.tasks)+len(b.jobs)+len(b.nodes)+len(b.release))
	for _, j := range b.jobs {
		ops = append(ops, store.PutJob(j))
	}
	for _, t := range b.tasks {
		ops = append(ops, store.PutTask(t))
	}
	for _, n := range b.nodes {
		ops = append(ops, store.PutNode(n))
	}
	for _, e := range b.release {
		ops = append(ops, store.Delete(store.JobNameKey(e.job.GetNamespace(), e.job.GetName())))
	}
	rev, err := s.st.Commit(ctx, ops...)
	if err != nil {
		return err
	}
	touchedNodes := map[string]bool{}
	touchedJobs := map[string]*jobEntry{}
	s.mu.Lock()
	for _, j := range b.jobs {
		if e := s.jobs[j.GetId()]; e != nil {
			e.job = j
			touchedJobs[j.GetId()] = e
			for i := range e.tasks {
				if t := e.tasks[i]; t != nil && t.GetNode() != "" {
					touchedNodes[t.GetNode()] = true
				}
			}
		}
	}
	for _, t := range b.tasks {
		e := s.jobs[t.GetJobId()]
		if e == nil {
			continue
		}
		old := e.tasks[t.GetIndex()]
		if old != nil && old.GetNode() != "" {
			touchedNodes[old.GetNode()] = true
			if old.GetNode() != t.GetNode() {
				s.indexNode(old.GetNode(), t.GetId(), false)
			}
		}
		if t.GetNode() != "" {
			touchedNodes[t.GetNode()] = true
			s.indexNode(t.GetNode(), t.GetId(), true)
		}
		e.tasks[t.GetIndex()] = t
		touchedJobs[t.GetJobId()] = e
	}
	for _, n := range b.nodes {
		ne := s.nodes[n.GetName()]
		if ne == nil {
			ne = &nodeEntry{watchers: map[chan struct{}]struct{}{}, lastSeen: s.now()}
			s.nodes[n.GetName()] = ne
		}
		ne.node = n
		touchedNodes[n.GetName()] = true
	}
	for _, e := range b.release {
		e.nameHeld = false
	}
	s.installGhosts(b, touchedNodes)
	var watchers []chan struct{}
	for name := range touchedNodes {
		if ne := s.nodes[name]; ne != nil {
			ne.rev = rev
			for w := range ne.watchers {
				watchers = append(watchers, w)
			}
		}
	}
	var events []event
	for _, e := range touchedJobs {
		events = append(events, event{job: &fathomv1.JobEvent{Type: fathomv1.EventType_EVENT_TYPE_UPDATED, Job: s.jobView(e)}})
	}
	for _, t := range b.tasks {
		if e := s.jobs[t.GetJobId()]; e != nil {
			events = append(events, event{task: &fathomv1.TaskEvent{Type: fathomv1.EventType_EVENT_TYPE_UPDATED, Task: s.taskView(e, int(t.GetIndex()))}})
		}
	}
	s.mu.Unlock()
	for _, w := range watchers {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	s.hub.publish(events...)
	return nil
}

// withHistory returns t with a transition appended (bounded to the last 10).
func withHistory(t *fathomv1.Task, now time.Time, msg string) *fathomv1.Task {
	t.UpdatedAt = timestamppb.New(now)
	t.Reason = msg
	h := append(t.History, &fathomv1.TaskTransition{Time: t.UpdatedAt, State: t.GetState(), Node: t.GetNode(), Message: msg})
	if len(h) > 10 {
		h = h[len(h)-10:]
	}
	t.History = h
	return t
}

// newTaskRecord returns a mutable copy of slot i (a fresh record for a
// never-placed slot). Caller holds mu (read).
func (s *Server) newTaskRecord(e *jobEntry, i int) *fathomv1.Task {
	if t := e.tasks[i]; t != nil {
		return proto.Clone(t).(*fathomv1.Task)
	}
	j := e.job
	return &fathomv1.Task{
		Id: TaskID(j.GetId(), int32(i)), JobId: j.GetId(), Namespace: j.GetNamespace(), JobName: j.GetName(),
		Index: int32(i), State: fathomv1.TaskState_TASK_STATE_PENDING, DesiredState: fathomv1.DesiredState_DESIRED_STATE_RUN,
	}
}

// maybeRelease adds the job's name to b.release when the job is finished
// after b's task changes. Caller holds mu (read).
func (s *Server) maybeRelease(b *batch, e *jobEntry, changed map[int32]*fathomv1.Task) {
	if !e.nameHeld || isCron(e.job) {
		return // cron jobs end only when stopped
	}
	for i := range e.tasks {
		t := e.tasks[i]
		if c, ok := changed[int32(i)]; ok {
			t = c
		}
		if t == nil || !terminal(t.GetState()) {
			return
		}
	}
	if len(e.tasks) == 0 && e.job.GetSpec().GetType() == "service" {
		return
	}
	b.release = append(b.release, e)
}
