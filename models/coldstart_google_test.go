package models_test

import (
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

// TestColdStartGoogle2011 learns task sizes from the Google 2011 trace:
// features from task_events (user as namespace, scheduling class as type,
// priority band, the requests as hints), sizes from one task_usage window
// (mean CPU rate, canonical memory). Users whose FNV-1a hash is 0 mod 5
// are held out (whole users: no user is in both sets), so the figures say
// how the model does for a team it has never seen. It compares the model
// with the two simple answers a new job could get — its own request and
// the median of all training tasks — and with what Advise serves (the
// model only where its cross-validated error on the training users beat
// the baseline). A long evaluation (15-30 s on 2 shared cores): run with
// FATHOM_LONG=1; skipped with -short or when ../shared/traces (or
// $FATHOM_TRACES) is absent.
func TestColdStartGoogle2011(t *testing.T) {
	if testing.Short() || os.Getenv("FATHOM_LONG") != "1" {
		t.Skip("Google 2011 cold-start evaluation: set FATHOM_LONG=1 to run it (not with -short)")
	}
	dir := os.Getenv("FATHOM_TRACES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "traces")
	}
	dir = filepath.Join(dir, "google2011")
	evf, err1 := trace.OpenFile(filepath.Join(dir, "part-00000-of-00500.csv.gz"))
	usf, err2 := trace.OpenFile(filepath.Join(dir, "task_usage_part-00000-of-00500_first10000rows.csv.gz"))
	if err1 != nil || err2 != nil {
		t.Skipf("Google 2011 trace not available: %v %v", err1, err2)
	}
	defer evf.Close()
	defer usf.Close()
	type key struct {
		job int64
		idx int
	}
	feats := map[key]models.JobFeatures{}
	if _, err := trace.ScanGoogleTaskEvents(evf, func(e trace.GoogleTaskEvent) bool {
		if !e.HasRequest || e.CPU <= 0 || e.Memory <= 0 {
			return true
		}
		typ := "batch"
		if e.SchedulingClass >= 2 {
			typ = "service"
		}
		feats[key{e.Job, e.Index}] = models.JobFeatures{Namespace: e.User, Type: typ,
			Priority: trace.GooglePriorityBand(e.Priority), HintCPU: e.CPU, HintMemory: e.Memory}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	usage, _, err := trace.ReadGoogleUsage(usf)
	if err != nil {
		t.Fatal(err)
	}
	var train, test []models.ColdStartExample
	users := map[bool]map[string]bool{true: {}, false: {}}
	for _, u := range usage {
		f, ok := feats[key{u.Job, u.Index}]
		if !ok || u.CPU <= 0 || u.Memory <= 0 {
			continue
		}
		ex := models.ColdStartExample{Features: f, Size: models.Size{CPU: u.CPU, Memory: u.Memory}}
		h := fnv.New32a()
		h.Write([]byte(f.Namespace))
		held := h.Sum32()%5 == 0
		users[held][f.Namespace] = true
		if held {
			test = append(test, ex)
		} else {
			train = append(train, ex)
		}
	}
	if len(test) < 100 {
		t.Fatalf("only %d held-out tasks joined", len(test))
	}
	rep, err := models.EvaluateColdStart(train, test, 6)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Google 2011 cold start: %d train tasks of %d users, %d test tasks of %d other users; |log2(pred/actual)| mean (median):",
		rep.Train, len(users[false]), rep.Test, len(users[true]))
	for _, r := range []struct {
		name                           string
		model, median, request, served models.ErrorStats
		under                          float64
		gate                           models.GateFigures
	}{
		{"cpu", rep.CPUModel, rep.CPUMedian, rep.CPURequest, rep.CPUServed, rep.CPUUnder, rep.Gate.Hinted[0]},
		{"memory", rep.MemModel, rep.MemMedian, rep.MemRequest, rep.MemServed, rep.MemUnder, rep.Gate.Hinted[1]},
	} {
		t.Logf("  %-6s model %.3f (%.3f)  request %.3f (%.3f)  global median %.3f (%.3f)  served %.3f (%.3f); served limit below usage for %.1f%% of tasks; gate on training users (5-fold by user): model %.3f vs request %.3f over %d tasks",
			r.name, r.model.Mean, r.model.Median, r.request.Mean, r.request.Median, r.median.Mean, r.median.Median,
			r.served.Mean, r.served.Median, 100*r.under, r.gate.Model, r.gate.Baseline, r.gate.N)
		if r.model.Mean >= r.median.Mean {
			t.Errorf("%s: the model's error %.3f is no better than the global median's %.3f", r.name, r.model.Mean, r.median.Mean)
		}
		// What is served is the better of model and request, as far as
		// the training users could tell.
		if best := min(r.model.Mean, r.request.Mean); r.served.Mean > best*1.25 {
			t.Errorf("%s: served error %.3f, far above the better of model %.3f and request %.3f", r.name, r.served.Mean, r.model.Mean, r.request.Mean)
		}
	}
}
