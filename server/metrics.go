package server

import (
	"github.com/prometheus/client_golang/prometheus"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// apiMetrics are the control plane's fathom_api_* metrics.
type apiMetrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	jobsCreated prometheus.Counter
	placements  prometheus.Counter
	nodesDown   prometheus.Counter
}

func newAPIMetrics(reg prometheus.Registerer, s *Server) (*apiMetrics, error) {
	m := &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fathom_api_requests_total",
			Help: "API requests by protocol (grpc, http), method or route, and status code.",
		}, []string{"protocol", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fathom_api_request_duration_seconds",
			Help:    "API request latency by protocol and method or route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"protocol", "method"}),
		jobsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fathom_api_jobs_created_total", Help: "Jobs acknowledged (committed to etcd).",
		}),
		placements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fathom_api_task_placements_total", Help: "Tasks assigned to a node by the placement loop.",
		}),
		nodesDown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fathom_api_nodes_down_total", Help: "Times a node was declared down for missing heartbeats.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.jobsCreated, m.placements, m.nodesDown, stateCollector{s}} {
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
