package server

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// ListNodes lists nodes by name with their requested sums and usage, and the
// scheduler's latest autoscaling report: which nodes could go, how many
// machines the work needs, and what the node provider hook is doing.
func (s *Server) ListNodes(context.Context, *fathomv1.ListNodesRequest) (*fathomv1.ListNodesResponse, error) {
	now := s.now()
	rep, removable, waiting, removal := s.autoscaleView(now) // before s.mu: the two locks are never held together
	s.mu.RLock()
	defer s.mu.RUnlock()
	resp := &fathomv1.ListNodesResponse{Autoscale: rep}
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
		n.Removable, n.Removal = removable[name], waiting[name]
		if n.GetRemovalRequestedAt() != nil {
			// The provider's memory may lag an uncordon by one step: its
			// notes count only while the node is still marked.
			n.Removable, n.Removal = true, removal[name]
			if n.Removal == "" {
				n.Removal = s.removalNote(n, now)
			}
			if rep != nil {
				if strings.HasPrefix(n.Removal, "handed") {
					rep.NodeProvider.Handed = append(rep.NodeProvider.Handed, name)
				} else {
					rep.NodeProvider.Removing = append(rep.NodeProvider.Removing, name)
				}
			}
		}
		resp.Nodes = append(resp.Nodes, n)
	}
	sort.Slice(resp.Nodes, func(a, b int) bool { return resp.Nodes[a].GetName() < resp.Nodes[b].GetName() })
	if rep != nil {
		slices.Sort(rep.NodeProvider.Removing)
		slices.Sort(rep.NodeProvider.Handed)
		shapes := make([]providerNode, len(resp.Nodes))
		for i, n := range resp.Nodes {
			shapes[i] = providerNode{cpu: n.GetCpuCores(), memory: n.GetMemoryBytes()}
		}
		cpu, mem := commonShape(shapes)
		rep.NodeCpuCores, rep.NodeMemoryBytes = cpu, mem
	}
	return resp, nil
}

// removalNote says where the removal of a node cordoned for it stands, for a
// node the hook was not handed yet. n carries its task count.
func (s *Server) removalNote(n *fathomv1.Node, now time.Time) string {
	since := "cordoned for removal " + shortDur(now.Sub(n.GetRemovalRequestedAt().AsTime())) + " ago"
	switch {
	case s.o.NodeProvider.Command == "":
		return since + ", but this server has no --node-provider-cmd; make it schedulable again with: fathom node cordon --undo " + n.GetName()
	case n.GetState() != fathomv1.NodeState_NODE_STATE_UP:
		return since + "; the node is down"
	case n.GetTaskCount() > 0:
		return fmt.Sprintf("%s; waiting for %d task(s) to move", since, n.GetTaskCount())
	}
	return since + "; empty, handed to the node provider at the next report"
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
		// Uncordon also cancels a removal by the node provider hook.
		n.Draining, n.RemovalRequestedAt = false, nil
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
	n, _, err := s.drainLocked(ctx, req.GetName(), "drained", nil)
	return n, err
}

// drainLocked cordons a node, marks it draining when it has tasks, moves its
// tasks back to pending and, when edit is not nil, lets it change the node
// record first (edit returns false to leave the node alone). why is the verb
// in the tasks' history ("drained"). Caller holds wmu.
func (s *Server) drainLocked(ctx context.Context, name, why string, edit func(*fathomv1.Node) bool) (*fathomv1.Node, int, error) {
	now := s.now()
	s.mu.RLock()
	ne := s.nodes[name]
	if ne == nil {
		s.mu.RUnlock()
		return nil, 0, status.Errorf(codes.NotFound, "node %q not found; list nodes with 'fathom node list'", name)
	}
	n := proto.Clone(ne.node).(*fathomv1.Node)
	if edit != nil && !edit(n) {
		s.mu.RUnlock()
		return n, 0, nil
	}
	n.Schedulable = false
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
			withHistory(t, now, "node "+n.GetName()+" "+why+" while the task was stopping")
		} else {
			t.State = fathomv1.TaskState_TASK_STATE_PENDING
			withHistory(t, now, why+" from node "+n.GetName()+"; placing it elsewhere")
			t.Node = ""
			moved = append(moved, e)
		}
		b.tasks = append(b.tasks, t)
	}
	// A node drained by the operator shows as draining even when empty; one
	// emptied for removal only while tasks leave it.
	n.Draining = edit == nil || len(b.tasks) > 0
	s.mu.RUnlock()
	if err := s.commit(ctx, b); err != nil {
		return nil, 0, status.Errorf(codes.Unavailable, "not stored: %v", err)
	}
	s.Kick()
	return n, len(moved), nil
}

// markForRemoval cordons a node for the node provider hook, recording when,
// and moves away any task that landed there since the report that listed it
// as removable. A node that is no longer up and schedulable (the operator
// cordoned it, it went down) is left alone. It returns how many tasks moved.
func (s *Server) markForRemoval(ctx context.Context, name string, now time.Time) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, moved, err := s.drainLocked(ctx, name, "emptied for removal", func(n *fathomv1.Node) bool {
		if n.GetState() != fathomv1.NodeState_NODE_STATE_UP || !n.GetSchedulable() || n.GetRemovalRequestedAt() != nil {
			return false
		}
		n.RemovalRequestedAt = timestamppb.New(now)
		return true
	})
	return moved, err
}

// drainForRemoval moves away the tasks found on a node already cordoned for
// removal. It returns how many moved.
func (s *Server) drainForRemoval(ctx context.Context, name string) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, moved, err := s.drainLocked(ctx, name, "emptied for removal", func(n *fathomv1.Node) bool {
		return n.GetRemovalRequestedAt() != nil
	})
	return moved, err
}

// cancelRemoval makes a node cordoned for removal schedulable again and
// clears the mark (work waits for room, or the node was removed and its name
// may come back as a new machine).
func (s *Server) cancelRemoval(ctx context.Context, name string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	ne := s.nodes[name]
	if ne == nil || ne.node.GetRemovalRequestedAt() == nil {
		s.mu.RUnlock()
		return nil
	}
	n := proto.Clone(ne.node).(*fathomv1.Node)
	s.mu.RUnlock()
	n.Schedulable, n.Draining, n.RemovalRequestedAt = true, false, nil
	if err := s.commit(ctx, &batch{nodes: []*fathomv1.Node{n}}); err != nil {
		return err
	}
	s.Kick()
	return nil
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
