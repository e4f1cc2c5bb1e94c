package server

import (
	"context"
	"net"
	"regexp"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/scheduler"
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
	pr, err := scheduler.ParsePortRange(req.GetPortRange())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "port_range: %v", err)
	}
	info := controller.NodeInfo{Name: req.GetName(), CPU: req.GetCpuCores(), Memory: req.GetMemoryBytes(), Labels: req.GetLabels(),
		Enforcement: req.GetEnforcement(), AgentAddress: req.GetAgentAddress(), Version: req.GetVersion(), PortRange: pr}
	changed := false
	err = s.do(ctx, func(c *controller.Controller, now time.Time) error {
		var err error
		changed, err = c.Register(info, now)
		return controllerErr(err)
	})
	if err != nil {
		return nil, err
	}
	s.beats.add(info.Name)
	if changed {
		s.log.Info("node registered", "node", info.Name, "cpu", info.CPU, "memory", info.Memory, "agent", info.AgentAddress)
		s.Kick()
	}
	return &fathomv1.RegisterNodeResponse{
		NodeId:                   info.Name,
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

// Heartbeat records liveness and usage, coalesced (beats.go): the loop
// applies the latest of each node with its next step. It writes to etcd
// only when a down node comes back.
func (s *Server) Heartbeat(_ context.Context, req *fathomv1.HeartbeatRequest) (*fathomv1.HeartbeatResponse, error) {
	u := controller.Usage{CPUUsed: req.GetCpuUsedCores(), MemoryUsed: req.GetMemoryUsedBytes(),
		MemoryAvailable: req.GetMemoryAvailableBytes(), MemoryPressure: req.GetMemoryPressure(),
		TasksCPUUsed: req.GetTaskCpuUsedCores(), TasksMemoryUsed: req.GetTaskMemoryUsedBytes()}
	known := s.beats.record(req.GetNodeId(), u, s.now())
	return &fathomv1.HeartbeatResponse{Reregister: !known}, nil
}

// StreamAssignments sends the node's desired set as per-task changes: every
// assignment on connect (and whenever the stream fell behind), then
// `synced`, then each change as the loop commits it.
func (s *Server) StreamAssignments(req *fathomv1.WatchAssignmentsRequest, stream grpc.ServerStreamingServer[fathomv1.AssignmentUpdate]) error {
	node := req.GetNodeId()
	s.mu.RLock()
	_, known := s.c.NodeByName(node)
	s.mu.RUnlock()
	if !known {
		return status.Errorf(codes.NotFound, "node %q is not registered; call Register first", node)
	}
	ns := s.streams.attach(node)
	defer s.streams.detach(ns)
	var rev int64
	send := func(u *fathomv1.AssignmentUpdate) error {
		rev++
		u.Revision = rev
		return stream.Send(u)
	}
	ctx := stream.Context()
	for {
		if ns.takeResync() {
			s.mu.RLock()
			set := s.c.NodeAssignments(node)
			s.mu.RUnlock()
			if err := send(&fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Reset_{Reset_: true}}); err != nil {
				return err
			}
			for i := range set {
				if err := send(&fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Upsert{Upsert: assignmentProto(&set[i])}}); err != nil {
					return err
				}
			}
			if err := send(&fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Synced{Synced: true}}); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ns.closed:
			return status.Error(codes.Aborted, "another stream of this node took over")
		case <-ns.wake:
		case ch := <-ns.changes:
			u := &fathomv1.AssignmentUpdate{Change: &fathomv1.AssignmentUpdate_Remove{Remove: ch.TaskID}}
			if ch.Assignment != nil {
				u.Change = &fathomv1.AssignmentUpdate_Upsert{Upsert: assignmentProto(ch.Assignment)}
			}
			if err := send(u); err != nil {
				return err
			}
		}
	}
}

// ReportTaskStatus applies what an agent observed. Reports about tasks the
// node does not hold are ignored (the agent stops them: they are not in its
// set). Unchanged reports cause no write.
func (s *Server) ReportTaskStatus(ctx context.Context, req *fathomv1.ReportTaskStatusRequest) (*fathomv1.ReportTaskStatusResponse, error) {
	sts := make([]controller.Status, 0, len(req.GetStatuses()))
	for _, p := range req.GetStatuses() {
		sts = append(sts, statusFromProto(p))
	}
	err := s.do(ctx, func(c *controller.Controller, now time.Time) error {
		return controllerErr(c.Report(req.GetNodeId(), sts, now))
	})
	if err != nil {
		return nil, err
	}
	s.Kick()
	return &fathomv1.ReportTaskStatusResponse{}, nil
}
