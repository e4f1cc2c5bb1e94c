package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/fathom-scheduler/fathom/internal/cli"
)

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
