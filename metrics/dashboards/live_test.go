package dashboards_test

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/metrics/dashboards"
	"github.com/fathom-scheduler/fathom/metrics/synth"
)

// TestEveryPanelQueryReturnsData fills an embedded store the way a running
// cluster does — agents' per-task and per-node series by real remote-write
// requests, the control plane's metrics by self-scrape, the recording rules by
// the store's rule manager — then resolves each dashboard's template variables
// through the label-values API, as Grafana does, and runs every panel query of
// every committed dashboard over the HTTP API, asserting each returns data.
func TestEveryPanelQueryReturnsData(t *testing.T) {
	store, err := metrics.OpenStore(metrics.StoreOptions{Dir: t.TempDir(), RuleInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", store.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	now := time.Now()
	ctx := context.Background()
	FillLikeACluster(t, ctx, store, srv.URL, now)
	c, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	papi := promv1.NewAPI(c)

	// Recording rules are evaluated at real time (every second here, all
	// groups); wait for a first round of each group.
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, _, _, err := papi.Query(ctx, `count(namespace:fathom_task_cpu_slack_cores:sum) + count(node:fathom_task_cpu_usage_cores:rate1m) + count(namespace_job_name:fathom_task_memory_sizing_error:quantile)`, time.Now())
		if err == nil && len(v.(model.Vector)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording rules produced nothing within 15 s: %v %v", v, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	files, _ := filepath.Glob("*.json")
	if len(files) != 4 {
		t.Fatalf("want 4 committed dashboards, have %v", files)
	}
	total := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, qs, vars, err := dashboards.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		end := time.Now()
		start := end.Add(-30 * time.Minute)
		values, err := dashboards.Resolve(ctx, papi, vars, nil, start, end)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, q := range qs {
			total++
			expr := dashboards.Substitute(q.Expr, values, "1m", "15s", "30m")
			// Grafana's step for a 30 min range on a wide panel; tables are instant.
			var v model.Value
			var err error
			if q.Instant {
				v, _, _, err = papi.Query(ctx, expr, end)
			} else {
				v, _, _, err = papi.QueryRange(ctx, expr, promv1.Range{Start: start, End: end, Step: 15 * time.Second})
			}
			if err != nil {
				t.Errorf("%s / %s / %s: %v\n  %s", f, q.Panel, q.RefID, err, expr)
				continue
			}
			if !hasData(v) {
				t.Errorf("%s / %s / %s returned no data\n  %s", f, q.Panel, q.RefID, expr)
			}
		}
	}
	t.Logf("%d panel queries returned data", total)
}

func hasData(v model.Value) bool {
	if vec, ok := v.(model.Vector); ok {
		for _, s := range vec {
			if !math.IsNaN(float64(s.Value)) {
				return true
			}
		}
		return false
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return false
	}
	for _, s := range m {
		for _, p := range s.Values {
			if !math.IsNaN(float64(p.Value)) {
				return true
			}
		}
	}
	return false
}

// FillLikeACluster pushes 20 minutes of two jobs on three nodes by remote write
// (in 10 s pushes, as agents do) and self-scrapes control-plane metrics that
// saw placements, preemptions, reschedules, evictions, resizes, trainings and
// API calls every 15 s.
func FillLikeACluster(t *testing.T, ctx context.Context, store *metrics.Store, base string, now time.Time) {
	t.Helper()
	start := now.Add(-20 * time.Minute)
	err := synth.Walk(synth.Cluster{Namespace: "team-a", Jobs: []string{"web", "etl"}, Tasks: 3, Nodes: 3, Start: start, End: now, Seed: 1}, 1,
		func(batch []metrics.Series) error {
			body, err := metrics.EncodeWriteRequest(batch)
			if err != nil {
				return err
			}
			return metrics.PushWrite(ctx, nil, base+"/api/v1/write", body)
		})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
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
	var beat time.Time
	cluster := metrics.NewClusterCollector(func() metrics.ClusterState {
		st := metrics.ClusterState{}
		for i := 0; i < 3; i++ {
			st.Nodes = append(st.Nodes, metrics.NodeState{Name: synth.NodeName(i), Ready: true, Schedulable: i != 2,
				CPUCapacityCores: 2, MemoryCapacityBytes: 4 << 30, LastHeartbeat: beat})
		}
		for _, job := range []string{"web", "etl"} {
			for i := 0; i < 3; i++ {
				st.Tasks = append(st.Tasks, metrics.TaskState{Namespace: "team-a", JobName: job, Task: synth.TaskName(job, i),
					Node: synth.NodeName(i % 3), State: "running", Priority: "prod", CPURequestCores: 0.3, MemoryRequestBytes: 128 << 20,
					RecommendedCPUCores: 0.28, RecommendedMemoryBytes: 120 << 20})
			}
		}
		st.Tasks = append(st.Tasks, metrics.TaskState{Namespace: "team-a", JobName: "web", Task: "web-3", State: "pending", Priority: "prod"})
		return st
	})
	reg.MustRegister(cluster)
	h := am.Instrument("/v1/jobs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	target := map[string]string{"job": "fathom-server", "instance": "127.0.0.1:7070"}
	for ts := start; !ts.After(now); ts = ts.Add(15 * time.Second) {
		beat = ts.Add(-2 * time.Second)
		sm.PlacementDuration.Observe(0.0004)
		sm.Placements.WithLabelValues("placed").Inc()
		sm.Preemptions.WithLabelValues("batch").Inc()
		sm.Reschedules.WithLabelValues("node_failed").Inc()
		sm.Evictions.WithLabelValues("team-a", "web", "memory_pressure").Inc()
		sm.Evictions.WithLabelValues("team-a", "etl", "oom").Inc()
		sm.Resizes.WithLabelValues("memory").Inc()
		pm.Recommendations.WithLabelValues("cpu").Add(6)
		pm.Error.WithLabelValues("cpu").Observe(0.12)
		pm.Error.WithLabelValues("memory").Observe(0.05)
		pm.ObserveTraining(ts.Add(-time.Second), ts)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/jobs", nil))
		if _, err := store.AppendGathered(ctx, reg, ts, target); err != nil {
			t.Fatal(err)
		}
	}
}
