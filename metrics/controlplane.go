package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Control-plane metric names (fathom_scheduler_*, fathom_predictor_*,
// fathom_api_*, fathom_node_*). The dashboards query these names.
const (
	SchedulerPlacementDuration = "fathom_scheduler_placement_duration_seconds"
	SchedulerPlacementsTotal   = "fathom_scheduler_placements_total"
	SchedulerPreemptionsTotal  = "fathom_scheduler_preemptions_total"
	SchedulerReschedulesTotal  = "fathom_scheduler_reschedules_total"
	SchedulerEvictionsTotal    = "fathom_scheduler_evictions_total"
	SchedulerResizesTotal      = "fathom_scheduler_resizes_total"
	SchedulerPendingTasks      = "fathom_scheduler_pending_tasks"
	SchedulerTasks             = "fathom_scheduler_tasks"

	PredictorRecommendationsTotal   = "fathom_predictor_recommendations_total"
	PredictorTrainingDuration       = "fathom_predictor_training_duration_seconds"
	PredictorLastTrainingTimestamp  = "fathom_predictor_last_training_timestamp_seconds"
	PredictorRecommendedCPUCores    = "fathom_predictor_recommended_cpu_cores"
	PredictorRecommendedMemoryBytes = "fathom_predictor_recommended_memory_bytes"
	PredictorErrorRatio             = "fathom_predictor_error_ratio"

	APIRequestsTotal   = "fathom_api_requests_total"
	APIRequestDuration = "fathom_api_request_duration_seconds"

	NodeUp                     = "fathom_node_up"
	NodeSchedulable            = "fathom_node_schedulable"
	NodeCPURequestedCores      = "fathom_node_cpu_requested_cores"
	NodeMemoryRequestedBytes   = "fathom_node_memory_requested_bytes"
	NodeLastHeartbeatTimestamp = "fathom_node_last_heartbeat_timestamp_seconds"
	NodeTasks                  = "fathom_node_tasks"
)

// SchedulerMetrics are the events of the scheduler loop. The server observes
// them as it applies each plan; they never drive a decision.
type SchedulerMetrics struct {
	// PlacementDuration: wall time of one scheduler pass (Place over a batch).
	PlacementDuration prometheus.Histogram
	// Placements by result: "placed" | "unschedulable" | "error".
	Placements *prometheus.CounterVec
	// Preemptions: tasks stopped to make room, by the victim's priority.
	Preemptions *prometheus.CounterVec
	// Reschedules: tasks moved, by reason ("node_failed", "consolidation", "drain", …).
	Reschedules *prometheus.CounterVec
	// Evictions: tasks killed by an agent under pressure or an OOM, by the
	// task's namespace and job and the reason.
	Evictions *prometheus.CounterVec
	// Resizes: in-place request/limit changes applied, by resource.
	Resizes *prometheus.CounterVec
}

// NewSchedulerMetrics creates and registers the scheduler's metrics on reg.
func NewSchedulerMetrics(reg prometheus.Registerer) (*SchedulerMetrics, error) {
	m := &SchedulerMetrics{
		PlacementDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    SchedulerPlacementDuration,
			Help:    "Wall time of one scheduler pass placing a batch of tasks.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100 µs .. 3.3 s
		}),
		Placements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SchedulerPlacementsTotal,
			Help: "Placement decisions by result (placed, unschedulable, error).",
		}, []string{"result"}),
		Preemptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SchedulerPreemptionsTotal,
			Help: "Tasks preempted to make room for higher-priority ones, by the victim's priority.",
		}, []string{LabelPriority}),
		Reschedules: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SchedulerReschedulesTotal,
			Help: "Tasks moved to another node, by reason.",
		}, []string{LabelReason}),
		Evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SchedulerEvictionsTotal,
			Help: "Tasks evicted by agents (memory pressure, OOM), by namespace, job and reason.",
		}, []string{LabelNamespace, LabelJobName, LabelReason}),
		Resizes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SchedulerResizesTotal,
			Help: "In-place request/limit changes applied, by resource.",
		}, []string{LabelResource}),
	}
	// Results and resources are known up front; export zeros so rate() works
	// from the first scrape.
	for _, r := range []string{"placed", "unschedulable", "error"} {
		m.Placements.WithLabelValues(r)
	}
	for _, r := range []string{"cpu", "memory"} {
		m.Resizes.WithLabelValues(r)
	}
	return m, register(reg, m.PlacementDuration, m.Placements, m.Preemptions, m.Reschedules, m.Evictions, m.Resizes)
}

