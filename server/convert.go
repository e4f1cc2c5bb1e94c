package server

import (
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/server/jobspec"
)

// The wire contract (api/) stays apart from the core: the controller works
// on its own types, translated here, at the server's edge, both ways (the
// API's messages and the records kept in etcd).

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func tm(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

// specFromProto is a normalized spec (jobspec.Normalize) in the
// controller's terms.
func specFromProto(s *fathomv1.JobSpec) controller.Spec {
	cpu, mem := jobspec.Hints(s)
	t := s.GetTask()
	spec := controller.Spec{Name: s.GetName(), Namespace: s.GetNamespace(), Type: s.GetType(), Priority: s.GetPriority(),
		Replicas: s.GetReplicas(), Schedule: s.GetSchedule(), Command: slices.Clone(t.GetCommand()), Env: maps.Clone(t.GetEnv()),
		User: t.GetUser(), CPUHint: cpu, MemoryHint: mem, CPUText: t.GetResources().GetCpu(), MemoryText: t.GetResources().GetMemory(),
		Spread: s.GetSpread().GetLabel()}
	if s.GetRestart() != nil { // none (a record stored before restart policies): the type's default
		a, iv, dl, mode := jobspec.Restart(s)
		spec.Restart = &controller.RestartPolicy{Attempts: a, Interval: iv, Delay: dl, Mode: mode}
	}
	for _, c := range s.GetConstraints() {
		k := controller.Constraint{Label: c.GetLabel(), Op: c.GetOp(), Values: slices.Clone(c.GetValues())}
		if c.GetValue() != "" {
			k.Values = []string{c.GetValue()}
		}
		spec.Constraints = append(spec.Constraints, k)
	}
	if u := s.GetUpdate(); u != nil {
		minH, dl := jobspec.UpdateDurations(u)
		spec.Update = &controller.UpdatePolicy{MaxParallel: u.GetMaxParallel(), MinHealthyTime: minH, HealthyDeadline: dl,
			AutoRevert: u.GetAutoRevert(), Canary: u.GetCanary()}
	}
	if h := t.GetHealthCheck(); h != nil {
		spec.HealthCheck = checkFromProto(h)
	}
	for _, pt := range t.GetPorts() {
		spec.Ports = append(spec.Ports, controller.PortSpec{Name: pt.GetName(), Static: int(pt.GetStatic())})
	}
	return spec
}

func checkFromProto(h *fathomv1.HealthCheck) *controller.HealthCheck {
	if h == nil {
		return nil
	}
	iv, to := jobspec.CheckDurations(h)
	return &controller.HealthCheck{Command: slices.Clone(h.GetCommand()), HTTPPort: h.GetHttp().GetPort(), HTTPPath: h.GetHttp().GetPath(),
		TCPPort: h.GetTcp().GetPort(), Interval: iv, Timeout: to}
}

func checkProto(h *controller.HealthCheck) *fathomv1.HealthCheck {
	if h == nil {
		return nil
	}
	p := &fathomv1.HealthCheck{Command: slices.Clone(h.Command), Interval: jobspec.FormatDuration(h.Interval), Timeout: jobspec.FormatDuration(h.Timeout)}
	if h.HTTPPort > 0 {
		p.Http = &fathomv1.HTTPCheck{Port: h.HTTPPort, Path: h.HTTPPath}
	}
	if h.TCPPort > 0 {
		p.Tcp = &fathomv1.TCPCheck{Port: h.TCPPort}
	}
	return p
}

func specToProto(s *controller.Spec) *fathomv1.JobSpec {
	r := s.Replicas
	p := &fathomv1.JobSpec{Name: s.Name, Namespace: s.Namespace, Type: s.Type, Priority: s.Priority, Replicas: &r, Schedule: s.Schedule,
		Task: &fathomv1.TaskSpec{Command: slices.Clone(s.Command), Env: maps.Clone(s.Env), User: s.User}}
	if s.CPUText != "" || s.MemoryText != "" {
		p.Task.Resources = &fathomv1.Resources{Cpu: s.CPUText, Memory: s.MemoryText}
	}
	p.Task.HealthCheck = checkProto(s.HealthCheck)
	if u := s.Update; u != nil {
		mp := u.MaxParallel
		p.Update = &fathomv1.UpdateStrategy{MaxParallel: &mp, MinHealthyTime: jobspec.FormatDuration(u.MinHealthyTime),
			HealthyDeadline: jobspec.FormatDuration(u.HealthyDeadline), AutoRevert: u.AutoRevert, Canary: u.Canary}
	}
	if r := s.Restart; r != nil {
		a := r.Attempts
		p.Restart = &fathomv1.RestartPolicy{Attempts: &a, Interval: r.Interval.String(), Delay: r.Delay.String(), Mode: r.Mode}
	}
	for _, c := range s.Constraints {
		k := &fathomv1.Constraint{Label: c.Label, Op: c.Op}
		if c.Op == controller.OpIn {
			k.Values = slices.Clone(c.Values)
		} else if len(c.Values) > 0 {
			k.Value = c.Values[0]
		}
		p.Constraints = append(p.Constraints, k)
	}
	if s.Spread != "" {
		p.Spread = &fathomv1.Spread{Label: s.Spread}
	}
	for _, pt := range s.Ports {
		p.Task.Ports = append(p.Task.Ports, &fathomv1.Port{Name: pt.Name, Static: int32(pt.Static)})
	}
	return p
}

func deploymentProto(d *controller.Deployment) *fathomv1.Deployment {
	if d == nil {
		return nil
	}
	return &fathomv1.Deployment{Version: d.Version, FromVersion: d.FromVersion, Status: d.Status, Message: d.Message,
		StartedAt: ts(d.StartedAt), UpdatedAt: ts(d.UpdatedAt), Promoted: d.Promoted, Revert: d.Revert,
		Placed: d.Placed, Healthy: d.Healthy, Desired: d.Desired}
}

func deploymentFromProto(p *fathomv1.Deployment) *controller.Deployment {
	if p == nil {
		return nil
	}
	return &controller.Deployment{Version: p.GetVersion(), FromVersion: p.GetFromVersion(), Status: p.GetStatus(), Message: p.GetMessage(),
		StartedAt: tm(p.GetStartedAt()), UpdatedAt: tm(p.GetUpdatedAt()), Promoted: p.GetPromoted(), Revert: p.GetRevert(),
		Placed: p.GetPlaced(), Healthy: p.GetHealthy(), Desired: p.GetDesired()}
}

// versionProto is a job version as stored and listed.
func versionProto(v *controller.JobVersion) *fathomv1.JobVersion {
	return &fathomv1.JobVersion{JobId: v.JobID, Version: v.Version, Spec: specToProto(&v.Spec), SubmittedAt: ts(v.SubmittedAt),
		Reason: v.Reason, Status: v.Status, StatusMessage: v.StatusMessage}
}

var healthStates = map[controller.Health]fathomv1.HealthState{
	controller.HealthNone: fathomv1.HealthState_HEALTH_STATE_UNSPECIFIED, controller.HealthUnknown: fathomv1.HealthState_HEALTH_STATE_UNKNOWN,
	controller.Healthy: fathomv1.HealthState_HEALTH_STATE_HEALTHY, controller.Unhealthy: fathomv1.HealthState_HEALTH_STATE_UNHEALTHY,
}

var healthFrom = inverse(healthStates)

// HealthName is the short name of a health state ("" when there is no check).
func HealthName(h fathomv1.HealthState) string {
	if h == fathomv1.HealthState_HEALTH_STATE_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(h.String(), "HEALTH_STATE_"))
}

