package server

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

var nodeName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// Register records a node (idempotent). The node id is its name.
func (s *Server) Register(ctx context.Context, req *fathomv1.RegisterNodeRequest) (*fathomv1.RegisterNodeResponse, error) {
	switch {
	case len(req.GetName()) > 253 || !nodeName.MatchString(req.GetName()):
		return nil, status.Errorf(codes.InvalidArgument, "name %q is not a node name: use lower-case letters, digits, '-' and '.' (a host name)", req.GetName())
	case req.GetCpuCores() <= 0:
		return nil, status.Errorf(codes.InvalidArgument, "cpu_cores must be > 0, got %v", req.GetCpuCores())
	case req.GetMemoryBytes() <= 0:
		return nil, status.Errorf(codes.InvalidArgument, "memory_bytes must be > 0, got %d", req.GetMemoryBytes())
	}
	switch req.GetEnforcement() {
	case "cgroup2", "cgroup1", "none", "":
	default:
		return nil, status.Errorf(codes.InvalidArgument, "enforcement %q: allowed cgroup2, cgroup1, none", req.GetEnforcement())
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now := s.now()
	s.mu.Lock()
	ne := s.nodes[req.GetName()]
	var n *fathomv1.Node
	if ne == nil {
		n = &fathomv1.Node{Id: req.GetName(), Name: req.GetName(), Schedulable: true, RegisteredAt: timestamppb.New(now)}
	} else {
		n = proto.Clone(ne.node).(*fathomv1.Node)
		ne.lastSeen = now
	}
	old := proto.Clone(n).(*fathomv1.Node)
	n.State = fathomv1.NodeState_NODE_STATE_UP
	n.CpuCores, n.MemoryBytes, n.Labels = req.GetCpuCores(), req.GetMemoryBytes(), req.GetLabels()
	n.Enforcement, n.AgentAddress, n.Version = req.GetEnforcement(), req.GetAgentAddress(), req.GetVersion()
	n.LastHeartbeat = timestamppb.New(now)
	changed := ne == nil || !sameNodeRecord(old, n)
	s.mu.Unlock()
	if changed {
		if ne == nil || old.GetState() != fathomv1.NodeState_NODE_STATE_UP {
			n.RegisteredAt = timestamppb.New(now)
		}
		if err := s.commit(ctx, &batch{nodes: []*fathomv1.Node{persistedNode(n)}}); err != nil {
			return nil, status.Errorf(codes.Unavailable, "node not stored: %v", err)
		}
		s.mu.Lock()
		s.nodes[n.GetName()].lastSeen = now
		s.mu.Unlock()
		s.log.Info("node registered", "node", n.GetName(), "cpu", n.GetCpuCores(), "memory", n.GetMemoryBytes(), "agent", n.GetAgentAddress())
		s.Kick()
	}
	return &fathomv1.RegisterNodeResponse{
		NodeId:                   n.GetName(),
		HeartbeatIntervalSeconds: int32(max(s.o.HeartbeatInterval/time.Second, 1)),
		RemoteWriteUrl:           s.remoteWriteURL(ctx),
		MaxPushIntervalSeconds:   s.maxPushInterval().Seconds(),
	}, nil
}

// maxPushInterval is how often, at least, agents must push usage: a third
// of the right-sizer's usage window, so that every window holds several
// pushes whatever an agent's --push-interval; 0 without a right-sizer.
func (s *Server) maxPushInterval() time.Duration {
	if s.o.RightSizer == nil {
		return 0
	}
	return s.o.RightSizer.Predictor().Window() / 3
}

// remoteWriteURL is where an agent should push usage: Options.RemoteWriteURL,
// or this server's HTTP port on the host the agent dialled (so it works from
// other machines without configuration).
func (s *Server) remoteWriteURL(ctx context.Context) string {
	if s.o.RemoteWriteURL != "" || s.o.RemoteWriteHTTPPort == "" {
		return s.o.RemoteWriteURL
	}
	host := "127.0.0.1"
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if a := md.Get(":authority"); len(a) > 0 {
			if h, _, err := net.SplitHostPort(a[0]); err == nil && h != "" {
				host = h
			}
		}
	}
	return "http://" + net.JoinHostPort(host, s.o.RemoteWriteHTTPPort) + "/api/v1/write"
}