// PredictorMetrics are the events of the predictor loop.
type PredictorMetrics struct {
	// Recommendations made, by resource.
	Recommendations *prometheus.CounterVec
	// TrainingDuration of one retraining pass.
	TrainingDuration prometheus.Histogram
	// LastTraining is the Unix time the last retraining pass finished.
	LastTraining prometheus.Gauge
	// Error: |predicted − observed| / observed of each matured recommendation,
	// by resource (observed once the window it predicted has passed).
	Error *prometheus.HistogramVec
}

// NewPredictorMetrics creates and registers the predictor's metrics on reg.
func NewPredictorMetrics(reg prometheus.Registerer) (*PredictorMetrics, error) {
	m := &PredictorMetrics{
		Recommendations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: PredictorRecommendationsTotal,
			Help: "Recommendations made, by resource.",
		}, []string{LabelResource}),
		TrainingDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    PredictorTrainingDuration,
			Help:    "Wall time of one predictor retraining pass.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms .. 33 s
		}),
		LastTraining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: PredictorLastTrainingTimestamp,
			Help: "Unix time the last retraining pass finished.",
		}),
		Error: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    PredictorErrorRatio,
			Help:    "Relative error |predicted - observed| / observed of matured recommendations, by resource.",
			Buckets: []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5},
		}, []string{LabelResource}),
	}
	for _, r := range []string{"cpu", "memory"} {
		m.Recommendations.WithLabelValues(r)
		m.Error.WithLabelValues(r)
	}
	return m, register(reg, m.Recommendations, m.TrainingDuration, m.LastTraining, m.Error)
}

// ObserveTraining records one retraining pass that ran from start to end.
func (m *PredictorMetrics) ObserveTraining(start, end time.Time) {
	m.TrainingDuration.Observe(end.Sub(start).Seconds())
	m.LastTraining.Set(float64(end.UnixNano()) / 1e9)
}

// APIMetrics instrument the control plane's HTTP API.
type APIMetrics struct {
	Requests *prometheus.CounterVec
	Duration *prometheus.HistogramVec
}

// NewAPIMetrics creates and registers the API metrics on reg.
func NewAPIMetrics(reg prometheus.Registerer) (*APIMetrics, error) {
	m := &APIMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: APIRequestsTotal,
			Help: "HTTP API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    APIRequestDuration,
			Help:    "HTTP API request latency by route and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
	}
	return m, register(reg, m.Requests, m.Duration)
}

// Instrument wraps h so that its requests are counted and timed under route
// (a fixed pattern such as "/v1/jobs/{id}", never the raw path).
func (m *APIMetrics) Instrument(route string, h http.Handler) http.Handler {
	c := m.Requests.MustCurryWith(prometheus.Labels{"route": route})
	d := m.Duration.MustCurryWith(prometheus.Labels{"route": route})
	return promhttp.InstrumentHandlerDuration(d, promhttp.InstrumentHandlerCounter(c, h))
}

// ClusterState is a read-only snapshot of what the control plane knows,
// taken when Prometheus collects. The server builds it from its state.
type ClusterState struct {
	Nodes []NodeState
	Tasks []TaskState
}

// NodeState is one node as the control plane sees it.
type NodeState struct {
	Name                string
	Ready               bool // heartbeats arrive
	Schedulable         bool // not cordoned or draining
	CPUCapacityCores    float64
	MemoryCapacityBytes float64
	LastHeartbeat       time.Time
}

// TaskState is one task as the control plane sees it.
type TaskState struct {
	Namespace, JobName, Task, Node string
	// State: "pending" | "running" | "stopped" | … (the server's words).
	State    string
	Priority string
	// Requests the scheduler packs with (zero while unsized).
	CPURequestCores, MemoryRequestBytes float64
	// The predictor's latest recommendation; zero when it has none.
	RecommendedCPUCores, RecommendedMemoryBytes float64
}

// ClusterCollector exports a ClusterState as fathom_node_*,
// fathom_scheduler_pending_tasks, fathom_scheduler_tasks and
// fathom_predictor_recommended_*; it reads state through snapshot on every
// collection and keeps none itself. snapshot must be safe for concurrent use.
type ClusterCollector struct {
	snapshot func() ClusterState

	up, schedulable, cpuCap, memCap, cpuReq, memReq, heartbeat, nodeTasks *prometheus.Desc
	pending, tasks, recCPU, recMem                                        *prometheus.Desc
}

var _ prometheus.Collector = (*ClusterCollector)(nil)