// jobRecord is the stored form of a job (no derived fields).
func jobRecord(j *controller.Job) *fathomv1.Job {
	r := &fathomv1.Job{Id: j.ID, Namespace: j.Spec.Namespace, Name: j.Spec.Name, Spec: specToProto(&j.Spec),
		CreatedAt: ts(j.CreatedAt), StoppedAt: ts(j.StoppedAt), StopRequested: j.StopRequested,
		CpuHintCores: j.Spec.CPUHint, MemoryHintBytes: j.Spec.MemoryHint, LastRunAt: ts(j.LastRunAt), Runs: j.Runs,
		Version: j.Version, StableVersion: j.StableVersion, Deployment: deploymentProto(j.Deployment),
		VersionAt: ts(j.VersionAt), VersionReason: j.VersionReason}
	for i := range j.Previous {
		p := &j.Previous[i]
		r.Previous = append(r.Previous, &fathomv1.JobVersion{JobId: j.ID, Version: p.Version, Spec: specToProto(&p.Spec)})
	}
	return r
}

func jobFromRecord(p *fathomv1.Job) controller.Job {
	spec := specFromProto(p.GetSpec())
	spec.Name, spec.Namespace = p.GetName(), p.GetNamespace()
	j := controller.Job{ID: p.GetId(), Spec: spec, CreatedAt: tm(p.GetCreatedAt()), StopRequested: p.GetStopRequested(),
		StoppedAt: tm(p.GetStoppedAt()), LastRunAt: tm(p.GetLastRunAt()), Runs: p.GetRuns(),
		Version: p.GetVersion(), StableVersion: p.GetStableVersion(), Deployment: deploymentFromProto(p.GetDeployment()),
		VersionAt: tm(p.GetVersionAt()), VersionReason: p.GetVersionReason()}
	for _, v := range p.GetPrevious() {
		ps := specFromProto(v.GetSpec())
		ps.Name, ps.Namespace = p.GetName(), p.GetNamespace()
		j.Previous = append(j.Previous, controller.VersionedSpec{Version: v.GetVersion(), Spec: ps})
	}
	return j
}

