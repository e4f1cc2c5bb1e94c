package dashboards_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/metrics/dashboards"
)

// The committed JSON is what the code generates; run `make generate` after
// changing a dashboard.
func TestCommittedJSONMatchesCode(t *testing.T) {
	ds, err := dashboards.All()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, d := range ds {
		want[d.File] = true
		gen, err := d.JSON()
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(d.File)
		if err != nil {
			t.Fatalf("%s: %v (run make generate)", d.File, err)
		}
		if !bytes.Equal(got, gen) {
			t.Errorf("%s differs from what metrics/dashboards generates; run make generate", d.File)
		}
	}
	files, _ := filepath.Glob("*.json")
	for _, f := range files {
		if !want[f] {
			t.Errorf("%s is committed but no longer generated; delete it", f)
		}
	}
	rules, err := os.ReadFile("../../deploy/prometheus/" + metrics.RecordingRulesFile)
	if err != nil || !bytes.Equal(rules, metrics.RecordingRules) {
		t.Errorf("deploy/prometheus/%s differs from metrics/rules (run make generate): %v", metrics.RecordingRulesFile, err)
	}
}

func TestDashboardsHaveTheIssuesPanelsAndVariables(t *testing.T) {
	want := map[string][]string{
		"cluster.json": {"CPU", "Memory", "Slack", "Oversubscription ratio", "Overloaded machines"},
		"job-rightsizing.json": {"Job CPU", "Job memory", "Sizing error across the job's tasks", "Tasks, OOM kills and evictions",
			"CPU: worst-sized tasks", "Memory: worst-sized tasks", "CPU per task", "Memory per task", "Sizing error per task", "Limit headroom used", "OOM kills per task"},
		"scheduler.json": {"Placement latency", "Pending tasks", "Placements", "Preemptions", "Reschedules and evictions"},
		"nodes.json":     {"Node up", "Machine usage", "Memory pressure signal", "Task CPU / capacity", "Agent push lag"},
	}
	wantVars := map[string][]string{
		"cluster.json":         {"datasource", "namespace", "node"},
		"job-rightsizing.json": {"datasource", "namespace", "job_name", "node", "task", "top", "cpu_tasks", "memory_tasks", "limit_tasks", "oom_tasks"},
		"scheduler.json":       {"datasource"},
		"nodes.json":           {"datasource", "node"},
	}
	for file, panels := range want {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, qs, vars, err := dashboards.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, q := range qs {
			have[q.Panel] = true
			if strings.Contains(q.Expr, `job=`) || strings.Contains(q.Expr, `job!`) {
				t.Errorf("%s/%s filters on Prometheus's job label: %s", file, q.Panel, q.Expr)
			}
		}
		for _, p := range panels {
			if !have[p] {
				t.Errorf("%s: no panel %q", file, p)
			}
		}
		var names []string
		for _, v := range vars {
			names = append(names, v.Name)
			if v.Type == "query" {
				_, _, lv := dashboards.LabelValuesQuery(v.Query)
				_, qr := dashboards.QueryResultQuery(v.Query)
				if !lv && !qr {
					t.Errorf("%s: variable %s query %q is neither label_values(…) nor query_result(…)", file, v.Name, v.Query)
				}
			}
		}
		if strings.Join(names, ",") != strings.Join(wantVars[file], ",") {
			t.Errorf("%s: variables %v, want %v", file, names, wantVars[file])
		}
	}
}

func TestSubstitute(t *testing.T) {
	got := dashboards.Substitute(`rate(x{namespace=~"$namespace",node=~"${node}"}[$__rate_interval])`,
		map[string][]string{"namespace": {"a.b", "c"}, "node": {".*"}}, "1m", "15s", "1h")
	if want := `rate(x{namespace=~"(a\.b|c)",node=~".*"}[1m])`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// Job right-sizing must stay fast over days of a 1,000-task job: it reads the
// recording rules (names with a colon), never a raw per-task series, every
// time-series panel steps at least the rules' 5 m, and per-task panels and
// tables select the tasks a ranking variable names instead of all of them.
func TestJobRightSizingReadsRecordedSeries(t *testing.T) {
	b, err := os.ReadFile("job-rightsizing.json")
	if err != nil {
		t.Fatal(err)
	}
	_, qs, vars, err := dashboards.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	raw := regexp.MustCompile(`(^|[^:a-z_])(fathom_task_[a-z_]+|fathom_predictor_recommended_[a-z_]+)`)
	for _, q := range qs {
		if m := raw.FindStringSubmatch(q.Expr); m != nil {
			t.Errorf("%s / %s reads raw %s: %s", q.Panel, q.RefID, m[2], q.Expr)
		}
		if !q.Instant && q.MinInterval != "5m" {
			t.Errorf("%s: min interval %q, want 5m (the rules' resolution)", q.Panel, q.MinInterval)
		}
		if strings.Contains(q.Expr, "fathom:task_") && !regexp.MustCompile(`task=~"\$(cpu|memory|limit|oom)_tasks"`).MatchString(q.Expr) {
			t.Errorf("%s / %s reads every task of the selection: %s", q.Panel, q.RefID, q.Expr)
		}
	}
	ranked := 0
	for _, v := range vars {
		if expr, ok := dashboards.QueryResultQuery(v.Query); ok {
			ranked++
			if !strings.HasPrefix(expr, "topk($top, ") || !strings.Contains(expr, `task=~"$task"`) || v.Regex == "" || !v.IncludeAll {
				t.Errorf("ranking variable %s: %q (regex %q, includeAll %v)", v.Name, v.Query, v.Regex, v.IncludeAll)
			}
		}
	}
	if ranked != 4 {
		t.Errorf("%d ranking variables, want 4", ranked)
	}
}

func TestParseReadsInstantQueriesIntervalsAndCustomVariables(t *testing.T) {
	b, _ := os.ReadFile("job-rightsizing.json")
	_, qs, vars, err := dashboards.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	instant := 0
	for _, q := range qs {
		if q.Instant {
			instant++
		}
	}
	if instant != 11 {
		t.Errorf("%d instant (table) queries, want 11", instant)
	}
	for _, v := range vars {
		if v.Name == "top" && (v.Type != "custom" || strings.Join(v.Current, ",") != "10") {
			t.Errorf("top: %+v", v)
		}
		if v.Name == "cpu_tasks" && (v.Regex != `task="([^"]+)"` || strings.Join(v.Current, ",") != "$__all") {
			t.Errorf("cpu_tasks: %+v", v)
		}
	}
}
