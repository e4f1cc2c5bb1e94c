package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/server/jobspec"
	"github.com/fathom-scheduler/fathom/store"
)

// Deployments: job versions, updates, rollbacks, scaling, promotion and
// plans (docs/deployments.md). Every change is a controller op; the
// versions the controller reports are kept in etcd (MaxVersions per job).

// Results of a submission.
const (
	resultCreated   = "created"
	resultUpdated   = "updated"
	resultUnchanged = "unchanged"
)

// normalized checks a spec from a gRPC client.
func normalized(spec *fathomv1.JobSpec) (*fathomv1.JobSpec, error) {
	if n := proto.Size(spec); n > jobspec.MaxSpecBytes {
		return nil, invalidArgument(&jobspec.FieldError{Msg: fmt.Sprintf("spec is %d bytes encoded; the limit is %d bytes", n, jobspec.MaxSpecBytes)})
	}
	out, err := jobspec.Normalize(spec)
	if err != nil {
		return nil, invalidArgument(err)
	}
	return out, nil
}

// UpdateJob moves the job to a new version of its spec.
func (s *Server) UpdateJob(ctx context.Context, req *fathomv1.UpdateJobRequest) (*fathomv1.UpdateJobResponse, error) {
	spec, err := normalized(req.GetSpec())
	if err != nil {
		return nil, err
	}
	return s.updateJob(ctx, req.GetId(), spec)
}

func (s *Server) updateJob(ctx context.Context, id string, spec *fathomv1.JobSpec) (*fathomv1.UpdateJobResponse, error) {
	if id == "" {
		return nil, notFound("")
	}
	cs := specFromProto(spec)
	return s.change(ctx, id, func(c *controller.Controller, now time.Time) (int64, bool, error) {
		return c.Update(id, cs, "submitted", now)
	})
}

// change runs an update of job id in the loop and answers with the job.
func (s *Server) change(ctx context.Context, id string, fn func(c *controller.Controller, now time.Time) (int64, bool, error)) (*fathomv1.UpdateJobResponse, error) {
	var version int64
	var changed bool
	err := s.do(ctx, func(c *controller.Controller, now time.Time) error {
		var err error
		version, changed, err = fn(c, now)
		return err
	})
	if err != nil {
		return nil, controllerErr(err)
	}
	s.Kick()
	resp := &fathomv1.UpdateJobResponse{Id: id, Version: version, Result: resultUnchanged}
	if changed {
		resp.Result = resultUpdated
	}
	s.mu.RLock()
	if v, ok := s.c.Job(id); ok {
		resp.Job = jobView(&v)
	}
	s.mu.RUnlock()
	return resp, nil
}

// ListJobVersions lists the kept versions of a job, newest first.
func (s *Server) ListJobVersions(ctx context.Context, req *fathomv1.ListJobVersionsRequest) (*fathomv1.ListJobVersionsResponse, error) {
	id := req.GetId()
	s.mu.RLock()
	_, ok := s.c.Job(id)
	s.mu.RUnlock()
	if !ok {
		return nil, notFound(id)
	}
	kvs, err := s.st.List(ctx, store.VersionsOfJob(id))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "versions not read from etcd: %v", err)
	}
	resp := &fathomv1.ListJobVersionsResponse{}
	for _, kv := range slices.Backward(kvs) {
		v := &fathomv1.JobVersion{}
		if err := proto.Unmarshal(kv.Value, v); err != nil {
			return nil, status.Errorf(codes.DataLoss, "stored version %s does not decode: %v", kv.Key, err)
		}
		resp.Versions = append(resp.Versions, v)
	}
	return resp, nil
}

// RevertJob submits a kept version's spec again, as a new version.
func (s *Server) RevertJob(ctx context.Context, req *fathomv1.RevertJobRequest) (*fathomv1.UpdateJobResponse, error) {
	id, want := req.GetId(), req.GetVersion()
	if want <= 0 {
		return nil, invalidArgument(&jobspec.FieldError{Field: "version", Msg: fmt.Sprintf("%d is not a version; versions start at 1 (fathom job history lists them)", want)})
	}
	s.mu.RLock()
	_, ok := s.c.Job(id)
	s.mu.RUnlock()
	if !ok {
		return nil, notFound(id)
	}
	data, ok, err := s.st.Get(ctx, store.VersionKey(id, want))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "version not read from etcd: %v", err)
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "version %d of job %s is not kept (the last %d are); fathom job history lists them", want, id, MaxVersions)
	}
	v := &fathomv1.JobVersion{}
	if err := proto.Unmarshal(data, v); err != nil {
		return nil, status.Errorf(codes.DataLoss, "stored version %d does not decode: %v", want, err)
	}
	cs := specFromProto(v.GetSpec())
	return s.change(ctx, id, func(c *controller.Controller, now time.Time) (int64, bool, error) {
		return c.Update(id, cs, fmt.Sprintf("reverted to version %d", want), now)
	})
}

