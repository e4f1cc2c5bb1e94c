package server

import (
	"context"
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// ListNodes lists nodes by name with their requested sums and usage.
func (s *Server) ListNodes(context.Context, *fathomv1.ListNodesRequest) (*fathomv1.ListNodesResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	resp := &fathomv1.ListNodesResponse{}
	for name, ne := range s.nodes {
		n := proto.Clone(ne.node).(*fathomv1.Node)
		for id := range s.byNode[name] {
			jobID, idx, _ := splitTaskID(id)
			if e := s.jobs[jobID]; e != nil {
				if t := e.tasks[idx]; t != nil && t.GetNode() == name && !terminal(t.GetState()) {
					n.CpuRequestedCores += t.GetCpuRequestCores()
					n.MemoryRequestedBytes += t.GetMemoryRequestBytes()
					n.TaskCount++
				}
			}
		}
		resp.Nodes = append(resp.Nodes, n)
	}
	sort.Slice(resp.Nodes, func(a, b int) bool { return resp.Nodes[a].GetName() < resp.Nodes[b].GetName() })
	return resp, nil
}

// CordonNode makes a node unschedulable (or schedulable again).
func (s *Server) CordonNode(ctx context.Context, req *fathomv1.CordonNodeRequest) (*fathomv1.Node, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	ne := s.nodes[req.GetName()]
	if ne == nil {
		s.mu.RUnlock()
		return nil, status.Errorf(codes.NotFound, "node %q not found; list nodes with 'fathom node list'", req.GetName())
	}
	n := proto.Clone(ne.node).(*fathomv1.Node)
	s.mu.RUnlock()
	n.Schedulable = req.GetUncordon()
	if req.GetUncordon() {
		n.Draining = false
	}
	if err := s.commit(ctx, &batch{nodes: []*fathomv1.Node{n}}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "not stored: %v", err)
	}
	if req.GetUncordon() {
		s.Kick()
	}
	return n, nil
}

// DrainNode cordons a node and sends its tasks back to pending so that they
// are placed elsewhere; the node's agent stops them because they leave its
// assignment set.
func (s *Server) DrainNode(ctx context.Context, req *fathomv1.DrainNodeRequest) (*fathomv1.Node, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now := s.now()
	s.mu.RLock()
	ne := s.nodes[req.GetName()]
	if ne == nil {
		s.mu.RUnlock()
		return nil, status.Errorf(codes.NotFound, "node %q not found; list nodes with 'fathom node list'", req.GetName())
	}
	n := proto.Clone(ne.node).(*fathomv1.Node)
	n.Schedulable, n.Draining = false, true
	b := &batch{nodes: []*fathomv1.Node{n}}
	var moved []*jobEntry
	for id := range s.byNode[n.GetName()] {
		jobID, idx, _ := splitTaskID(id)
		e := s.jobs[jobID]
		if e == nil || e.tasks[idx] == nil || e.tasks[idx].GetNode() != n.GetName() || terminal(e.tasks[idx].GetState()) {
			continue
		}
		t := s.newTaskRecord(e, int(idx))
		if t.GetDesiredState() == fathomv1.DesiredState_DESIRED_STATE_STOP {
			t.State = fathomv1.TaskState_TASK_STATE_STOPPED
			t.FinishedAt = timestamppb.New(now)
			withHistory(t, now, "node "+n.GetName()+" drained while the task was stopping")
		} else {
			t.State = fathomv1.TaskState_TASK_STATE_PENDING
			withHistory(t, now, "drained from node "+n.GetName()+"; placing it elsewhere")
			t.Node = ""
			moved = append(moved, e)
		}
		b.tasks = append(b.tasks, t)
	}
	s.mu.RUnlock()
	if err := s.commit(ctx, b); err != nil {
		return nil, status.Errorf(codes.Unavailable, "not stored: %v", err)
	}
	s.mu.Lock()
	for _, e := range moved {
		s.pending[e.job.GetId()] = e
	}
	s.mu.Unlock()
	s.Kick()
	return n, nil
}

// unimplementedPredictor answers the recommendation and model services until
// the predictor is wired in through Options.
type unimplementedPredictor struct {
	fathomv1.UnimplementedRecommendationServiceServer
	fathomv1.UnimplementedModelServiceServer
}

const noPredictor = "the predictor is not wired into this server yet; recommendations and models are unavailable (jobs still run on hints and default sizes)"

func (unimplementedPredictor) ListRecommendations(context.Context, *fathomv1.ListRecommendationsRequest) (*fathomv1.ListRecommendationsResponse, error) {
	return nil, status.Error(codes.Unimplemented, noPredictor)
}

func (unimplementedPredictor) RetrainModels(context.Context, *fathomv1.RetrainModelsRequest) (*fathomv1.RetrainModelsResponse, error) {
	return nil, status.Error(codes.Unimplemented, noPredictor)
}

func (unimplementedPredictor) ListModels(context.Context, *fathomv1.ListModelsRequest) (*fathomv1.ListModelsResponse, error) {
	return nil, status.Error(codes.Unimplemented, noPredictor)
}
