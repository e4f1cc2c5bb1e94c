package agent

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPortsArePassedAndCheckedFree: a task gets FATHOM_PORT_<NAME>; a task
// whose port something else on the machine holds fails to start, saying so.
func TestPortsArePassedAndCheckedFree(t *testing.T) {
	m := testCgroups(t)
	e, log := newTestExecutor(t, m)
	busy, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bp := int32(busy.Addr().(*net.TCPAddr).Port)
	free, _ := net.Listen("tcp", ":0")
	fp := int32(free.Addr().(*net.TCPAddr).Port)
	free.Close()
	ok := Assignment{TaskID: "web-0", Command: []string{"/bin/sh", "-c", `echo "http=$FATHOM_PORT_HTTP admin=$FATHOM_PORT_ADMIN_UI"; exit 3`},
		JobType: "batch", Generation: 1, Ports: map[string]int32{"http": fp, "admin-ui": fp + 1}}
	clash := Assignment{TaskID: "web-1", Command: []string{"sleep", "30"}, JobType: "service", Generation: 1, Ports: map[string]int32{"http": bp}}
	e.Reconcile([]Assignment{ok, clash})
	got := log.wait(t, "web-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateFailed })
	want := "http=" + strconv.Itoa(int(fp)) + " admin=" + strconv.Itoa(int(fp+1))
	if !strings.Contains(got.LogTail, want) {
		t.Errorf("output %q; want %q", got.LogTail, want)
	}
	got = log.wait(t, "web-1", 10*time.Second, func(s TaskStatus) bool { return s.State != "" })
	if got.State != StateFailed || !strings.Contains(got.Reason, "port "+strconv.Itoa(int(bp))+" (http) is already in use on node test") {
		t.Errorf("clash: %s %q", got.State, got.Reason)
	}
}