// ScaleJob sets the job's number of tasks.
func (s *Server) ScaleJob(ctx context.Context, req *fathomv1.ScaleJobRequest) (*fathomv1.UpdateJobResponse, error) {
	n := req.GetReplicas()
	if n < 0 || n > jobspec.MaxReplicas {
		return nil, invalidArgument(&jobspec.FieldError{Field: "replicas", Msg: fmt.Sprintf("%d is out of range; allowed 0..%d", n, jobspec.MaxReplicas)})
	}
	id := req.GetId()
	if id == "" {
		return nil, notFound("")
	}
	return s.change(ctx, id, func(c *controller.Controller, now time.Time) (int64, bool, error) {
		v, ok := c.Job(id)
		if ok && v.Job.Spec.Update != nil && v.Job.Spec.Update.Canary > n {
			return 0, false, fmt.Errorf("%w: replicas %d is below the update's canary count %d; lower update.canary first (fathom job run)", controller.ErrInvalid, n, v.Job.Spec.Update.Canary)
		}
		return c.Scale(id, n, now)
	})
}

// PromoteJob lets a rollout paused on its canaries continue.
func (s *Server) PromoteJob(ctx context.Context, req *fathomv1.PromoteJobRequest) (*fathomv1.Job, error) {
	if req.GetId() == "" {
		return nil, notFound("")
	}
	if err := s.do(ctx, func(c *controller.Controller, now time.Time) error { return c.Promote(req.GetId(), now) }); err != nil {
		return nil, controllerErr(err)
	}
	s.Kick()
	return s.GetJob(ctx, &fathomv1.GetJobRequest{Id: req.GetId()})
}

// PlanJob says what submitting the spec would do, changing nothing.
func (s *Server) PlanJob(_ context.Context, req *fathomv1.PlanJobRequest) (*fathomv1.PlanJobResponse, error) {
	spec, err := normalized(req.GetSpec())
	if err != nil {
		return nil, err
	}
	return s.planJob(spec)
}

func (s *Server) planJob(spec *fathomv1.JobSpec) (*fathomv1.PlanJobResponse, error) {
	cs := specFromProto(spec)
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.c.JobByName(cs.Namespace, cs.Name)
	if !ok {
		return &fathomv1.PlanJobResponse{Action: "create", NextVersion: 1, Add: cs.Replicas,
			Message: fmt.Sprintf("a new job %s in namespace %s with %d task(s)", cs.Name, cs.Namespace, cs.Replicas)}, nil
	}
	p, err := s.c.Plan(id, cs)
	if err != nil {
		return nil, controllerErr(err)
	}
	resp := &fathomv1.PlanJobResponse{Action: p.Action, JobId: id, Version: p.Version, NextVersion: p.Next, Message: p.Message,
		Replace: p.Replace, Add: p.Add, Remove: p.Stop}
	for _, ch := range p.Changes {
		resp.Changes = append(resp.Changes, &fathomv1.FieldChange{Field: ch.Field, Old: ch.Old, New: ch.New})
	}
	return resp, nil
}

// submit creates a job, or — like `nomad job run` — updates the unfinished
// job that holds the name in the namespace to a new version.
func (s *Server) submit(ctx context.Context, spec *fathomv1.JobSpec) (*fathomv1.CreateJobResponse, error) {
	cs := specFromProto(spec)
	var id, result string
	var version int64
	for attempt := 0; ; attempt++ {
		fresh := newID(spec.GetName())
		err := s.do(ctx, func(c *controller.Controller, now time.Time) error {
			if held, ok := c.JobByName(cs.Namespace, cs.Name); ok {
				v, changed, err := c.Update(held, cs, "submitted", now)
				if err != nil {
					return err
				}
				id, version, result = held, v, resultUnchanged
				if changed {
					result = resultUpdated
				}
				return nil
			}
			if err := c.Submit(controller.Job{ID: fresh, Spec: cs, CreatedAt: now}, now); err != nil {
				return err
			}
			id, version, result = fresh, 1, resultCreated
			return nil
		})
		if errors.Is(err, controller.ErrIDTaken) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, controllerErr(err)
		}
		break
	}
	if result == resultCreated {
		s.metrics.jobsCreated.Inc()
	}
	s.Kick()
	resp := &fathomv1.CreateJobResponse{Id: id, Version: version, Result: result}
	s.mu.RLock()
	if v, ok := s.c.Job(id); ok {
		resp.Job = jobView(&v)
	}
	s.mu.RUnlock()
	return resp, nil
}