// NewClusterCollector returns a collector over snapshot; register it on the
// server's registry.
func NewClusterCollector(snapshot func() ClusterState) *ClusterCollector {
	node := []string{LabelNode}
	task := []string{LabelNamespace, LabelJobName, LabelTask, LabelNode}
	return &ClusterCollector{
		snapshot:    snapshot,
		up:          prometheus.NewDesc(NodeUp, "1 if the node's agent is heartbeating, else 0.", node, nil),
		schedulable: prometheus.NewDesc(NodeSchedulable, "1 if new tasks may be placed on the node (not cordoned or draining).", node, nil),
		cpuCap:      prometheus.NewDesc("fathom_node_registered_cpu_capacity_cores", "CPU capacity the node registered with.", node, nil),
		memCap:      prometheus.NewDesc("fathom_node_registered_memory_capacity_bytes", "Memory capacity the node registered with.", node, nil),
		cpuReq:      prometheus.NewDesc(NodeCPURequestedCores, "Sum of CPU requests of the tasks placed on the node.", node, nil),
		memReq:      prometheus.NewDesc(NodeMemoryRequestedBytes, "Sum of memory requests of the tasks placed on the node.", node, nil),
		heartbeat:   prometheus.NewDesc(NodeLastHeartbeatTimestamp, "Unix time of the node's last heartbeat.", node, nil),
		nodeTasks:   prometheus.NewDesc(NodeTasks, "Tasks placed on the node and not stopped.", node, nil),
		pending:     prometheus.NewDesc(SchedulerPendingTasks, "Tasks waiting for a placement, by priority.", []string{LabelPriority}, nil),
		tasks:       prometheus.NewDesc(SchedulerTasks, "Tasks by state.", []string{"state"}, nil),
		recCPU:      prometheus.NewDesc(PredictorRecommendedCPUCores, "The predictor's current CPU recommendation for the task.", task, nil),
		recMem:      prometheus.NewDesc(PredictorRecommendedMemoryBytes, "The predictor's current memory recommendation for the task.", task, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ClusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.schedulable, c.cpuCap, c.memCap, c.cpuReq, c.memReq, c.heartbeat, c.nodeTasks, c.pending, c.tasks, c.recCPU, c.recMem} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ClusterCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.snapshot()
	type sums struct{ cpu, mem, n float64 }
	perNode := map[string]*sums{}
	for _, n := range st.Nodes {
		perNode[n.Name] = &sums{}
	}
	pending := map[string]float64{"prod": 0, "batch": 0, "best-effort": 0}
	states := map[string]float64{}
	for _, t := range st.Tasks {
		states[t.State]++
		if t.State == "pending" {
			pending[t.Priority]++
		}
		if s := perNode[t.Node]; s != nil && t.State != "pending" && t.State != "stopped" && t.State != "failed" && t.State != "succeeded" {
			s.cpu += t.CPURequestCores
			s.mem += t.MemoryRequestBytes
			s.n++
		}
		if t.RecommendedCPUCores > 0 {
			ch <- prometheus.MustNewConstMetric(c.recCPU, prometheus.GaugeValue, t.RecommendedCPUCores, t.Namespace, t.JobName, t.Task, t.Node)
		}
		if t.RecommendedMemoryBytes > 0 {
			ch <- prometheus.MustNewConstMetric(c.recMem, prometheus.GaugeValue, t.RecommendedMemoryBytes, t.Namespace, t.JobName, t.Task, t.Node)
		}
	}
	for _, n := range st.Nodes {
		s := perNode[n.Name]
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, b2f(n.Ready), n.Name)
		ch <- prometheus.MustNewConstMetric(c.schedulable, prometheus.GaugeValue, b2f(n.Schedulable), n.Name)
		ch <- prometheus.MustNewConstMetric(c.cpuCap, prometheus.GaugeValue, n.CPUCapacityCores, n.Name)
		ch <- prometheus.MustNewConstMetric(c.memCap, prometheus.GaugeValue, n.MemoryCapacityBytes, n.Name)
		ch <- prometheus.MustNewConstMetric(c.cpuReq, prometheus.GaugeValue, s.cpu, n.Name)
		ch <- prometheus.MustNewConstMetric(c.memReq, prometheus.GaugeValue, s.mem, n.Name)
		ch <- prometheus.MustNewConstMetric(c.nodeTasks, prometheus.GaugeValue, s.n, n.Name)
		if !n.LastHeartbeat.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.heartbeat, prometheus.GaugeValue, float64(n.LastHeartbeat.UnixNano())/1e9, n.Name)
		}
	}
	for p, v := range pending {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, v, p)
	}
	for s, v := range states {
		ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, v, s)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// register registers every collector on reg (nil means none) and returns the
// first error, e.g. a duplicate registration.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
