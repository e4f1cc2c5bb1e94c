package agent

import (
	"os/exec"
	"testing"
	"time"
)

// TestReaperReportsOnlyItsPids: exit codes and signals of watched processes
// arrive; a child the reaper was not given keeps its own status for its
// owner's cmd.Wait.
func TestReaperReportsOnlyItsPids(t *testing.T) {
	r := newReaper()
	quit := make(chan struct{})
	defer close(quit)
	go r.run(quit)
	start := func(script string) *exec.Cmd {
		c := exec.Command("/bin/sh", "-c", script)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	other := start("sleep 0.3; exit 5")
	for _, tc := range []struct {
		script   string
		code     int32
		signaled bool
	}{
		{"exit 3", 3, false},
		{"sleep 0.2; exit 0", 0, false},
		{"kill -9 $$", 137, true},
	} {
		out := make(chan exitInfo, 1)
		r.watch(start(tc.script).Process, out)
		select {
		case ex := <-out:
			if !ex.known || ex.code != tc.code || ex.signaled != tc.signaled {
				t.Errorf("%q: got %+v, want code %d signaled %v", tc.script, ex, tc.code, tc.signaled)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%q: no exit reported", tc.script)
		}
	}
	err := other.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 5 {
		t.Errorf("an unwatched child's own Wait got %v, want exit status 5 (the reaper must not take it)", err)
	}
}
