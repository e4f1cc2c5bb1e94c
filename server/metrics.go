package server

import (
	"github.com/prometheus/client_golang/prometheus"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/models"
)

// apiMetrics are the control plane's fathom_api_* metrics. Request counts and
// latencies use the shared definitions in package metrics (labels route,
// method, code; for gRPC, route is the full method and method is "grpc").
type apiMetrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	jobsCreated prometheus.Counter
	placements  prometheus.Counter
	nodesDown   prometheus.Counter
	// sched and pred are the fathom_scheduler_* and fathom_predictor_*
	// events of the placement and right-sizing loops.
	sched *metrics.SchedulerMetrics
	pred  *metrics.PredictorMetrics
}

func newAPIMetrics(reg prometheus.Registerer, s *Server) (*apiMetrics, error) {
	api, err := metrics.NewAPIMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &apiMetrics{
		requests: api.Requests,
		duration: api.Duration,
		jobsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fathom_api_jobs_created_total", Help: "Jobs acknowledged (committed to etcd).",
		}),
		placements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fathom_api_task_placements_total", Help: "Tasks assigned to a node by the reconcile loop.",
		}),
		nodesDown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fathom_api_nodes_down_total", Help: "Times a node was declared down for missing heartbeats.",
		}),
	}
	if m.sched, err = metrics.NewSchedulerMetrics(reg); err != nil {
		return nil, err
	}
	if m.pred, err = metrics.NewPredictorMetrics(reg); err != nil {
		return nil, err
	}
	cluster := metrics.NewClusterCollector(s.clusterState)
	for _, c := range []prometheus.Collector{m.jobsCreated, m.placements, m.nodesDown, stateCollector{s}, cluster} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// stateCollector observes the in-memory state at scrape time: jobs, tasks and
// nodes by state. Metrics observe state; they are never the state.
type stateCollector struct{ s *Server }

var (
	jobsDesc  = prometheus.NewDesc("fathom_api_jobs", "Jobs by state.", []string{"state"}, nil)
	tasksDesc = prometheus.NewDesc("fathom_api_tasks", "Tasks by state.", []string{"state"}, nil)
	nodesDesc = prometheus.NewDesc("fathom_api_nodes", "Nodes by state (up, down, cordoned).", []string{"state"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- tasksDesc
	ch <- nodesDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	jobs, tasks := map[string]int{}, map[string]int{}
	nodes := map[string]int{"up": 0, "down": 0, "cordoned": 0}
	s.mu.RLock()
	for _, e := range s.jobs {
		st, counts := s.jobState(e)
		jobs[JobStateName(st)]++
		for k, v := range counts {
			tasks[k] += int(v)
		}
	}
	for _, ne := range s.nodes {
		if ne.node.GetState() == fathomv1.NodeState_NODE_STATE_UP {
			nodes["up"]++
		} else {
			nodes["down"]++
		}
		if !ne.node.GetSchedulable() {
			nodes["cordoned"]++
		}
	}
	s.mu.RUnlock()
	for _, st := range []string{"pending", "running", "succeeded", "failed", "stopped"} {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(jobs[st]), st)
	}
	for _, st := range []string{"pending", "placed", "running", "succeeded", "failed", "lost", "stopped"} {
		ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(tasks[st]), st)
	}
	for st, n := range nodes {
		ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(n), st)
	}
}

// clusterState is the snapshot metrics.ClusterCollector exports as
// fathom_node_* and fathom_scheduler_tasks / pending_tasks.
func (s *Server) clusterState() metrics.ClusterState {
	var cs metrics.ClusterState
	// The predictor's current recommendation (limit) per task, copied before
	// taking s.mu so the two locks are never held together here.
	recs := map[string]models.Size{}
	if rs := s.o.RightSizer; rs != nil {
		rs.mu.Lock()
		for id, st := range rs.state {
			if st.hasRec {
				recs[id] = st.rec.Limit
			}
		}
		rs.mu.Unlock()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, ne := range s.nodes {
		n := ne.node
		cs.Nodes = append(cs.Nodes, metrics.NodeState{
			Name: n.GetName(), Ready: n.GetState() == fathomv1.NodeState_NODE_STATE_UP, Schedulable: n.GetSchedulable(),
			CPUCapacityCores: n.GetCpuCores(), MemoryCapacityBytes: float64(n.GetMemoryBytes()), LastHeartbeat: ne.lastSeen,
		})
	}
	for _, e := range s.jobs {
		for i := range e.tasks {
			t := s.taskView(e, i)
			cs.Tasks = append(cs.Tasks, metrics.TaskState{
				Namespace: t.GetNamespace(), JobName: t.GetJobName(), Task: t.GetId(), Node: t.GetNode(),
				State: StateName(t.GetState()), Priority: e.job.GetSpec().GetPriority(),
				CPURequestCores: t.GetCpuRequestCores(), MemoryRequestBytes: float64(t.GetMemoryRequestBytes()),
				RecommendedCPUCores: recs[t.GetId()].CPU, RecommendedMemoryBytes: recs[t.GetId()].Memory,
			})
		}
	}
	return cs
}
