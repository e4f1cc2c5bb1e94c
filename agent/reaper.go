package agent

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// reaper collects the exit status of the executor's task processes with one
// goroutine, instead of one cmd.Wait per task: a blocked wait(2) holds an OS
// thread, so 100 tasks meant 100 threads, each with its Go stacks (a few MiB
// of the agent's memory, and a thread limit that grows with the node). On
// every SIGCHLD, and once a second in case one was coalesced or arrived
// before the pid was registered, it polls each registered pid with
// wait4(pid, WNOHANG). It waits only for the pids it is given, so other
// children of the process (a test's, or `fathom dev`'s) keep their own
// statuses.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]reaped
	sig     chan os.Signal
	poke    chan struct{}
}

type reaped struct {
	proc *os.Process
	out  chan<- exitInfo
}

func newReaper() *reaper {
	r := &reaper{waiting: map[int]reaped{}, sig: make(chan os.Signal, 1), poke: make(chan struct{}, 1)}
	signal.Notify(r.sig, syscall.SIGCHLD)
	return r
}

// watch delivers p's exit status on out (buffered) once it exits.
func (r *reaper) watch(p *os.Process, out chan<- exitInfo) {
	r.mu.Lock()
	r.waiting[p.Pid] = reaped{proc: p, out: out}
	r.mu.Unlock()
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// run reaps until quit is closed.
func (r *reaper) run(quit <-chan struct{}) {
	defer signal.Stop(r.sig)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return
		case <-r.sig:
		case <-r.poke:
		case <-tick.C:
		}
		r.reap()
	}
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid, w := range r.waiting {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR || (err == nil && got == 0) {
			continue // still running
		}
		ex := exitInfo{known: err == nil}
		switch {
		case err != nil:
			ex.code = -1 // ECHILD: someone else reaped it; the status is lost
		case ws.Signaled():
			ex.signaled, ex.code = true, int32(128+ws.Signal())
		default:
			ex.code = int32(ws.ExitStatus())
		}
		delete(r.waiting, pid)
		_ = w.proc.Release()
		w.out <- ex
	}
}
