package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fathom-scheduler/fathom/controller"
	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/predictor"
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
	for _, v := range s.c.Jobs(nil) {
		jobs[v.State.String()]++
		for k, n := range v.Counts {
			tasks[k] += int(n)
		}
	}
	for _, v := range s.c.Nodes() {
		if v.Node.Up {
			nodes["up"]++
		} else {
			nodes["down"]++
		}
		if !v.Node.Schedulable {
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
// fathom_node_* and fathom_scheduler_tasks / pending_tasks, with each
// task's recommended limit from the predictor.
func (s *Server) clusterState() metrics.ClusterState {
	var cs metrics.ClusterState
	now := s.now()
	var pred interface {
		Recommend(predictor.TaskKey, time.Time) (predictor.Recommendation, error)
	}
	if s.o.RightSizer != nil {
		pred = s.o.RightSizer.Predictor()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.c.Nodes() {
		n := &v.Node
		cs.Nodes = append(cs.Nodes, metrics.NodeState{Name: n.Name, Ready: n.Up, Schedulable: n.Schedulable,
			CPUCapacityCores: n.CPU, MemoryCapacityBytes: float64(n.Memory), LastHeartbeat: v.LastSeen})
	}
	for _, v := range s.c.Jobs(nil) {
		ts, _ := s.c.JobTasks(v.Job.ID)
		for i := range ts {
			t := &ts[i]
			st := metrics.TaskState{Namespace: v.Job.Spec.Namespace, JobName: v.Job.Spec.Name, Task: t.ID(), Node: t.Node,
				State: t.State.String(), Priority: v.Job.Spec.Priority,
				CPURequestCores: t.CPURequest, MemoryRequestBytes: float64(t.MemoryRequest)}
			if pred != nil && (t.State == controller.Running || t.State == controller.Placed) {
				if rec, err := pred.Recommend(keyOf(v.Job.Spec.Namespace, v.Job.Spec.Name, t.Index), now); err == nil {
					st.RecommendedCPUCores, st.RecommendedMemoryBytes = rec.Limit.CPU, rec.Limit.Memory
				}
			}
			cs.Tasks = append(cs.Tasks, st)
		}
	}
	return cs
}
