package sim

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/scheduler"
)

// TestStepDist checks the step distribution on a task whose CPU usage
// alternates 1, 3, 1, 3, ... and then surges to 10: the mean follows the
// last window at once (never below the recommender's), and the spread is
// spread × the RMS window-to-window change.
func TestStepDist(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	task := &Task{}
	for k := range 11 {
		u := 1.0
		if k%2 == 1 {
			u = 3
		}
		if k == 10 {
			u = 10
		}
		task.Windows = append(task.Windows, models.Window{Start: t0.Add(time.Duration(k) * Step), CPU: u, Memory: 1 << 30})
	}
	tr := &taskRun{t: task}
	rec := scheduler.Task{Usage: [scheduler.NumResources]scheduler.Dist{{Mean: 2, StdDev: 1}, {Mean: 2 << 30, StdDev: 5}}}

	// No window seen: the recommender's distribution as it is.
	got := rec
	tr.stepDist(&got, 2)
	if got.Usage != rec.Usage {
		t.Fatalf("before any window: got %+v, want the recommender's %+v", got.Usage, rec.Usage)
	}

	// After windows 0-9 (the last one 3): changes of ±2, RMS 2.
	tr.next = 10
	got = rec
	tr.stepDist(&got, 2)
	if got.Usage[0].Mean != 3 || math.Abs(got.Usage[0].StdDev-4) > 1e-9 {
		t.Fatalf("cpu after 10 windows: %+v, want mean 3 (last window), sd 4 (2 × RMS change 2)", got.Usage[0])
	}
	// Memory: flat at 1 GiB below the recommender's mean of 2 GiB, no change.
	if got.Usage[1].Mean != 2<<30 || got.Usage[1].StdDev != 0 {
		t.Fatalf("memory after 10 windows: %+v, want the recommender's mean 2 GiB and sd 0", got.Usage[1])
	}

	// The surge to 10: the mean follows at once, the spread widens.
	tr.next = 11
	got = rec
	tr.stepDist(&got, 2)
	wantVar := 4 + (49-4)/10.0 // the 10th change, weighted 1/10
	if got.Usage[0].Mean != 10 || math.Abs(got.Usage[0].StdDev-2*math.Sqrt(wantVar)) > 1e-9 {
		t.Fatalf("cpu after the surge: %+v, want mean 10, sd %.4f", got.Usage[0], 2*math.Sqrt(wantVar))
	}
}

func TestStepSpreadInvalid(t *testing.T) {
	w := &Workload{}
	o := Options{StepSpread: math.NaN(), Machine: models.Size{CPU: 4, Memory: 1 << 30}, Policies: []string{PolicyProvisioned}}
	if err := o.normalize(w); err == nil || !strings.Contains(err.Error(), "step spread") {
		t.Fatalf("NaN step spread: err %v, want one naming the step spread", err)
	}
}
