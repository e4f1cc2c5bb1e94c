package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"

	"github.com/fathom-scheduler/fathom/metrics"
)

func TestClusterCollectorExportsTheSnapshot(t *testing.T) {
	hb := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	st := metrics.ClusterState{
		Nodes: []metrics.NodeState{
			{Name: "a", Ready: true, Schedulable: true, CPUCapacityCores: 4, MemoryCapacityBytes: 8 << 30, LastHeartbeat: hb},
			{Name: "b", Ready: false, Schedulable: false, CPUCapacityCores: 2, MemoryCapacityBytes: 4 << 30},
		},
		Tasks: []metrics.TaskState{
			{Namespace: "ns", JobName: "web", Task: "web-0", Node: "a", State: "running", Priority: "prod", CPURequestCores: 0.5, MemoryRequestBytes: 100, RecommendedCPUCores: 0.4},
			{Namespace: "ns", JobName: "web", Task: "web-1", Node: "a", State: "running", Priority: "prod", CPURequestCores: 0.25, MemoryRequestBytes: 50, RecommendedMemoryBytes: 64},
			{Namespace: "ns", JobName: "web", Task: "web-2", State: "pending", Priority: "prod"},
			{Namespace: "ns", JobName: "etl", Task: "etl-0", State: "pending", Priority: "batch"},
			{Namespace: "ns", JobName: "old", Task: "old-0", Node: "a", State: "stopped", CPURequestCores: 9},
		},
	}
	c := metrics.NewClusterCollector(func() metrics.ClusterState { mu.Lock(); defer mu.Unlock(); return st })
	want := `
# HELP fathom_node_cpu_requested_cores Sum of CPU requests of the tasks placed on the node.
# TYPE fathom_node_cpu_requested_cores gauge
fathom_node_cpu_requested_cores{node="a"} 0.75
fathom_node_cpu_requested_cores{node="b"} 0
# HELP fathom_node_up 1 if the node's agent is heartbeating, else 0.
# TYPE fathom_node_up gauge
fathom_node_up{node="a"} 1
fathom_node_up{node="b"} 0
# HELP fathom_node_tasks Tasks placed on the node and not stopped.
# TYPE fathom_node_tasks gauge
fathom_node_tasks{node="a"} 2
fathom_node_tasks{node="b"} 0
# HELP fathom_node_last_heartbeat_timestamp_seconds Unix time of the node's last heartbeat.
# TYPE fathom_node_last_heartbeat_timestamp_seconds gauge
fathom_node_last_heartbeat_timestamp_seconds{node="a"} 1.7e+09
# HELP fathom_scheduler_pending_tasks Tasks waiting for a placement, by priority.
# TYPE fathom_scheduler_pending_tasks gauge
fathom_scheduler_pending_tasks{priority="batch"} 1
fathom_scheduler_pending_tasks{priority="best-effort"} 0
fathom_scheduler_pending_tasks{priority="prod"} 1
# HELP fathom_scheduler_tasks Tasks by state.
# TYPE fathom_scheduler_tasks gauge
fathom_scheduler_tasks{state="pending"} 2
fathom_scheduler_tasks{state="running"} 2
fathom_scheduler_tasks{state="stopped"} 1
# HELP fathom_predictor_recommended_cpu_cores The predictor's current CPU recommendation for the task.
# TYPE fathom_predictor_recommended_cpu_cores gauge
fathom_predictor_recommended_cpu_cores{job_name="web",namespace="ns",node="a",task="web-0"} 0.4
# HELP fathom_predictor_recommended_memory_bytes The predictor's current memory recommendation for the task.
# TYPE fathom_predictor_recommended_memory_bytes gauge
fathom_predictor_recommended_memory_bytes{job_name="web",namespace="ns",node="a",task="web-1"} 64
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"fathom_node_cpu_requested_cores", "fathom_node_up", "fathom_node_tasks", "fathom_node_last_heartbeat_timestamp_seconds",
		"fathom_scheduler_pending_tasks", "fathom_scheduler_tasks",
		"fathom_predictor_recommended_cpu_cores", "fathom_predictor_recommended_memory_bytes"); err != nil {
		t.Error(err)
	}
	// The collector keeps no state: a changed snapshot shows at the next collection.
	mu.Lock()
	st.Nodes[1].Ready = true
	mu.Unlock()
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP fathom_node_up 1 if the node's agent is heartbeating, else 0.
# TYPE fathom_node_up gauge
fathom_node_up{node="a"} 1
fathom_node_up{node="b"} 1
`), "fathom_node_up"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestEventMetricsRegisterOnTheGivenRegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	sm, err := metrics.NewSchedulerMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := metrics.NewPredictorMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	am, err := metrics.NewAPIMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// A second set on the same registry is a clear error, not a panic.
	if _, err := metrics.NewSchedulerMetrics(reg); err == nil {
		t.Error("registering scheduler metrics twice succeeded")
	}
	sm.Placements.WithLabelValues("placed").Add(3)
	sm.Preemptions.WithLabelValues("batch").Inc()
	pm.ObserveTraining(time.Unix(100, 0), time.Unix(102, 500_000_000))
	h := am.Instrument("/v1/jobs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(400) }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/jobs", nil))

	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP fathom_scheduler_placements_total Placement decisions by result (placed, unschedulable, error).