// jobView is a job as clients see it.
func jobView(v *controller.JobView) *fathomv1.Job {
	p := jobRecord(&v.Job)
	p.Previous = nil // stored only
	p.State = jobStates[v.State]
	p.TaskCounts = v.Counts
	p.NextRunAt = ts(v.NextRunAt)
	return p
}

var jobStates = map[controller.JobState]fathomv1.JobState{
	controller.JobPending: fathomv1.JobState_JOB_STATE_PENDING, controller.JobRunning: fathomv1.JobState_JOB_STATE_RUNNING,
	controller.JobSucceeded: fathomv1.JobState_JOB_STATE_SUCCEEDED, controller.JobFailed: fathomv1.JobState_JOB_STATE_FAILED,
	controller.JobStopped: fathomv1.JobState_JOB_STATE_STOPPED,
}

var taskStates = map[controller.TaskState]fathomv1.TaskState{
	controller.Pending: fathomv1.TaskState_TASK_STATE_PENDING, controller.Placed: fathomv1.TaskState_TASK_STATE_PLACED,
	controller.Running: fathomv1.TaskState_TASK_STATE_RUNNING, controller.Succeeded: fathomv1.TaskState_TASK_STATE_SUCCEEDED,
	controller.Failed: fathomv1.TaskState_TASK_STATE_FAILED, controller.Lost: fathomv1.TaskState_TASK_STATE_LOST,
	controller.Stopped: fathomv1.TaskState_TASK_STATE_STOPPED,
}

var desiredStates = map[controller.Desired]fathomv1.DesiredState{
	controller.DesiredRun: fathomv1.DesiredState_DESIRED_STATE_RUN, controller.DesiredStop: fathomv1.DesiredState_DESIRED_STATE_STOP,
	controller.DesiredKeep: fathomv1.DesiredState_DESIRED_STATE_KEEP,
}

