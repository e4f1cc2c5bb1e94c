package server

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/server/jobspec"
	"github.com/fathom-scheduler/fathom/store"
)

// invalidArgument turns a spec error into INVALID_ARGUMENT with a
// google.rpc.BadRequest detail naming the field.
func invalidArgument(err error) error {
	var fe *jobspec.FieldError
	if !errors.As(err, &fe) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	st := status.New(codes.InvalidArgument, fe.Error())
	field := fe.Field
	if field == "" {
		field = "spec"
	}
	if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: fe.Msg}}}); derr == nil {
		st = d
	}
	return st.Err()
}

// CreateJob validates and stores a job. The reply is sent only after etcd
// committed it.
func (s *Server) CreateJob(ctx context.Context, req *fathomv1.CreateJobRequest) (*fathomv1.CreateJobResponse, error) {
	spec, err := jobspec.Normalize(req.GetSpec())
	if err != nil {
		return nil, invalidArgument(err)
	}
	return s.createJob(ctx, spec)
}

// createJob stores a normalized spec.
func (s *Server) createJob(ctx context.Context, spec *fathomv1.JobSpec) (*fathomv1.CreateJobResponse, error) {
	cpu, mem := jobspec.Hints(spec)
	j := &fathomv1.Job{
		Namespace: spec.GetNamespace(), Name: spec.GetName(), Spec: spec,
		CreatedAt: timestamppb.New(s.now()), CpuHintCores: cpu, MemoryHintBytes: mem,
	}
	for attempt := 0; ; attempt++ {
		j.Id = newID(spec.GetName())
		err := s.st.CreateJob(ctx, j)
		if errors.Is(err, store.ErrIDTaken) && attempt < 3 {
			continue
		}
		if errors.Is(err, store.ErrNameTaken) {
			return nil, status.Errorf(codes.AlreadyExists,
				"job %q already exists in namespace %q and is not finished; stop it first (fathom job stop) or choose another name",
				spec.GetName(), spec.GetNamespace())
		}
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "job not stored: %v", err)
		}
		break
	}
	e := &jobEntry{job: j, tasks: make([]*fathomv1.Task, spec.GetReplicas()), nameHeld: true}
	s.mu.Lock()
	s.jobs[j.GetId()] = e
	view := s.jobView(e)
	var evs []event
	evs = append(evs, event{job: &fathomv1.JobEvent{Type: fathomv1.EventType_EVENT_TYPE_CREATED, Job: view}})
	for i := range e.tasks {
		evs = append(evs, event{task: &fathomv1.TaskEvent{Type: fathomv1.EventType_EVENT_TYPE_CREATED, Task: s.taskView(e, i)}})
	}
	s.mu.Unlock()
	s.metrics.jobsCreated.Inc()
	s.hub.publish(evs...)
	s.Kick()
	return &fathomv1.CreateJobResponse{Id: j.GetId(), Job: view}, nil
}

var jobStates = []string{"pending", "running", "succeeded", "failed", "stopped", "active"}

// ListJobs lists jobs, oldest first, filtered by namespace, state and name.
func (s *Server) ListJobs(_ context.Context, req *fathomv1.ListJobsRequest) (*fathomv1.ListJobsResponse, error) {
	want := strings.ToLower(strings.TrimPrefix(strings.ToUpper(req.GetState()), "JOB_STATE_"))
	if want != "" && !contains(jobStates, want) {
		return nil, status.Errorf(codes.InvalidArgument, "state %q is not a job state; allowed: %s", req.GetState(), strings.Join(jobStates, ", "))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	entries := s.sortedJobs(func(e *jobEntry) bool {
		return (req.GetNamespace() == "" || e.job.GetNamespace() == req.GetNamespace()) &&
			(req.GetName() == "" || e.job.GetName() == req.GetName())
	})
	resp := &fathomv1.ListJobsResponse{}
	for _, e := range entries {
		v := s.jobView(e)
		st := JobStateName(v.GetState())
		if want == "" || want == st || (want == "active" && (st == "pending" || st == "running")) {
			resp.Jobs = append(resp.Jobs, v)
		}
	}
	return resp, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) lookupJob(id string) (*jobEntry, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "job id is required")
	}
	e := s.jobs[id]
	if e == nil {
		return nil, status.Errorf(codes.NotFound, "job %q not found; list jobs with 'fathom job list'", id)
	}
	return e, nil
}

// GetJob returns one job.
func (s *Server) GetJob(_ context.Context, req *fathomv1.GetJobRequest) (*fathomv1.Job, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, err := s.lookupJob(req.GetId())
	if err != nil {
		return nil, err
	}
	return s.jobView(e), nil
}

// ListTasks lists the tasks of a job by index.
func (s *Server) ListTasks(_ context.Context, req *fathomv1.ListTasksRequest) (*fathomv1.ListTasksResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, err := s.lookupJob(req.GetJobId())
	if err != nil {
		return nil, err
	}
	want := strings.ToLower(strings.TrimPrefix(strings.ToUpper(req.GetState()), "TASK_STATE_"))
	resp := &fathomv1.ListTasksResponse{}
	for i := range e.tasks {
		t := s.taskView(e, i)
		if want == "" || StateName(t.GetState()) == want {
			resp.Tasks = append(resp.Tasks, t)
		}
	}
	return resp, nil
}

