package models_test

import (
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

// TestColdStartGoogle2011 learns task sizes from the Google 2011 trace:
// features from task_events (user as namespace, scheduling class as type,
// priority band, the requests as hints), sizes from one task_usage window
// (mean CPU rate, canonical memory). Jobs whose FNV-1a hash of job_id is
// 0 mod 5 are held out (whole jobs, so no job is in both sets).
// Skipped when ../shared/traces (or $FATHOM_TRACES) is absent.
func TestColdStartGoogle2011(t *testing.T) {
	if testing.Short() {
		t.Skip("trace evaluation skipped with -short")
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
	for _, u := range usage {
		f, ok := feats[key{u.Job, u.Index}]
		if !ok || u.CPU <= 0 || u.Memory <= 0 {
			continue
		}
		ex := models.ColdStartExample{Features: f, Size: models.Size{CPU: u.CPU, Memory: u.Memory}}
		h := fnv.New32a()
		h.Write([]byte(strconv.FormatInt(u.Job, 10)))
		if h.Sum32()%5 == 0 {
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
	t.Logf("Google 2011 cold start, %d train / %d test tasks, |log2(pred/actual)| mean (median):", rep.Train, rep.Test)
	t.Logf("  cpu:    model %.3f (%.3f), median-of-all-jobs %.3f (%.3f)", rep.CPUModel.Mean, rep.CPUModel.Median, rep.CPUMedian.Mean, rep.CPUMedian.Median)
	t.Logf("  memory: model %.3f (%.3f), median-of-all-jobs %.3f (%.3f)", rep.MemModel.Mean, rep.MemModel.Median, rep.MemMedian.Mean, rep.MemMedian.Median)
	if rep.CPUModel.Mean >= rep.CPUMedian.Mean || rep.MemModel.Mean >= rep.MemMedian.Mean {
		t.Errorf("cold-start model no better than the median baseline: %+v", rep)
	}
}