func inverse[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

var (
	taskStatesFrom   = inverse(taskStates)
	desiredStateFrom = inverse(desiredStates)
)

// taskProto is a task as stored and as clients see it (the view adds the
// wait reason to Reason).
func taskProto(t *controller.Task, spec *controller.Spec) *fathomv1.Task {
	p := &fathomv1.Task{Id: t.ID(), JobId: t.JobID, Namespace: spec.Namespace, JobName: spec.Name, Index: t.Index,
		State: taskStates[t.State], Node: t.Node, Reason: t.Reason, ExitCode: t.ExitCode, OomKilled: t.OOMKilled,
		Restarts: t.Restarts, Pid: t.PID, Generation: t.Generation, DesiredState: desiredStates[t.Desired],
		CpuRequestCores: t.CPURequest, CpuLimitCores: t.CPULimit, MemoryRequestBytes: t.MemoryRequest, MemoryLimitBytes: t.MemoryLimit,
		UpdatedAt: ts(t.UpdatedAt), StartedAt: ts(t.StartedAt), FinishedAt: ts(t.FinishedAt), Evicted: t.Evicted,
		StartGeneration: t.StartGeneration, PlacedAt: ts(t.PlacedAt), ResizedAt: ts(t.ResizedAt),
		Evictions: t.Evictions, AvoidNode: t.AvoidNode, AvoidUntil: ts(t.AvoidUntil),
		Version: t.Version, VersionAt: ts(t.VersionAt), Health: healthStates[t.Health], HealthMessage: t.HealthMessage, HealthySince: ts(t.HealthySince),
		RestartAttempts: t.RestartAttempts, RestartWindowStart: ts(t.RestartWindow), RestartAt: ts(t.RestartAt),
		Ports: portsProto(t.Ports)}
	for _, h := range t.History {
		p.History = append(p.History, &fathomv1.TaskTransition{Time: ts(h.Time), State: taskStates[h.State], Node: h.Node, Message: h.Message})
	}
	return p
}

func taskFromRecord(p *fathomv1.Task) controller.Task {
	t := controller.Task{JobID: p.GetJobId(), Index: p.GetIndex(), State: taskStatesFrom[p.GetState()], Desired: desiredStateFrom[p.GetDesiredState()],
		Node: p.GetNode(), Generation: p.GetGeneration(), StartGeneration: p.GetStartGeneration(),
		Sizes: controller.Sizes{CPURequest: p.GetCpuRequestCores(), CPULimit: p.GetCpuLimitCores(), MemoryRequest: p.GetMemoryRequestBytes(), MemoryLimit: p.GetMemoryLimitBytes()},
		PID:   p.GetPid(), ExitCode: p.GetExitCode(), OOMKilled: p.GetOomKilled(), Evicted: p.GetEvicted(), Restarts: p.GetRestarts(),
		StartedAt: tm(p.GetStartedAt()), FinishedAt: tm(p.GetFinishedAt()), UpdatedAt: tm(p.GetUpdatedAt()), Reason: p.GetReason(),
		PlacedAt: tm(p.GetPlacedAt()), ResizedAt: tm(p.GetResizedAt()), Evictions: p.GetEvictions(), AvoidNode: p.GetAvoidNode(), AvoidUntil: tm(p.GetAvoidUntil()),
		Version: p.GetVersion(), VersionAt: tm(p.GetVersionAt()), Health: healthFrom[p.GetHealth()], HealthMessage: p.GetHealthMessage(),
		HealthySince:    tm(p.GetHealthySince()),
		RestartAttempts: p.GetRestartAttempts(), RestartWindow: tm(p.GetRestartWindowStart()), RestartAt: tm(p.GetRestartAt()),
		Ports: portsFromProto(p.GetPorts())}
	if t.State == 0 {
		t.State = controller.Pending
	}
	if t.Desired == 0 {
		t.Desired = controller.DesiredRun
	}
	for _, h := range p.GetHistory() {
		t.History = append(t.History, controller.Transition{Time: tm(h.GetTime()), State: taskStatesFrom[h.GetState()], Node: h.GetNode(), Message: h.GetMessage()})
	}
	return t
}

// nodeRecord is the stored form of a node.
func nodeRecord(n *controller.Node) *fathomv1.Node {
	st := fathomv1.NodeState_NODE_STATE_DOWN
	if n.Up {
		st = fathomv1.NodeState_NODE_STATE_UP
	}
	return &fathomv1.Node{Id: n.Name, Name: n.Name, State: st, Schedulable: n.Schedulable, Draining: n.Draining,
		CpuCores: n.CPU, MemoryBytes: n.Memory, Labels: maps.Clone(n.Labels), Enforcement: n.Enforcement, AgentAddress: n.AgentAddress,
		Version: n.Version, RegisteredAt: ts(n.RegisteredAt), RemovalRequestedAt: ts(n.RemovalRequestedAt), PortRange: n.PortRange.String()}
}

func nodeFromRecord(p *fathomv1.Node) controller.Node {
	pr, _ := scheduler.ParsePortRange(p.GetPortRange()) // checked when the agent registered
	return controller.Node{PortRange: pr, Name: p.GetName(), CPU: p.GetCpuCores(), Memory: p.GetMemoryBytes(), Labels: maps.Clone(p.GetLabels()),
		Enforcement: p.GetEnforcement(), AgentAddress: p.GetAgentAddress(), Version: p.GetVersion(),
		Up: p.GetState() == fathomv1.NodeState_NODE_STATE_UP, Schedulable: p.GetSchedulable(), Draining: p.GetDraining(),
		RemovalRequestedAt: tm(p.GetRemovalRequestedAt()), RegisteredAt: tm(p.GetRegisteredAt())}
}

// nodeView is a node as `fathom node list` shows it.
func nodeView(v *controller.NodeView) *fathomv1.Node {
	p := nodeRecord(&v.Node)
	p.LastHeartbeat = ts(v.LastSeen)
	p.CpuUsedCores, p.MemoryUsedBytes = v.Usage.CPUUsed, v.Usage.MemoryUsed
	p.MemoryAvailableBytes, p.MemoryPressure = v.Usage.MemoryAvailable, v.Usage.MemoryPressure
	p.TaskCpuUsedCores, p.TaskMemoryUsedBytes = v.Usage.TasksCPUUsed, v.Usage.TasksMemoryUsed
	p.CpuRequestedCores, p.MemoryRequestedBytes, p.TaskCount = v.CPURequested, v.MemoryRequested, int32(v.Tasks)
	return p
}

func copyRecord(g *controller.Ghost) *fathomv1.TaskCopy {
	return &fathomv1.TaskCopy{TaskId: g.TaskID, Node: g.Node, Generation: g.Generation, CpuRequestCores: g.CPURequest,
		CpuLimitCores: g.CPULimit, MemoryRequestBytes: g.MemoryRequest, MemoryLimitBytes: g.MemoryLimit, Since: ts(g.Since)}
}

func copyFromRecord(p *fathomv1.TaskCopy) controller.Ghost {
	return controller.Ghost{TaskID: p.GetTaskId(), Node: p.GetNode(), Generation: p.GetGeneration(),
		Sizes: controller.Sizes{CPURequest: p.GetCpuRequestCores(), CPULimit: p.GetCpuLimitCores(), MemoryRequest: p.GetMemoryRequestBytes(), MemoryLimit: p.GetMemoryLimitBytes()},
		Since: tm(p.GetSince())}
}

// assignmentProto is an assignment as an agent receives it.
func assignmentProto(a *controller.Assignment) *fathomv1.Assignment {
	return &fathomv1.Assignment{TaskId: a.TaskID, JobId: a.JobID, Namespace: a.Namespace, JobName: a.JobName, TaskIndex: a.Index,
		Command: a.Command, Env: a.Env, User: a.User, JobType: a.Type, Priority: a.Priority,
		CpuRequestCores: a.CPURequest, CpuLimitCores: a.CPULimit, MemoryRequestBytes: a.MemoryRequest, MemoryLimitBytes: a.MemoryLimit,
		DesiredState: desiredStates[a.Desired], Generation: a.Generation, HealthCheck: checkProto(a.HealthCheck), Version: a.Version, Ports: portsProto(a.Ports)}
}

func portsProto(m map[string]int) map[string]int32 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int32, len(m))
	for k, v := range m {
		out[k] = int32(v)
	}
	return out
}

