package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// NodeInfo is what the agent registers.
type NodeInfo struct {
	Name         string
	CPUCores     float64
	MemoryBytes  int64
	Labels       map[string]string
	Enforcement  string // cgroup2 | cgroup1 | none
	AgentAddress string // host:port of the agent's HTTP server
	Version      string
	PortRange    string // "LO-HI" or ""
}

// Registration is the control plane's answer to Register.
type Registration struct {
	NodeID            string
	HeartbeatInterval int32  // seconds; 0 = agent default
	RemoteWriteURL    string // "" = agent default
	// MaxPushInterval: push usage at least this often (0 = no bound).
	MaxPushInterval time.Duration
}

// NodeHeartbeat is the node's liveness and usage: the whole machine's, and
// that of Fathom's running tasks alone (TaskCPUUsedCores, TaskMemoryUsedBytes).
type NodeHeartbeat struct {
	NodeID               string
	CPUUsedCores         float64
	MemoryUsedBytes      int64
	MemoryAvailableBytes int64
	MemoryPressure       bool
	TaskCPUUsedCores     float64
	TaskMemoryUsedBytes  int64
}

// ControlPlane is everything the agent needs from the server. The gRPC
// client below satisfies it; so could any other transport.
type ControlPlane interface {
	Register(ctx context.Context, n NodeInfo) (Registration, error)
	// Heartbeat returns reregister=true when the server does not know the node.
	Heartbeat(ctx context.Context, h NodeHeartbeat) (reregister bool, err error)
	// WatchAssignments calls each with every full desired set until the
	// stream ends or ctx is done; it returns the reason it ended.
	WatchAssignments(ctx context.Context, nodeID string, each func(AssignmentSet)) error
	ReportTaskStatus(ctx context.Context, nodeID string, statuses []TaskStatus) error
}

// reconnectParams keep the connection's own reconnect backoff short: gRPC's
// default grows to 120 s, so an agent whose server was away for 25 s could
// wait tens of seconds more before even trying again, and the restarted
// server would see a healthy node go silent. Capped at 2 s (with jitter), an
// agent is back within a second or two of its server.
var reconnectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// GRPCControlPlane talks to fathom.v1.AgentService.
type GRPCControlPlane struct {
	conn   *grpc.ClientConn
	client fathomv1.AgentServiceClient
}

// DialControlPlane connects (lazily; gRPC reconnects by itself) to the
// control plane's gRPC address. A scheme such as http:// is ignored.
func DialControlPlane(addr string) (*GRPCControlPlane, error) {
	target := addr
	if i := strings.Index(target, "://"); i >= 0 {
		target = target[i+3:]
	}
	target = strings.TrimRight(target, "/")
	if target == "" {
		return nil, fmt.Errorf("--server is empty; give the control plane's gRPC address, e.g. 127.0.0.1:7071")
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithConnectParams(reconnectParams))
	if err != nil {
		return nil, fmt.Errorf("control plane address %q: %w", addr, err)
	}
	return &GRPCControlPlane{conn: conn, client: fathomv1.NewAgentServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *GRPCControlPlane) Close() error { return c.conn.Close() }

func (c *GRPCControlPlane) Register(ctx context.Context, n NodeInfo) (Registration, error) {
	r, err := c.client.Register(ctx, &fathomv1.RegisterNodeRequest{Name: n.Name, CpuCores: n.CPUCores, MemoryBytes: n.MemoryBytes,
		Labels: n.Labels, Enforcement: n.Enforcement, AgentAddress: n.AgentAddress, Version: n.Version, PortRange: n.PortRange})
	if err != nil {
		return Registration{}, err
	}
	return Registration{NodeID: r.GetNodeId(), HeartbeatInterval: r.GetHeartbeatIntervalSeconds(), RemoteWriteURL: r.GetRemoteWriteUrl(),
		MaxPushInterval: time.Duration(r.GetMaxPushIntervalSeconds() * float64(time.Second))}, nil
}

func (c *GRPCControlPlane) Heartbeat(ctx context.Context, h NodeHeartbeat) (bool, error) {
	r, err := c.client.Heartbeat(ctx, &fathomv1.HeartbeatRequest{NodeId: h.NodeID, CpuUsedCores: h.CPUUsedCores,
		MemoryUsedBytes: h.MemoryUsedBytes, MemoryAvailableBytes: h.MemoryAvailableBytes, MemoryPressure: h.MemoryPressure,
		TaskCpuUsedCores: h.TaskCPUUsedCores, TaskMemoryUsedBytes: h.TaskMemoryUsedBytes})
	if err != nil {
		return false, err
	}
	return r.GetReregister(), nil
}

// WatchAssignments reads the node's per-task assignment stream and calls
// each with the whole desired set: once the stream says the set is
// complete (synced), and again after every change. The set is kept here;
// the wire never carries it whole.
func (c *GRPCControlPlane) WatchAssignments(ctx context.Context, nodeID string, each func(AssignmentSet)) error {
	stream, err := c.client.StreamAssignments(ctx, &fathomv1.WatchAssignmentsRequest{NodeId: nodeID})
	if err != nil {
		return err
	}
	var set AssignmentStream
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		if full, ok := set.Apply(m); ok {
			each(full)
		}
	}
}