// StopJob stops every task of the job: running ones are told to stop (they
// become STOPPED when their agent confirms), the others stop at once.
// Idempotent.
func (s *Server) StopJob(ctx context.Context, req *fathomv1.StopJobRequest) (*fathomv1.Job, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	e, err := s.lookupJob(req.GetId())
	if err != nil {
		s.mu.RUnlock()
		return nil, err
	}
	if e.job.GetStopRequested() {
		v := s.jobView(e)
		s.mu.RUnlock()
		return v, nil
	}
	now := s.now()
	b := &batch{}
	j := cloneJob(e.job)
	j.StopRequested = true
	j.StoppedAt = timestamppb.New(now)
	b.jobs = append(b.jobs, j)
	for i := range e.tasks {
		t := e.tasks[i]
		if t == nil || terminal(t.GetState()) {
			continue
		}
		c := s.newTaskRecord(e, i)
		c.DesiredState = fathomv1.DesiredState_DESIRED_STATE_STOP
		if ne := s.nodes[c.GetNode()]; c.GetNode() != "" && ne != nil && ne.node.GetState() == fathomv1.NodeState_NODE_STATE_UP {
			c.Generation++
			withHistory(c, now, "stop requested; waiting for node "+c.GetNode()+" to stop the process")
		} else {
			c.State = fathomv1.TaskState_TASK_STATE_STOPPED
			c.FinishedAt = timestamppb.New(now)
			withHistory(c, now, "job stopped")
		}
		b.tasks = append(b.tasks, c)
	}
	if e.nameHeld {
		b.release = append(b.release, e)
	}
	s.mu.RUnlock()
	if err := s.commit(ctx, b); err != nil {
		return nil, status.Errorf(codes.Unavailable, "stop not stored: %v", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.jobView(e), nil
}

// WatchJobs streams the current jobs (EXISTING) and then every change.
func (s *Server) WatchJobs(req *fathomv1.WatchJobsRequest, stream grpc.ServerStreamingServer[fathomv1.JobEvent]) error {
	ns := req.GetNamespace()
	sub := s.hub.subscribe(func(ev event) bool {
		return ev.job != nil && (ns == "" || ev.job.GetJob().GetNamespace() == ns)
	})
	defer s.hub.unsubscribe(sub)
	s.mu.RLock()
	var initial []*fathomv1.JobEvent
	for _, e := range s.sortedJobs(func(e *jobEntry) bool { return ns == "" || e.job.GetNamespace() == ns }) {
		initial = append(initial, &fathomv1.JobEvent{Type: fathomv1.EventType_EVENT_TYPE_EXISTING, Job: s.jobView(e)})
	}
	s.mu.RUnlock()
	return relay(stream.Context(), initial, sub.ch, func(ev event) *fathomv1.JobEvent { return ev.job }, stream.Send)
}

// WatchTasks streams the current tasks (EXISTING) and then every change,
// optionally only of one job or one node.
func (s *Server) WatchTasks(req *fathomv1.WatchTasksRequest, stream grpc.ServerStreamingServer[fathomv1.TaskEvent]) error {
	jobID, node := req.GetJobId(), req.GetNode()
	match := func(t *fathomv1.Task) bool {
		return (jobID == "" || t.GetJobId() == jobID) && (node == "" || t.GetNode() == node)
	}
	sub := s.hub.subscribe(func(ev event) bool { return ev.task != nil && match(ev.task.GetTask()) })
	defer s.hub.unsubscribe(sub)
	s.mu.RLock()
	if jobID != "" && s.jobs[jobID] == nil {
		s.mu.RUnlock()
		return status.Errorf(codes.NotFound, "job %q not found", jobID)
	}
	var initial []*fathomv1.TaskEvent
	for _, e := range s.sortedJobs(func(e *jobEntry) bool { return jobID == "" || e.job.GetId() == jobID }) {
		for i := range e.tasks {
			if t := s.taskView(e, i); match(t) {
				initial = append(initial, &fathomv1.TaskEvent{Type: fathomv1.EventType_EVENT_TYPE_EXISTING, Task: t})
			}
		}
	}
	s.mu.RUnlock()
	return relay(stream.Context(), initial, sub.ch, func(ev event) *fathomv1.TaskEvent { return ev.task }, stream.Send)
}

// relay sends the initial (EXISTING) events, then every event of the
// subscription until the client goes away. A subscription the hub closed
// because its client fell behind ends the watch with ResourceExhausted.
func relay[E any](ctx context.Context, initial []E, ch <-chan event, pick func(event) E, send func(E) error) error {
	for _, ev := range initial {
		if err := send(ev); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return status.Error(codes.ResourceExhausted, "watch fell behind the event stream; reconnect to resume")
			}
			if err := send(pick(ev)); err != nil {
				return err
			}
		}
	}
}

func cloneJob(j *fathomv1.Job) *fathomv1.Job { return proto.Clone(j).(*fathomv1.Job) }