func portsFromProto(m map[string]int32) map[string]int {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = int(v)
	}
	return out
}

var reportedStates = map[fathomv1.TaskState]controller.ReportedState{
	fathomv1.TaskState_TASK_STATE_RUNNING: controller.ReportedRunning, fathomv1.TaskState_TASK_STATE_SUCCEEDED: controller.ReportedSucceeded,
	fathomv1.TaskState_TASK_STATE_FAILED: controller.ReportedFailed, fathomv1.TaskState_TASK_STATE_STOPPED: controller.ReportedStopped,
	fathomv1.TaskState_TASK_STATE_REJECTED: controller.ReportedRejected,
}

func statusFromProto(p *fathomv1.TaskStatus) controller.Status {
	return controller.Status{TaskID: p.GetTaskId(), State: reportedStates[p.GetState()], PID: p.GetPid(), ExitCode: p.GetExitCode(),
		OOMKilled: p.GetOomKilled(), Evicted: p.GetEvicted(), Reason: p.GetReason(), Restarts: p.GetRestarts(),
		StartedAt: tm(p.GetStartedAt()), FinishedAt: tm(p.GetFinishedAt()), Generation: p.GetGeneration(), MemoryUsed: p.GetMemoryUsedBytes(),
		Health: healthFrom[p.GetHealth()], HealthMessage: p.GetHealthMessage(),
		LogTail: p.GetLogTail()}
}

// StateName is the short lower-case name of a task state ("running").
func StateName(st fathomv1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "TASK_STATE_"))
}

// JobStateName is the short lower-case name of a job state.
func JobStateName(st fathomv1.JobState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "JOB_STATE_"))
}