// AssignmentStream assembles a node's desired set from per-task updates.
// The zero value is ready to use.
type AssignmentStream struct {
	cur     map[string]Assignment
	pending map[string]Assignment // the whole set being (re)sent
	syncing bool
	synced  bool
	rev     int64
}

// Apply takes one update and returns the whole set when it is known: at
// every synced (the end of a (re)send), and after every change from then
// on. During a resend the agent keeps the set it had.
func (s *AssignmentStream) Apply(m *fathomv1.AssignmentUpdate) (AssignmentSet, bool) {
	s.rev = m.GetRevision()
	switch ch := m.GetChange().(type) {
	case *fathomv1.AssignmentUpdate_Reset_:
		s.syncing, s.pending = true, map[string]Assignment{}
		return AssignmentSet{}, false
	case *fathomv1.AssignmentUpdate_Upsert:
		a := AssignmentFromProto(ch.Upsert)
		switch {
		case s.syncing:
			s.pending[a.TaskID] = a
			return AssignmentSet{}, false
		case !s.synced:
			return AssignmentSet{}, false // before any reset: not expected
		}
		s.cur[a.TaskID] = a
	case *fathomv1.AssignmentUpdate_Remove:
		switch {
		case s.syncing:
			delete(s.pending, ch.Remove)
			return AssignmentSet{}, false
		case !s.synced:
			return AssignmentSet{}, false
		}
		delete(s.cur, ch.Remove)
	case *fathomv1.AssignmentUpdate_Synced:
		if !s.syncing {
			return AssignmentSet{}, false
		}
		s.cur, s.pending = s.pending, nil
		s.synced, s.syncing = true, false
	default:
		return AssignmentSet{}, false
	}
	set := AssignmentSet{Revision: s.rev, Assignments: make([]Assignment, 0, len(s.cur))}
	for _, a := range s.cur {
		set.Assignments = append(set.Assignments, a)
	}
	sort.Slice(set.Assignments, func(i, j int) bool { return set.Assignments[i].TaskID < set.Assignments[j].TaskID })
	return set, true
}

func (c *GRPCControlPlane) ReportTaskStatus(ctx context.Context, nodeID string, statuses []TaskStatus) error {
	req := &fathomv1.ReportTaskStatusRequest{NodeId: nodeID, Statuses: make([]*fathomv1.TaskStatus, len(statuses))}
	for i, s := range statuses {
		req.Statuses[i] = TaskStatusToProto(s)
	}
	_, err := c.client.ReportTaskStatus(ctx, req)
	return err
}

// AssignmentFromProto translates one assignment. DESIRED_STATE_UNSPECIFIED
// counts as RUN.
func AssignmentFromProto(a *fathomv1.Assignment) Assignment {
	d := DesiredRun
	switch a.GetDesiredState() {
	case fathomv1.DesiredState_DESIRED_STATE_STOP:
		d = DesiredStop
	case fathomv1.DesiredState_DESIRED_STATE_KEEP:
		d = DesiredKeep
	}
	return Assignment{TaskID: a.GetTaskId(), JobID: a.GetJobId(), Namespace: a.GetNamespace(), JobName: a.GetJobName(),
		TaskIndex: a.GetTaskIndex(), Command: a.GetCommand(), Env: a.GetEnv(), User: a.GetUser(), JobType: a.GetJobType(),
		Priority: a.GetPriority(), CPURequestCores: a.GetCpuRequestCores(), CPULimitCores: a.GetCpuLimitCores(),
		MemoryRequestBytes: a.GetMemoryRequestBytes(), MemoryLimitBytes: a.GetMemoryLimitBytes(), Desired: d, Generation: a.GetGeneration(),
		HealthCheck: checkFromProto(a.GetHealthCheck()), Version: a.GetVersion(), Ports: a.GetPorts()}
}

func checkFromProto(h *fathomv1.HealthCheck) *HealthCheck {
	if h == nil {
		return nil
	}
	iv, _ := time.ParseDuration(h.GetInterval())
	to, _ := time.ParseDuration(h.GetTimeout())
	return &HealthCheck{Command: h.GetCommand(), HTTPPort: h.GetHttp().GetPort(), HTTPPath: h.GetHttp().GetPath(), TCPPort: h.GetTcp().GetPort(),
		Interval: iv, Timeout: to}
}

