package metrics_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/metrics/synth"
)

func parseRules(t *testing.T, b []byte) *rulefmt.RuleGroups {
	t.Helper()
	rgs, errs := rulefmt.Parse(b, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("rules do not parse: %v", errs)
	}
	return rgs
}

func TestRecordingRulesIntervals(t *testing.T) {
	byName := map[string]model.Duration{}
	for _, g := range parseRules(t, metrics.RecordingRules).Groups {
		byName[g.Name] = g.Interval
	}
	if byName["fathom-task"] != model.Duration(5*time.Minute) || byName["fathom-node"] != 0 || byName["fathom-namespace"] != 0 {
		t.Fatalf("group intervals %v: want fathom-task 5m, the others the evaluation interval", byName)
	}
	b, err := metrics.RecordingRulesEvery(1500 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	rgs := parseRules(t, b)
	if len(rgs.Groups) != len(byName) {
		t.Fatalf("%d groups after rewriting, want %d", len(rgs.Groups), len(byName))
	}
	for _, g := range rgs.Groups {
		if time.Duration(g.Interval) != 1500*time.Millisecond {
			t.Errorf("group %s: interval %s, want 1.5s", g.Name, g.Interval)
		}
	}
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} {
		if _, err := metrics.RecordingRulesEvery(d); !errors.Is(err, metrics.ErrBadOptions) {
			t.Errorf("RecordingRulesEvery(%s): %v, want ErrBadOptions", d, err)
		}
	}
}

// EvaluateRecordingRules must write what the rule manager would: at each
// evaluation time, the rule's expression evaluated at that time (checked
// against instant queries, the manager's own method), per-job rules reading
// the per-task results of the same time.
func TestEvaluateRecordingRulesMatchesInstantEvaluation(t *testing.T) {
	ctx := context.Background()
	s, _ := startStore(t, metrics.StoreOptions{NoRecordingRules: true})
	end := time.Now().Truncate(5 * time.Minute)
	start := end.Add(-40 * time.Minute)
	series, err := synth.Generate(synth.Cluster{Namespace: "ns", JobName: "web", Tasks: 3, Nodes: 2, Start: start, End: end, Seed: 3, Recommendations: true})
	if err != nil {
		t.Fatal(err)
	}
	app := s.Appender(ctx)
	if err := metrics.AppendSeries(app, series); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	n, err := s.EvaluateRecordingRules(ctx, start, end, "fathom-task")
	if err != nil {
		t.Fatal(err)
	}
	// 8 evaluations (5 m apart in (start, end]); 12 per-task rules × 3 tasks,
	// 10 per-job rules and 6 quantiles × 1 job.
	if want := 8 * (12*3 + 10 + 6); n != want {
		t.Errorf("wrote %d samples, want %d", n, want)
	}
	rules := map[string]string{}
	for _, g := range parseRules(t, metrics.RecordingRules).Groups {
		for _, r := range g.Rules {
			if g.Name == "fathom-task" && r.Labels == nil {
				rules[r.Record] = r.Expr
			}
		}
	}
	for _, rec := range []string{"fathom:task_cpu_usage_cores:rate5m", "fathom:task_memory_sizing_error:ratio5m",
		"fathom:task_predictor_recommended_cpu_cores:max5m", "namespace_job_name:fathom_task_cpu_usage_cores:sum"} {
		for ts := start.Add(10 * time.Minute); !ts.After(end); ts = ts.Add(10 * time.Minute) {
			got := vectorAt(t, s, rec, ts)
			want := vectorAt(t, s, rules[rec], ts)
			if len(got) == 0 || len(got) != len(want) {
				t.Fatalf("%s at %s: recorded %v, expression gives %v", rec, ts, got, want)
			}
			for i := range got {
				gl := got[i].Metric.DropMetricName()
				if gl.Hash() != want[i].Metric.DropMetricName().Hash() || math.Abs(got[i].F-want[i].F) > 1e-9*math.Abs(want[i].F) {
					t.Errorf("%s at %s: recorded %v, expression gives %v", rec, ts, got[i], want[i])
				}
			}
		}
	}
	if _, err := s.EvaluateRecordingRules(ctx, start, end, "no-such-group"); !errors.Is(err, metrics.ErrBadOptions) {
		t.Errorf("unknown group: %v, want ErrBadOptions", err)
	}
}

// vectorAt evaluates expr at ts, sorted by labels.
func vectorAt(t *testing.T, s *metrics.Store, expr string, ts time.Time) promql.Vector {
	t.Helper()
	v, err := s.Query(context.Background(), expr, ts)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	vec := v.(promql.Vector)
	sort.Slice(vec, func(i, j int) bool {
		return labels.Compare(vec[i].Metric.DropMetricName(), vec[j].Metric.DropMetricName()) < 0
	})
	return vec
}