// persistedNode drops the fields that live only in memory (usage, last
// heartbeat), so that heartbeats never need an etcd write.
func persistedNode(n *fathomv1.Node) *fathomv1.Node {
	c := proto.Clone(n).(*fathomv1.Node)
	c.LastHeartbeat, c.CpuUsedCores, c.MemoryUsedBytes, c.MemoryAvailableBytes, c.MemoryPressure = nil, 0, 0, 0, false
	c.CpuRequestedCores, c.MemoryRequestedBytes, c.TaskCount = 0, 0, 0
	c.TaskCpuUsedCores, c.TaskMemoryUsedBytes = 0, 0
	return c
}

func sameNodeRecord(a, b *fathomv1.Node) bool {
	return proto.Equal(persistedNode(a), persistedNode(b))
}

// Heartbeat records liveness and usage in memory. It writes to etcd only when
// a down node comes back.
func (s *Server) Heartbeat(ctx context.Context, req *fathomv1.HeartbeatRequest) (*fathomv1.HeartbeatResponse, error) {
	now := s.now()
	s.mu.Lock()
	ne := s.nodes[req.GetNodeId()]
	if ne == nil {
		s.mu.Unlock()
		return &fathomv1.HeartbeatResponse{Reregister: true}, nil
	}
	ne.lastSeen = now
	down := ne.node.GetState() != fathomv1.NodeState_NODE_STATE_UP
	// Usage fields are memory-only; install a new message (never mutate an
	// installed one: readers may hold it).
	n := proto.Clone(ne.node).(*fathomv1.Node)
	n.LastHeartbeat = timestamppb.New(now)
	n.CpuUsedCores, n.MemoryUsedBytes = req.GetCpuUsedCores(), req.GetMemoryUsedBytes()
	n.MemoryAvailableBytes, n.MemoryPressure = req.GetMemoryAvailableBytes(), req.GetMemoryPressure()
	n.TaskCpuUsedCores, n.TaskMemoryUsedBytes = req.GetTaskCpuUsedCores(), req.GetTaskMemoryUsedBytes()
	ne.node = n
	s.mu.Unlock()
	if down {
		// The node is back. Its tasks were lost: its assignment set holds
		// only the copies whose replacements do not run yet (ghosts); the
		// reconcile loop adopts or stops them.
		s.wmu.Lock()
		defer s.wmu.Unlock()
		s.mu.RLock()
		c := proto.Clone(s.nodes[req.GetNodeId()].node).(*fathomv1.Node)
		s.mu.RUnlock()
		if c.GetState() != fathomv1.NodeState_NODE_STATE_UP {
			c.State = fathomv1.NodeState_NODE_STATE_UP
			if err := s.commit(ctx, &batch{nodes: []*fathomv1.Node{c}}); err != nil {
				return nil, status.Errorf(codes.Unavailable, "node state not stored: %v", err)
			}
			s.log.Info("node is up again", "node", c.GetName())
			s.Kick()
		}
	}
	return &fathomv1.HeartbeatResponse{}, nil
}

// assignmentSet is the full desired set for a node: the tasks placed there,
// plus copies of tasks that moved away but whose new placement does not run
// yet (ghosts, reconcile.go), so that a node that returns from a partition
// keeps serving them until their replacements are up. Caller holds mu (read).
func (s *Server) assignmentSet(node string) *fathomv1.AssignmentSet {
	ne := s.nodes[node]
	set := &fathomv1.AssignmentSet{Revision: ne.rev}
	for id := range s.byNode[node] {
		jobID, idx, _ := splitTaskID(id)
		e := s.jobs[jobID]
		if e == nil {
			continue
		}
		t := e.tasks[idx]
		if t == nil || t.GetNode() != node || terminal(t.GetState()) {
			continue
		}
		if st := t.GetState(); st != fathomv1.TaskState_TASK_STATE_PLACED && st != fathomv1.TaskState_TASK_STATE_RUNNING {
			continue
		}
		set.Assignments = append(set.Assignments, assignmentOf(e, t))
	}
	for id, m := range s.rc.ghosts {
		if g := m[node]; g != nil && s.ghostLive(id, node) {
			if e := s.jobs[g.GetJobId()]; e != nil {
				a := assignmentOf(e, g)
				a.DesiredState = fathomv1.DesiredState_DESIRED_STATE_KEEP
				set.Assignments = append(set.Assignments, a)
			}
		}
	}
	sort.Slice(set.Assignments, func(a, b int) bool { return set.Assignments[a].GetTaskId() < set.Assignments[b].GetTaskId() })
	return set
}

