package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/fathom-scheduler/fathom/agent/cgroups"
)

// Task log rotation.
//
// A task's stdout and stderr are one file descriptor, opened O_APPEND on
// <task dir>/output.log, that belongs to the task: the agent is not in the
// path of the output, so a task never blocks on, or dies with, the agent
// (restart, crash, upgrade). Rotation therefore cannot swap the task's
// descriptor; it copies and truncates instead, without losing a line:
//
//  1. output.log.{N-1..1} are renamed one up (output.log.N is replaced);
//  2. output.log is copied to output.log.1 while the task runs;
//  3. the task is frozen (cgroup freezer: cgroup.freeze on v2,
//     freezer.state on v1; SIGSTOP/SIGCONT of its process group without one),
//     the bytes written since step 2 are appended to output.log.1, output.log
//     is truncated to zero, and the task is thawed. The freeze lasts as long
//     as copying what was written during step 2.
//
// Because the descriptor is O_APPEND, the task's next write lands at the
// start of the emptied file. Readers (GET /v1/tasks/{id}/logs) hold the
// task's logMu for reading while they read, and notice a rotation by the
// task's rotation count, so a follower continues in output.log.1 where it
// was and then reads the new output.log from its start.

// RotateLogs rotates the output.log of every task that has reached
// LogMaxSize. The agent calls it every sample (1 s); it is cheap when nothing is
// due (one stat per task).
func (e *Executor) RotateLogs() {
	if e.cfg.LogMaxSize <= 0 {
		return
	}
	e.mu.Lock()
	ts := make([]*task, 0, len(e.tasks))
	for _, t := range e.tasks {
		ts = append(ts, t)
	}
	e.mu.Unlock()
	for _, t := range ts {
		var st syscall.Stat_t
		if err := syscall.Stat(t.logPath, &st); err != nil || st.Size < e.cfg.LogMaxSize {
			continue
		}
		if err := e.rotate(t); err != nil {
			e.log.Warn("rotating task log", "task", t.id, "err", err)
		}
	}
}

func rotatedPath(p string, i int) string { return p + "." + strconv.Itoa(i) }

// rotate moves output.log to output.log.1 (older ones one up) as described
// above.
func (e *Executor) rotate(t *task) error {
	t.logMu.Lock()
	defer t.logMu.Unlock()
	p := t.logPath
	for i := e.cfg.LogMaxFiles - 1; i >= 1; i-- {
		if err := os.Rename(rotatedPath(p, i), rotatedPath(p, i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(rotatedPath(p, 1), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		return fmt.Errorf("copying %s: %w", p, err)
	}
	resume, err := e.pause(t)
	if err != nil {
		return fmt.Errorf("pausing the task to truncate its log (will retry): %w", err)
	}
	defer resume()
	// src's offset is where the first copy ended: copy what came since.
	if _, err := io.Copy(dst, src); err != nil {
		return fmt.Errorf("copying %s: %w", p, err)
	}
	if err := os.Truncate(p, 0); err != nil {
		return err
	}
	t.logRot++
	return nil
}

// pause stops the task's processes until the returned function is called.
// It uses the cgroup freezer, which the task cannot observe, and falls back
// to SIGSTOP/SIGCONT of the task's process group where there is none. A task
// that is not running needs no pause.
func (e *Executor) pause(t *task) (func(), error) {
	t.mu.Lock()
	pid, cg := t.pid, t.cg
	t.mu.Unlock()
	if pid == 0 || cg == nil {
		return func() {}, nil
	}
	t.statsMu.Lock()
	err := cg.Freeze()
	t.statsMu.Unlock()
	if err == nil {
		return func() {
			t.statsMu.Lock()
			defer t.statsMu.Unlock()
			if err := cg.Thaw(); err != nil {
				e.log.Error("thawing task after log rotation", "task", t.id, "err", err)
			}
		}, nil
	}
	if !errors.Is(err, cgroups.ErrNoFreezer) {
		return nil, err
	}
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("SIGSTOP to process group %d: %w", pid, err)
	}
	resume := func() { _ = syscall.Kill(-pid, syscall.SIGCONT) }
	// A stopped process shows state T in /proc/<pid>/stat.
	deadline := time.Now().Add(time.Second)
	for !stopped(pid) {
		if time.Now().After(deadline) {
			resume()
			return nil, fmt.Errorf("process %d did not stop within 1s", pid)
		}
		time.Sleep(time.Millisecond)
	}
	return resume, nil
}

func stopped(pid int) bool {
	s, err := procState(pid)
	if err != nil {
		return true // gone: writes nothing
	}
	return s == 'T' || s == 't' || s == 'Z'
}
