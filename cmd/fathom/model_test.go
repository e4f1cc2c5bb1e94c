package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/fathom-scheduler/fathom/internal/cli"
)

// runModel runs the fathom command line with args and returns its stdout.
func runModel(t *testing.T, args ...string) string {
	t.Helper()
	// newRootCmd binds its output to os.Stdout when called: swap in a file.
	f, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = f
	root := newRootCmd()
	os.Stdout = saved
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	f.Close()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestModelEvalSweepJSON: --sweep -o json carries fathom's points at every
// budget scale, the baselines' grid with their Pareto points marked, and a
// comparison per fathom point with the default budget marked; the budget
// given is echoed.
func TestModelEvalSweepJSON(t *testing.T) {
	out := runModel(t, "model", "eval", "--trace", "../../sim/trace/testdata/bitbrains-rnd-excerpt.csv.gz",
		"--violation-budget", "cpu=1%,memory=0.001", "--sweep", "--budget-scales", "0.5,1,2", "--percentiles", "0.95,1", "--margins", "0,0.2,1", "-o", "json")
	var rep struct {
		Budget struct{ CPU, Memory float64 }
		Sweep  struct {
			Points []struct {
				Policy, Resource                                  string
				Budget, Percentile, Margin, Footprint, Violations float64
				Pareto                                            bool
			}
			Comparisons []struct {
				Resource  string
				Budget    float64
				Default   bool
				Baselines []struct {
					Policy  string
					InRange bool `json:"in_range"`
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if rep.Budget.CPU != 0.01 || rep.Budget.Memory != 0.001 {
		t.Errorf("budget %+v, want cpu 0.01 memory 0.001", rep.Budget)
	}
	count := map[string]int{}
	pareto := map[string]int{}
	for _, p := range rep.Sweep.Points {
		count[p.Policy+"/"+p.Resource]++
		if p.Pareto {
			pareto[p.Policy+"/"+p.Resource]++
		}
	}
	for _, k := range []string{"fathom/cpu", "fathom/memory"} {
		if count[k] != 3 {
			t.Errorf("%s: %d points, want one per budget scale (3)", k, count[k])
		}
	}
	for _, k := range []string{"vpa/cpu", "vpa/memory", "autopilot/cpu", "autopilot/memory"} {
		if count[k] != 6 || pareto[k] < 1 {
			t.Errorf("%s: %d points (%d Pareto), want 2 percentiles × 3 margins with at least one Pareto point", k, count[k], pareto[k])
		}
	}
	defaults := 0
	for _, c := range rep.Sweep.Comparisons {
		if c.Default {
			defaults++
			if (c.Resource == "cpu" && c.Budget != 0.01) || (c.Resource == "memory" && c.Budget != 0.001) {
				t.Errorf("default comparison %+v is not at the budget given", c)
			}
		}
		if len(c.Baselines) != 2 {
			t.Errorf("comparison %+v: want both baselines", c)
		}
	}
	if len(rep.Sweep.Comparisons) != 6 || defaults != 2 {
		t.Errorf("%d comparisons (%d default), want 3 budgets × 2 resources with one default each", len(rep.Sweep.Comparisons), defaults)
	}
}

// TestModelEvalJSON runs `fathom model eval -o json` on the Bitbrains
// excerpt and checks the contract of ARCHITECTURE.md: every policy, both
// resources, fractions under the agreed names.
func TestModelEvalJSON(t *testing.T) {
	// newRootCmd binds its output to os.Stdout when called: swap in a file.
	f, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = f
	root := newRootCmd()
	os.Stdout = saved
	root.SetArgs([]string{"model", "eval", "--trace", "../../sim/trace/testdata/bitbrains-rnd-excerpt.csv.gz", "--format", "bitbrains", "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatalf("eval: %v", err)
	}
	f.Close()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	stdout := string(b)
	var rep struct {
		Trace   string `json:"trace"`
		Results []map[string]any
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if !strings.HasSuffix(rep.Trace, "bitbrains-rnd-excerpt.csv.gz") || len(rep.Results) != 8 {
		t.Fatalf("trace %q, %d results; want 4 policies × 2 resources", rep.Trace, len(rep.Results))
	}
	seen := map[string]bool{}
	for _, r := range rep.Results {
		for _, k := range []string{"policy", "resource", "slack", "footprint", "violations", "severe_violations", "changes_per_task_day"} {
			if _, ok := r[k]; !ok {
				t.Errorf("result %v lacks %q", r, k)
			}
		}
		seen[r["policy"].(string)+"/"+r["resource"].(string)] = true
		if s := r["slack"].(float64); s < 0 || s > 1 {
			t.Errorf("slack %v is not a fraction", s)
		}
	}
	for _, p := range []string{"provisioned", "vpa", "autopilot", "fathom"} {
		if !seen[p+"/cpu"] || !seen[p+"/memory"] {
			t.Errorf("policy %s missing a resource: %v", p, seen)
		}
	}
}

func TestModelEvalBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"model", "eval"},
		{"model", "eval", "--trace", "x.csv", "--format", "google"},
		{"model", "eval", "--trace", "../../sim/trace/testdata/bitbrains-rnd-excerpt.csv.gz", "--vms", "9-3"},
		{"model", "eval", "--trace", "../../sim/trace/testdata/bitbrains-rnd-excerpt.csv.gz", "--policies", "oracle"},
		{"model", "eval", "--trace", "../../sim/trace/testdata/bitbrains-rnd-excerpt.csv.gz", "--violation-budget", "cpu=2"},
		{"model", "eval", "--trace", "../../sim/trace/testdata/bitbrains-rnd-excerpt.csv.gz", "--violation-budget", "gpu=0.1"},
		{"model", "eval", "--trace", "../../sim/trace/testdata/bitbrains-rnd-excerpt.csv.gz", "--violation-budget", "cpu=lots"},
		{"model", "eval", "--trace", "../../sim/trace/testdata/bitbrains-rnd-excerpt.csv.gz", "--sweep", "--percentiles", "1.5"},
		{"model", "eval", "--trace", "../../sim/trace/testdata/bitbrains-rnd-excerpt.csv.gz", "--sweep", "--budget-scales", "0"},
	} {
		root := newRootCmd()
		root.SetArgs(args)
		var errb bytes.Buffer
		root.SetErr(&errb)
		err := root.Execute()
		if err == nil || !cli.IsUsageError(err) {
			t.Errorf("%v: error %v, want a usage error (exit 2)", args, err)
		}
	}
}