// assignmentOf is task record t of job e as an agent runs it.
func assignmentOf(e *jobEntry, t *fathomv1.Task) *fathomv1.Assignment {
	spec := e.job.GetSpec()
	return &fathomv1.Assignment{
		TaskId: t.GetId(), JobId: t.GetJobId(), Namespace: t.GetNamespace(), JobName: t.GetJobName(),
		TaskIndex: t.GetIndex(), Command: spec.GetTask().GetCommand(), Env: spec.GetTask().GetEnv(),
		User: spec.GetTask().GetUser(), JobType: spec.GetType(), Priority: spec.GetPriority(),
		CpuRequestCores: t.GetCpuRequestCores(), CpuLimitCores: t.GetCpuLimitCores(),
		MemoryRequestBytes: t.GetMemoryRequestBytes(), MemoryLimitBytes: t.GetMemoryLimitBytes(),
		DesiredState: t.GetDesiredState(), Generation: t.GetGeneration(),
	}
}

// WatchAssignments sends the node's full desired set on connect and after
// every change (level-triggered).
func (s *Server) WatchAssignments(req *fathomv1.WatchAssignmentsRequest, stream grpc.ServerStreamingServer[fathomv1.AssignmentSet]) error {
	node := req.GetNodeId()
	w := make(chan struct{}, 1)
	s.mu.Lock()
	ne := s.nodes[node]
	if ne == nil {
		s.mu.Unlock()
		return status.Errorf(codes.NotFound, "node %q is not registered; call Register first", node)
	}
	ne.watchers[w] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.nodes[node].watchers, w)
		s.mu.Unlock()
	}()
	var last int64 = -1
	for {
		s.mu.RLock()
		set := s.assignmentSet(node)
		s.mu.RUnlock()
		if set.GetRevision() != last {
			if err := stream.Send(set); err != nil {
				return err
			}
			last = set.GetRevision()
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-w:
		}
	}
}

// ReportTaskStatus applies what an agent observed. Reports about tasks the
// node no longer holds are ignored (the agent will stop them, since they are
// not in its assignment set). Unchanged reports cause no write.
func (s *Server) ReportTaskStatus(ctx context.Context, req *fathomv1.ReportTaskStatusRequest) (*fathomv1.ReportTaskStatusResponse, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now := s.now()
	node := req.GetNodeId()
	b := &batch{}
	changedByJob := map[*jobEntry]map[int32]*fathomv1.Task{}
	s.mu.RLock()
	if s.nodes[node] == nil {
		s.mu.RUnlock()
		return nil, status.Errorf(codes.NotFound, "node %q is not registered; call Register first", node)
	}
	for _, st := range req.GetStatuses() {
		jobID, idx, ok := splitTaskID(st.GetTaskId())
		e := s.jobs[jobID]
		if !ok || e == nil || int(idx) >= len(e.tasks) {
			continue
		}
		cur := e.tasks[idx]
		if cur == nil || cur.GetNode() != node || terminal(cur.GetState()) {
			continue
		}
		t := s.onTaskReport(e, cur, applyStatus(proto.Clone(cur).(*fathomv1.Task), st, node, e.job.GetSpec().GetType() == "service", now), st, now)
		if t == nil {
			continue
		}
		b.tasks = append(b.tasks, t)
		if changedByJob[e] == nil {
			changedByJob[e] = map[int32]*fathomv1.Task{}
		}
		changedByJob[e][idx] = t
	}
	var again []*jobEntry
	for e, ch := range changedByJob {
		s.maybeRelease(b, e, ch)
		for _, t := range ch {
			if needsPlacement(e, t) {
				again = append(again, e)
				break
			}
		}
	}
	s.mu.RUnlock()
	if err := s.commit(ctx, b); err != nil {
		return nil, status.Errorf(codes.Unavailable, "status not stored: %v", err)
	}
	if len(again) > 0 {
		s.Kick()
	}
	return &fathomv1.ReportTaskStatusResponse{}, nil
}