# TYPE fathom_scheduler_placements_total counter
fathom_scheduler_placements_total{result="error"} 0
fathom_scheduler_placements_total{result="placed"} 3
fathom_scheduler_placements_total{result="unschedulable"} 0
# HELP fathom_scheduler_preemptions_total Tasks preempted to make room for higher-priority ones, by the victim's priority.
# TYPE fathom_scheduler_preemptions_total counter
fathom_scheduler_preemptions_total{priority="batch"} 1
# HELP fathom_predictor_last_training_timestamp_seconds Unix time the last retraining pass finished.
# TYPE fathom_predictor_last_training_timestamp_seconds gauge
fathom_predictor_last_training_timestamp_seconds 102.5
# HELP fathom_api_requests_total HTTP API requests by route, method and status code.
# TYPE fathom_api_requests_total counter
fathom_api_requests_total{code="400",method="post",route="/v1/jobs"} 1
`), "fathom_scheduler_placements_total", "fathom_scheduler_preemptions_total",
		"fathom_predictor_last_training_timestamp_seconds", "fathom_api_requests_total"); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestAppendGatheredMakesControlPlaneMetricsQueryable(t *testing.T) {
	s, _ := startStore(t, metrics.StoreOptions{})
	reg := prometheus.NewRegistry()
	sm, err := metrics.NewSchedulerMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	target := map[string]string{"job": "fathom-server", "instance": "127.0.0.1:7070"}
	// Two self-scrapes 15 s apart with 100 fast placements in between.
	if _, err := s.AppendGathered(context.Background(), reg, now.Add(-15*time.Second), target); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		sm.PlacementDuration.Observe(0.0003)
	}
	n, err := s.AppendGathered(context.Background(), reg, now, target)
	if err != nil {
		t.Fatal(err)
	}
	if n < 16 {
		t.Errorf("appended only %d samples", n)
	}
	v, err := s.Query(context.Background(),
		`histogram_quantile(0.99, sum by (le) (rate(fathom_scheduler_placement_duration_seconds_bucket{job="fathom-server"}[1m])))`, now)
	if err != nil {
		t.Fatal(err)
	}
	// All observations are 300 µs, in the (200 µs, 400 µs] bucket.
	if vec, ok := v.(promql.Vector); !ok || len(vec) != 1 || vec[0].F <= 0.0002 || vec[0].F > 0.0004 {
		t.Errorf("p99 placement latency = %s, want within (0.0002, 0.0004]", v)
	}
	v, err = s.Query(context.Background(), `fathom_scheduler_placements_total{result="placed",instance="127.0.0.1:7070"}`, now)
	if err != nil || !strings.Contains(v.String(), "=> 0 @") {
		t.Errorf("placements = %v, %v", v, err)
	}
}
