package server

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/controller"
)

// ListNodes lists nodes by name with their requested sums and usage, and the
// controller's latest autoscaling report: which nodes could go, how many
// machines the work needs, and what the node provider hook is doing.
func (s *Server) ListNodes(_ context.Context, req *fathomv1.ListNodesRequest) (*fathomv1.ListNodesResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	after, err := parseToken("nodes", req.GetPageToken())
	if err != nil {
		return nil, err
	}
	now := s.now()
	s.mu.RLock()
	views, more := s.c.NodesAfter(after, size)
	as := s.c.AutoscaleView(now)
	s.mu.RUnlock()
	resp := &fathomv1.ListNodesResponse{}
	if more {
		resp.NextPageToken = pageToken("nodes", views[len(views)-1].Node.Name)
	}
	removable := map[string]bool{}
	for _, n := range as.Report.CouldRemove {
		removable[n] = true
	}
	for i := range views {
		n := nodeView(&views[i])
		n.Removable = removable[n.GetName()] || n.GetRemovalRequestedAt() != nil
		n.Removal = as.Notes[n.GetName()]
		resp.Nodes = append(resp.Nodes, n)
	}
	if as.Valid {
		r := as.Report
		rep := &fathomv1.AutoscaleReport{
			ComputedAt: timestamppb.New(as.At), NodesUp: int32(r.NodesUp), MachinesUsed: int32(r.MachinesUsed),
			MachinesNeeded: int32(r.MachinesNeeded), LowerBound: int32(r.LowerBound), CouldRemove: r.CouldRemove,
			Add: int32(r.Add), Unfittable: int32(r.Unfittable), NodeCpuCores: r.Shape[0], NodeMemoryBytes: int64(r.Shape[1]),
			NodeProvider: &fathomv1.NodeProviderStatus{Configured: s.o.NodeProvider.Command != "", Removing: as.Removing, Handed: as.Handed,
				NextAddAt: ts(as.NextAddAt), Calling: as.Calling, LastCall: s.prov.lastCall()},
		}
		resp.Autoscale = rep
	}
	return resp, nil
}

// GetNode returns one node, as ListNodes shows it.
func (s *Server) GetNode(_ context.Context, req *fathomv1.GetNodeRequest) (*fathomv1.Node, error) {
	now := s.now()
	s.mu.RLock()
	v, ok := s.c.NodeByName(req.GetName())
	var as controller.Autoscale
	if ok {
		as = s.c.AutoscaleView(now)
	}
	s.mu.RUnlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "node %q not found; list nodes with 'fathom node list'", req.GetName())
	}
	n := nodeView(&v)
	n.Removable = slices.Contains(as.Report.CouldRemove, n.GetName()) || n.GetRemovalRequestedAt() != nil
	n.Removal = as.Notes[n.GetName()]
	return n, nil
}

// CordonNode makes a node unschedulable (or schedulable again).
func (s *Server) CordonNode(ctx context.Context, req *fathomv1.CordonNodeRequest) (*fathomv1.Node, error) {
	var n controller.Node
	err := s.do(ctx, func(c *controller.Controller, now time.Time) error {
		var err error
		n, err = c.Cordon(req.GetName(), req.GetUncordon(), now)
		return err
	})
	if err != nil {
		return nil, controllerErr(err)
	}
	if req.GetUncordon() {
		s.Kick()
	}
	return s.nodeOrRecord(&n), nil
}

// DrainNode cordons a node and moves its tasks elsewhere: each keeps
// running there until its replacement runs.
func (s *Server) DrainNode(ctx context.Context, req *fathomv1.DrainNodeRequest) (*fathomv1.Node, error) {
	var n controller.Node
	err := s.do(ctx, func(c *controller.Controller, now time.Time) error {
		var err error
		n, err = c.Drain(req.GetName(), now)
		return err
	})
	if err != nil {
		return nil, controllerErr(err)
	}
	s.Kick()
	return s.nodeOrRecord(&n), nil
}

// nodeOrRecord is the node's view, or its record when it is gone.
func (s *Server) nodeOrRecord(n *controller.Node) *fathomv1.Node {
	s.mu.RLock()
	v, ok := s.c.NodeByName(n.Name)
	s.mu.RUnlock()
	if !ok {
		return nodeRecord(n)
	}
	return nodeView(&v)
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