// applyStatus returns the new record for a status report, or nil when
// nothing worth storing changed.
//
// A service task that exits (with any code, OOM included) stays placed on
// its node: the agent restarts it after its backoff, and the task is
// running again once it reports so. Only a stop request or a rejection
// ends a service task.
func applyStatus(t *fathomv1.Task, st *fathomv1.TaskStatus, node string, service bool, now time.Time) *fathomv1.Task {
	prev := proto.Clone(t).(*fathomv1.Task)
	msg := st.GetReason()
	switch st.GetState() {
	case fathomv1.TaskState_TASK_STATE_RUNNING:
		t.State = fathomv1.TaskState_TASK_STATE_RUNNING
		if msg == "" {
			msg = "running on " + node
		}
	case fathomv1.TaskState_TASK_STATE_SUCCEEDED:
		t.State = fathomv1.TaskState_TASK_STATE_SUCCEEDED
		if msg == "" {
			msg = "exited 0 on " + node
		}
	case fathomv1.TaskState_TASK_STATE_FAILED:
		t.State = fathomv1.TaskState_TASK_STATE_FAILED
		if msg == "" {
			msg = fmt.Sprintf("exited %d on %s", st.GetExitCode(), node)
			if st.GetOomKilled() {
				msg = "OOM-killed on " + node
			}
		}
	case fathomv1.TaskState_TASK_STATE_REJECTED:
		t.State = fathomv1.TaskState_TASK_STATE_FAILED
		msg = "rejected by node " + node + ": " + msg
	case fathomv1.TaskState_TASK_STATE_STOPPED:
		switch {
		case t.GetDesiredState() == fathomv1.DesiredState_DESIRED_STATE_STOP:
			t.State = fathomv1.TaskState_TASK_STATE_STOPPED
			if msg == "" {
				msg = "stopped on " + node
			}
		default:
			// Stopped without being asked (evicted under pressure, or the
			// agent lost it): place it again.
			what := "stopped on " + node + " without a stop request"
			if st.GetEvicted() {
				what = "evicted from " + node
			}
			if msg != "" {
				what += ": " + msg
			}
			t.State = fathomv1.TaskState_TASK_STATE_PENDING
			t.Node = ""
			msg = what + "; placing it again"
		}
	default:
		return nil
	}
	if service && st.GetState() != fathomv1.TaskState_TASK_STATE_REJECTED && t.GetDesiredState() != fathomv1.DesiredState_DESIRED_STATE_STOP &&
		(t.State == fathomv1.TaskState_TASK_STATE_FAILED || t.State == fathomv1.TaskState_TASK_STATE_SUCCEEDED) {
		t.State = fathomv1.TaskState_TASK_STATE_PLACED // the agent restarts it
	}
	t.Pid, t.ExitCode, t.OomKilled, t.Evicted, t.Restarts = st.GetPid(), st.GetExitCode(), st.GetOomKilled(), st.GetEvicted(), st.GetRestarts()
	if st.GetStartedAt() != nil {
		t.StartedAt = st.GetStartedAt()
	}
	if st.GetFinishedAt() != nil {
		t.FinishedAt = st.GetFinishedAt()
	} else if terminal(t.GetState()) && t.FinishedAt == nil {
		t.FinishedAt = timestamppb.New(now)
	}
	if t.GetState() == prev.GetState() && t.GetPid() == prev.GetPid() && t.GetRestarts() == prev.GetRestarts() &&
		t.GetExitCode() == prev.GetExitCode() && t.GetOomKilled() == prev.GetOomKilled() && t.GetNode() == prev.GetNode() {
		return nil
	}
	if t.GetState() != prev.GetState() || t.GetNode() != prev.GetNode() {
		withHistory(t, now, msg)
	} else {
		t.UpdatedAt = timestamppb.New(now)
		t.Reason = msg
	}
	return t
}
