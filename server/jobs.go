package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/server/jobspec"
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
	if n := proto.Size(req.GetSpec()); n > jobspec.MaxSpecBytes {
		return nil, invalidArgument(&jobspec.FieldError{Msg: fmt.Sprintf("spec is %d bytes encoded; the limit is %d bytes", n, jobspec.MaxSpecBytes)})
	}
	spec, err := jobspec.Normalize(req.GetSpec())
	if err != nil {
		return nil, invalidArgument(err)
	}
	return s.createJob(ctx, spec)
}

// createJob stores a normalized spec: a new job, or a new version of the
// unfinished job of that name (deploy.go).
func (s *Server) createJob(ctx context.Context, spec *fathomv1.JobSpec) (*fathomv1.CreateJobResponse, error) {
	return s.submit(ctx, spec)
}

var jobStateNames = []string{"pending", "running", "succeeded", "failed", "stopped", "active"}

// ListJobs lists jobs, oldest first, filtered by namespace, state and name.
func (s *Server) ListJobs(_ context.Context, req *fathomv1.ListJobsRequest) (*fathomv1.ListJobsResponse, error) {
	want := strings.ToLower(strings.TrimPrefix(strings.ToUpper(req.GetState()), "JOB_STATE_"))
	if want != "" && !slices.Contains(jobStateNames, want) {
		return nil, status.Errorf(codes.InvalidArgument, "state %q is not a job state; allowed: %s", req.GetState(), strings.Join(jobStateNames, ", "))
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	after, err := parseToken("jobs", req.GetPageToken())
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	views := s.c.Jobs(func(j *controller.Job) bool {
		return (req.GetNamespace() == "" || j.Spec.Namespace == req.GetNamespace()) && (req.GetName() == "" || j.Spec.Name == req.GetName())
	})
	s.mu.RUnlock()
	if after != "" {
		// Oldest first: continue after the token's job.
		i := slices.IndexFunc(views, func(v controller.JobView) bool { return v.Job.ID == after })
		if i < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "page_token: job %q is gone (deleted); list again from the start", after)
		}
		views = views[i+1:]
	}
	resp := &fathomv1.ListJobsResponse{}
	for i := range views {
		st := views[i].State.String()
		if want == "" || want == st || (want == "active" && (st == "pending" || st == "running")) {
			if size > 0 && len(resp.Jobs) == size {
				resp.NextPageToken = pageToken("jobs", resp.Jobs[size-1].GetId())
				break
			}
			resp.Jobs = append(resp.Jobs, jobView(&views[i]))
		}
	}
	return resp, nil
}

func notFound(id string) error {
	if id == "" {
		return status.Error(codes.InvalidArgument, "job id is required")
	}
	return status.Errorf(codes.NotFound, "job %q not found; list jobs with 'fathom job list'", id)
}

// GetJob returns one job.
func (s *Server) GetJob(_ context.Context, req *fathomv1.GetJobRequest) (*fathomv1.Job, error) {
	s.mu.RLock()
	v, ok := s.c.Job(req.GetId())
	s.mu.RUnlock()
	if !ok {
		return nil, notFound(req.GetId())
	}
	return jobView(&v), nil
}

// ListTasks lists the tasks of a job by index.
func (s *Server) ListTasks(_ context.Context, req *fathomv1.ListTasksRequest) (*fathomv1.ListTasksResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	from, err := parseIndexToken("tasks", req.GetPageToken())
	if err != nil {
		return nil, err
	}
	want := strings.ToLower(strings.TrimPrefix(strings.ToUpper(req.GetState()), "TASK_STATE_"))
	keep := func(t *controller.Task) bool { return want == "" || t.State.String() == want }
	s.mu.RLock()
	spec, ok := s.c.JobSpec(req.GetJobId())
	ts, next, _ := s.c.JobTasksFrom(req.GetJobId(), from, size, keep)
	s.mu.RUnlock()
	if !ok {
		return nil, notFound(req.GetJobId())
	}
	resp := &fathomv1.ListTasksResponse{Tasks: make([]*fathomv1.Task, 0, len(ts))}
	for i := range ts {
		resp.Tasks = append(resp.Tasks, taskProto(&ts[i], &spec))
	}
	if next >= 0 {
		resp.NextPageToken = pageToken("tasks", strconv.Itoa(int(next)))
	}
	return resp, nil
}

// StopJob stops every task of the job: running ones are told to stop (they
// become STOPPED when their agent confirms), the others stop at once.
// Idempotent.
func (s *Server) StopJob(ctx context.Context, req *fathomv1.StopJobRequest) (*fathomv1.Job, error) {
	if req.GetId() == "" {
		return nil, notFound("")
	}
	err := s.do(ctx, func(c *controller.Controller, now time.Time) error { return c.Stop(req.GetId(), now) })
	if err != nil {
		return nil, controllerErr(err)
	}
	return s.GetJob(ctx, &fathomv1.GetJobRequest{Id: req.GetId()})
}

// WatchJobs streams the current jobs (EXISTING) and then every change.
func (s *Server) WatchJobs(req *fathomv1.WatchJobsRequest, stream grpc.ServerStreamingServer[fathomv1.JobEvent]) error {
	ns := req.GetNamespace()
	sub := s.hub.subscribe(func(ev event) bool {
		return ev.job != nil && (ns == "" || ev.job.GetJob().GetNamespace() == ns)
	})
	defer s.hub.unsubscribe(sub)
	s.mu.RLock()
	views := s.c.Jobs(func(j *controller.Job) bool { return ns == "" || j.Spec.Namespace == ns })
	s.mu.RUnlock()
	initial := make([]*fathomv1.JobEvent, 0, len(views))
	for i := range views {
		initial = append(initial, &fathomv1.JobEvent{Type: fathomv1.EventType_EVENT_TYPE_EXISTING, Job: jobView(&views[i])})
	}
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
	var initial []*fathomv1.TaskEvent
	s.mu.RLock()
	if _, ok := s.c.Job(jobID); jobID != "" && !ok {
		s.mu.RUnlock()
		return status.Errorf(codes.NotFound, "job %q not found", jobID)
	}
	for _, v := range s.c.Jobs(func(j *controller.Job) bool { return jobID == "" || j.ID == jobID }) {
		ts, _ := s.c.JobTasks(v.Job.ID)
		for i := range ts {
			if t := taskProto(&ts[i], &v.Job.Spec); match(t) {
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
