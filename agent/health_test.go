package agent

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHealthChecksReportedInStatus runs command, HTTP and TCP checks
// against real processes and listeners and waits for their results in the
// task's status; a new run starts its health over.
func TestHealthChecksReportedInStatus(t *testing.T) {
	m := testCgroups(t)
	e, log := newTestExecutor(t, m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			http.Error(w, "nope", http.StatusServiceUnavailable)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := int32(ln.Addr().(*net.TCPAddr).Port)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := int32(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()

	fast := func(h HealthCheck) *HealthCheck {
		h.Interval, h.Timeout = 200*time.Millisecond, 150*time.Millisecond
		return &h
	}
	svc := func(id string, h *HealthCheck) Assignment {
		return Assignment{TaskID: id, Command: []string{"/bin/sleep", "60"}, JobType: "service", Generation: 1, HealthCheck: h,
			Env: map[string]string{"WANT": "yes"}}
	}
	e.Reconcile([]Assignment{
		svc("cmd-ok", fast(HealthCheck{Command: []string{"/bin/sh", "-c", `test "$WANT" = yes && test -n "$FATHOM_TASK_ID"`}})),
		svc("cmd-bad", fast(HealthCheck{Command: []string{"/bin/sh", "-c", "echo broken >&2; exit 3"}})),
		svc("cmd-slow", fast(HealthCheck{Command: []string{"/bin/sleep", "5"}})),
		svc("http-ok", fast(HealthCheck{HTTPPort: port, HTTPPath: "/ok"})),
		svc("http-bad", fast(HealthCheck{HTTPPort: port, HTTPPath: "/down"})),
		svc("tcp-ok", fast(HealthCheck{TCPPort: port})),
		svc("tcp-bad", fast(HealthCheck{TCPPort: closedPort})),
		svc("none", nil),
	})
	for id, want := range map[string]struct {
		h   Health
		msg string
	}{
		"cmd-ok": {HealthHealthy, ""}, "cmd-bad": {HealthUnhealthy, "exited 3: broken"}, "cmd-slow": {HealthUnhealthy, "timed out"},
		"http-ok": {HealthHealthy, ""}, "http-bad": {HealthUnhealthy, "503"}, "tcp-ok": {HealthHealthy, ""},
		"tcp-bad": {HealthUnhealthy, "refused"},
	} {
		log.wait(t, id, 10*time.Second, func(s TaskStatus) bool {
			return s.State == StateRunning && s.Health == want.h && strings.Contains(s.HealthMessage, want.msg)
		})
	}
	if s, _ := e.Status("none"); s.Health != "" {
		t.Errorf("a task without a check reports health %q", s.Health)
	}
	// A new spec (new generation): a new run, whose health starts over.
	e.Reconcile([]Assignment{{TaskID: "cmd-ok", Command: []string{"/bin/sleep", "61"}, JobType: "service", Generation: 2,
		HealthCheck: fast(HealthCheck{Command: []string{"/bin/false"}})}})
	s := log.wait(t, "cmd-ok", 10*time.Second, func(s TaskStatus) bool {
		return s.Generation == 2 && s.State == StateRunning && s.Health == HealthUnhealthy
	})
	if s.HealthMessage != "exited 1" {
		t.Errorf("message %q, want exited 1", s.HealthMessage)
	}
}
