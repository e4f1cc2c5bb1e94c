package dashboards_test

import (
	"bytes"
	"os"
	"path/filepath"
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
		"cluster.json":         {"CPU", "Memory", "Slack", "Oversubscription ratio", "Overloaded machines"},
		"job-rightsizing.json": {"CPU per task", "Memory per task", "Prediction error (request vs. usage)", "OOM kills", "Evictions"},
		"scheduler.json":       {"Placement latency", "Pending tasks", "Placements", "Preemptions", "Reschedules and evictions"},
		"nodes.json":           {"Node up", "Machine usage", "Memory pressure signal", "Task CPU / capacity", "Agent push lag"},
	}
	wantVars := map[string][]string{
		"cluster.json":         {"datasource", "namespace", "node"},
		"job-rightsizing.json": {"datasource", "namespace", "job_name", "node"},
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
				if _, _, ok := dashboards.LabelValuesQuery(v.Query); !ok {
					t.Errorf("%s: variable %s query %q is not label_values(…)", file, v.Name, v.Query)
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
