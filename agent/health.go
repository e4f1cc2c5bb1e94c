package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Health checks: while a task runs, the agent runs its assignment's
// HealthCheck every Interval (a command in the task's environment, as its
// user, in its directory; an HTTP GET of 127.0.0.1:port/path, healthy on
// 2xx/3xx; or a TCP connect to 127.0.0.1:port), each within Timeout, and
// reports a change of the result in the task's status (Health,
// HealthMessage). The first check runs as soon as the task starts. The
// control plane decides what health means (rollouts count a replaced task
// once it has been healthy for min_healthy_time).

// HealthCheck mirrors fathom.v1.HealthCheck with parsed durations.
type HealthCheck struct {
	Command  []string      `json:"command,omitempty"`
	HTTPPort int32         `json:"http_port,omitempty"`
	HTTPPath string        `json:"http_path,omitempty"`
	TCPPort  int32         `json:"tcp_port,omitempty"`
	Interval time.Duration `json:"interval"`
	Timeout  time.Duration `json:"timeout"`
}

// Health is a check's last result as reported.
type Health string

// Health results ("" = the task has no check).
const (
	HealthUnknown   Health = "UNKNOWN"
	HealthHealthy   Health = "HEALTHY"
	HealthUnhealthy Health = "UNHEALTHY"
)

// maxCheckOutput bounds the output kept of a failing check.
const maxCheckOutput = 256

func sameCheck(a, b *HealthCheck) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Command, b.Command) && a.HTTPPort == b.HTTPPort && a.HTTPPath == b.HTTPPath && a.TCPPort == b.TCPPort &&
		a.Interval == b.Interval && a.Timeout == b.Timeout
}

// syncCheck starts the checker of a running task that has a check, and
// stops it when the task no longer runs or its check changed. Called by the
// task's supervisor.
func (e *Executor) syncCheck(t *task) {
	t.mu.Lock()
	pid, hc := t.pid, t.applied.HealthCheck
	a := t.applied
	running := t.checkStop != nil
	same := running && t.checkPID == pid && sameCheck(t.checkSpec, hc)
	t.mu.Unlock()
	if same || (!running && (pid == 0 || hc == nil)) {
		return
	}
	e.stopCheck(t)
	if pid == 0 || hc == nil {
		return
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	t.mu.Lock()
	t.checkStop, t.checkDone, t.checkPID, t.checkSpec = stop, done, pid, hc
	t.mu.Unlock()
	go func() {
		defer close(done)
		e.checkLoop(t, a, *hc, pid, stop)
	}()
}

// stopCheck stops the task's checker and waits for it.
func (e *Executor) stopCheck(t *task) {
	t.mu.Lock()
	stop, done := t.checkStop, t.checkDone
	t.checkStop, t.checkDone, t.checkSpec, t.checkPID = nil, nil, nil, 0
	t.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

func (e *Executor) checkLoop(t *task, a Assignment, hc HealthCheck, pid int, stop <-chan struct{}) {
	interval := hc.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last Health
	var lastMsg string
	for {
		select {
		case <-stop:
			return
		case <-e.quit:
			return
		case <-timer.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		h, msg := e.check(ctx, t, a, hc)
		cancel()
		if h != last || msg != lastMsg {
			last, lastMsg = h, msg
			changed := false
			e.setStatusIf(t, func(s *TaskStatus) bool {
				if int(s.PID) != pid || s.State != StateRunning {
					return false // another run by now
				}
				s.Health, s.HealthMessage = h, msg
				changed = true
				return true
			})
			if changed && h == HealthUnhealthy {
				e.log.Info("health check failing", "task", t.id, "output", msg)
			}
		}
		timer.Reset(interval)
	}
}

// setStatusIf changes the status when f says so, and reports it.
func (e *Executor) setStatusIf(t *task, f func(*TaskStatus) bool) {
	t.mu.Lock()
	ok := f(&t.status)
	s := t.status
	t.mu.Unlock()
	if ok {
		e.cfg.OnStatus(s)
	}
}

// check runs one health check.
func (e *Executor) check(parent context.Context, t *task, a Assignment, hc HealthCheck) (Health, string) {
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	switch {
	case len(hc.Command) > 0:
		return e.checkCommand(ctx, t, a, hc.Command, timeout)
	case hc.HTTPPort > 0:
		path := hc.HTTPPath
		if path == "" {
			path = "/"
		}
		u := "http://127.0.0.1:" + strconv.Itoa(int(hc.HTTPPort)) + path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return HealthUnhealthy, err.Error()
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			return HealthUnhealthy, trimOutput(err.Error())
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return HealthHealthy, ""
		}
		return HealthUnhealthy, fmt.Sprintf("GET %s: %s", u, resp.Status)
	case hc.TCPPort > 0:
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(hc.TCPPort)))
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return HealthUnhealthy, trimOutput(err.Error())
		}
		conn.Close()
		return HealthHealthy, ""
	}
	return HealthUnhealthy, "the health check names no command, http or tcp"
}

// checkCommand runs a command check as the task's user, in its
// environment and directory; exit 0 is healthy. On timeout its process
// group is killed.
func (e *Executor) checkCommand(ctx context.Context, t *task, a Assignment, argv []string, timeout time.Duration) (Health, string) {
	var cred *syscall.Credential
	home := "/"
	if a.User != "" {
		u, err := user.Lookup(a.User)
		if err != nil {
			return HealthUnhealthy, fmt.Sprintf("unknown user %q", a.User)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred, home = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, u.HomeDir
	}
	env := e.taskEnv(a, home)
	exe, err := resolveExecutable(argv[0], env)
	if err != nil {
		return HealthUnhealthy, trimOutput(err.Error())
	}
	cmd := exec.CommandContext(ctx, exe, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env, cmd.Dir = env, t.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limitWriter{w: &out, n: maxCheckOutput}, &limitWriter{w: &out, n: maxCheckOutput}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	msg := trimOutput(out.String())
	switch {
	case err == nil:
		return HealthHealthy, ""
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return HealthUnhealthy, fmt.Sprintf("timed out after %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if msg != "" {
			return HealthUnhealthy, fmt.Sprintf("exited %d: %s", ee.ExitCode(), msg)
		}
		return HealthUnhealthy, fmt.Sprintf("exited %d", ee.ExitCode())
	}
	return HealthUnhealthy, trimOutput(err.Error())
}

func trimOutput(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxCheckOutput {
		s = s[:maxCheckOutput] + "..."
	}
	return s
}

// limitWriter keeps at most n bytes.
type limitWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