func checkToProto(h *HealthCheck) *fathomv1.HealthCheck {
	if h == nil {
		return nil
	}
	p := &fathomv1.HealthCheck{Command: h.Command, Interval: h.Interval.String(), Timeout: h.Timeout.String()}
	if h.HTTPPort > 0 {
		p.Http = &fathomv1.HTTPCheck{Port: h.HTTPPort, Path: h.HTTPPath}
	}
	if h.TCPPort > 0 {
		p.Tcp = &fathomv1.TCPCheck{Port: h.TCPPort}
	}
	return p
}

var healthToProto = map[Health]fathomv1.HealthState{
	HealthUnknown: fathomv1.HealthState_HEALTH_STATE_UNKNOWN, HealthHealthy: fathomv1.HealthState_HEALTH_STATE_HEALTHY,
	HealthUnhealthy: fathomv1.HealthState_HEALTH_STATE_UNHEALTHY,
}

// AssignmentToProto is the inverse of AssignmentFromProto (for servers and tests).
func AssignmentToProto(a Assignment) *fathomv1.Assignment {
	d := fathomv1.DesiredState_DESIRED_STATE_RUN
	switch a.Desired {
	case DesiredStop:
		d = fathomv1.DesiredState_DESIRED_STATE_STOP
	case DesiredKeep:
		d = fathomv1.DesiredState_DESIRED_STATE_KEEP
	}
	return &fathomv1.Assignment{TaskId: a.TaskID, JobId: a.JobID, Namespace: a.Namespace, JobName: a.JobName, TaskIndex: a.TaskIndex,
		Command: a.Command, Env: a.Env, User: a.User, JobType: a.JobType, Priority: a.Priority, CpuRequestCores: a.CPURequestCores,
		CpuLimitCores: a.CPULimitCores, MemoryRequestBytes: a.MemoryRequestBytes, MemoryLimitBytes: a.MemoryLimitBytes,
		DesiredState: d, Generation: a.Generation, HealthCheck: checkToProto(a.HealthCheck), Version: a.Version, Ports: a.Ports}
}

var stateToProto = map[TaskState]fathomv1.TaskState{
	StateRunning: fathomv1.TaskState_TASK_STATE_RUNNING, StateSucceeded: fathomv1.TaskState_TASK_STATE_SUCCEEDED,
	StateFailed: fathomv1.TaskState_TASK_STATE_FAILED, StateStopped: fathomv1.TaskState_TASK_STATE_STOPPED,
	StateRejected: fathomv1.TaskState_TASK_STATE_REJECTED,
}

// TaskStatusToProto translates a status for the wire.
func TaskStatusToProto(s TaskStatus) *fathomv1.TaskStatus {
	p := &fathomv1.TaskStatus{TaskId: s.TaskID, State: stateToProto[s.State], Pid: s.PID, ExitCode: s.ExitCode, OomKilled: s.OOMKilled,
		Evicted: s.Evicted, MemoryUsedBytes: s.MemoryUsed, Reason: s.Reason, Restarts: s.Restarts, Generation: s.Generation, LogTail: s.LogTail,
		Health: healthToProto[s.Health], HealthMessage: s.HealthMessage}
	if !s.StartedAt.IsZero() {
		p.StartedAt = timestamppb.New(s.StartedAt)
	}
	if !s.FinishedAt.IsZero() {
		p.FinishedAt = timestamppb.New(s.FinishedAt)
	}
	return p
}

// TaskStatusFromProto is the inverse of TaskStatusToProto.
func TaskStatusFromProto(p *fathomv1.TaskStatus) TaskStatus {
	s := TaskStatus{TaskID: p.GetTaskId(), PID: p.GetPid(), ExitCode: p.GetExitCode(), OOMKilled: p.GetOomKilled(), Evicted: p.GetEvicted(),
		MemoryUsed: p.GetMemoryUsedBytes(), Reason: p.GetReason(), Restarts: p.GetRestarts(), Generation: p.GetGeneration(), LogTail: p.GetLogTail(), HealthMessage: p.GetHealthMessage()}
	for k, v := range healthToProto {
		if v == p.GetHealth() {
			s.Health = k
		}
	}
	for k, v := range stateToProto {
		if v == p.GetState() {
			s.State = k
		}
	}
	if p.StartedAt != nil {
		s.StartedAt = p.StartedAt.AsTime()
	}
	if p.FinishedAt != nil {
		s.FinishedAt = p.FinishedAt.AsTime()
	}
	return s
}
