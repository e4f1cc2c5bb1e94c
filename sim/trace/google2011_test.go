package trace

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func readExcerpt(t *testing.T) ([]GoogleTaskEvent, GoogleEventStats) {
	t.Helper()
	f, err := os.Open("testdata/google2011-task_events-excerpt.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ev, st, err := ReadGoogleTaskEvents(f)
	if err != nil {
		t.Fatal(err)
	}
	return ev, st
}

func TestReadGoogleTaskEvents(t *testing.T) {
	ev, st := readExcerpt(t)
	if st.Rows != 243 || st.Kept != 243 || len(ev) != 243 {
		t.Fatalf("rows %d kept %d events %d, want 243", st.Rows, st.Kept, len(ev))
	}
	// 69 rows of the excerpt carry no request (missing_info).
	if st.NoRequest != 69 {
		t.Errorf("rows without request = %d, want 69", st.NoRequest)
	}
	first := ev[0]
	if first.Time != 0 || first.Job != 3418309 || first.Index != 0 || first.Type != GoogleSubmit || !first.MissingInfo || first.HasRequest {
		t.Errorf("first row parsed as %+v", first)
	}
	kill := ev[len(ev)-3]
	if kill.Type != GoogleKill || kill.Job != 3418375 || kill.Machine != 6570572 ||
		kill.CPU != 0.0625 || kill.Memory != 0.09277 || kill.Priority != 9 || kill.Time != 1348139469*time.Microsecond {
		t.Errorf("kill row parsed as %+v", kill)
	}
	if GooglePriorityBand(kill.Priority) != "prod" || GooglePriorityBand(4) != "batch" || GooglePriorityBand(0) != "best-effort" {
		t.Error("priority bands")
	}
}

func TestGoogleTasksAt(t *testing.T) {
	ev, _ := readExcerpt(t)
	at0 := GoogleTasksAt(ev, 0)
	if len(at0) != 120 {
		t.Fatalf("%d tasks present at t=0, want 120", len(at0))
	}
	running, withReq := 0, 0
	for _, tk := range at0 {
		if tk.Running {
			running++
		}
		if tk.HasRequest {
			withReq++
		}
	}
	// Every task is submitted and scheduled at t=0; the SUBMIT rows of some
	// lack requests but their SCHEDULE rows have them.
	if running != 120 || withReq != 120 {
		t.Errorf("running %d, with request %d; want 120 and 120", running, withReq)
	}
	// Job 3418375 task 0 is killed at 1348 s, resubmitted, and scheduled
	// again at 1349.6 s.
	find := func(ts []GoogleTask) *GoogleTask {
		for i := range ts {
			if ts[i].Job == 3418375 && ts[i].Index == 0 {
				return &ts[i]
			}
		}
		return nil
	}
	if tk := find(GoogleTasksAt(ev, 1348139470*time.Microsecond)); tk != nil {
		t.Errorf("killed task still present: %+v", tk)
	}
	if tk := find(GoogleTasksAt(ev, 1348139472*time.Microsecond)); tk == nil || tk.Running {
		t.Errorf("resubmitted task should be pending: %+v", tk)
	}
	if tk := find(GoogleTasksAt(ev, 1349565812*time.Microsecond)); tk == nil || !tk.Running || tk.Machine != 6570572 {
		t.Errorf("rescheduled task should run on 6570572: %+v", tk)
	}
}

func TestGoogleTaskEventsBadInput(t *testing.T) {
	for _, in := range []string{
		"0,,1,0,5,0,u,3,9,0.1,0.1,0.1\n",    // 12 fields
		"x,,1,0,5,0,u,3,9,0.1,0.1,0.1,0\n",  // bad timestamp
		"0,,1,0,5,0,u,3,9,zero,0.1,0.1,0\n", // bad cpu
	} {
		_, _, err := ReadGoogleTaskEvents(strings.NewReader(in))
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%q: err = %v, want ErrFormat", in, err)
		}
	}
}
