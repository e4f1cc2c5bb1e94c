package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fathom-scheduler/fathom/agent/cgroups"
	"github.com/fathom-scheduler/fathom/internal/logtail"
)

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	// DataDir holds one directory per task: state.json (pid, start time,
	// cgroup paths, the assignment) and output.log (stdout and stderr).
	DataDir string
	// Cgroups is the enforcement back end.
	Cgroups cgroups.Manager
	// Node is this node's name, passed to tasks as FATHOM_NODE.
	Node string
	// GracePeriod between SIGTERM and SIGKILL on stop. Default 10s.
	GracePeriod time.Duration
	// LogMaxSize rotates output.log at this size (0 = never); LogMaxFiles
	// rotated files (output.log.1 newest) are kept. Default 3.
	LogMaxSize  int64
	LogMaxFiles int
	// TaskRetention: the directory of a task that left this node (its
	// logs) is removed once nothing in it changed for this long; 0 keeps
	// it forever. Swept every min(TaskRetention/2, 10m).
	TaskRetention time.Duration
	// OnStatus is called after every state change, from the task's own
	// goroutine. It must not block for long.
	OnStatus func(TaskStatus)
	// Log receives operational messages. Default slog.Default().
	Log *slog.Logger
}

// Executor runs tasks as processes, each in its own process group and
// cgroup, and reconciles them to the desired set. Safe for concurrent use.
type Executor struct {
	cfg ExecutorConfig
	log *slog.Logger

	mu     sync.Mutex
	tasks  map[string]*task
	wg     sync.WaitGroup
	quit   chan struct{}
	reaper *reaper
}

// task is one supervised task. Fields under mu are shared with the sampler,
// Reconcile and the eviction loop; the supervisor goroutine owns the process.
type task struct {
	id      string
	dir     string
	logPath string // output.log
	wake    chan struct{}
	removed chan struct{} // closed when the supervisor has cleaned up

	mu          sync.Mutex
	desired     Assignment
	gone        bool   // no longer in the desired set
	evictReason string // set by the pressure loop
	evictUsed   int64  // the working set the pressure loop saw
	applied     Assignment
	status      TaskStatus
	cg          cgroups.Group
	pid         int
	startTicks  uint64
	oomBase     uint64
	statsMu     sync.Mutex // serialises cgroup reads (groups reuse a buffer)
	exited      chan exitInfo
	// doneGen is the generation whose run ended (exited, evicted, rejected,
	// failed to start): a process is started again only for a new
	// generation, which is the control plane's restart decision.
	doneGen    int64
	runStarted time.Time
	// The health checker of the current run (health.go).
	checkStop, checkDone chan struct{}
	checkPID             int
	checkSpec            *HealthCheck

	// logMu is held for writing while output.log is rotated and for
	// reading while it is read; logRot counts rotations (see logrotate.go).
	logMu  sync.RWMutex
	logRot int64
}

type exitInfo struct {
	code     int32
	signaled bool
	known    bool // false for a re-attached process, whose exit status belongs to its new parent
}

// persisted is what survives an agent restart.
type persisted struct {
	Assignment Assignment        `json:"assignment"`
	PID        int               `json:"pid"`
	StartTicks uint64            `json:"start_ticks"`
	Cgroup     map[string]string `json:"cgroup"`
	CgroupMode cgroups.Mode      `json:"cgroup_mode"`
	OOMBase    uint64            `json:"oom_base"`
	Restarts   int32             `json:"restarts"`
	StartedAt  time.Time         `json:"started_at"`
}

// NewExecutor returns an executor; call Recover before the first Reconcile
// to re-attach to tasks a previous agent process started.
func NewExecutor(cfg ExecutorConfig) (*Executor, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("executor: DataDir is required")
	}
	if cfg.Cgroups == nil {
		return nil, errors.New("executor: a cgroups.Manager is required")
	}
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = 10 * time.Second
	}
	if cfg.LogMaxFiles <= 0 {
		cfg.LogMaxFiles = 3
	}
	if cfg.OnStatus == nil {
		cfg.OnStatus = func(TaskStatus) {}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "tasks"), 0o755); err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	e := &Executor{cfg: cfg, log: cfg.Log, tasks: map[string]*task{}, quit: make(chan struct{}), reaper: newReaper()}
	go e.reaper.run(e.quit)
	if cfg.TaskRetention > 0 {
		go e.sweepLoop()
	}
	return e, nil
}

func (e *Executor) sweepLoop() {
	every := min(e.cfg.TaskRetention/2, 10*time.Minute)
	t := time.NewTicker(max(every, time.Second))
	defer t.Stop()
	for {
		select {
		case <-e.quit:
			return
		case now := <-t.C:
			if n := e.SweepTaskDirs(now); n > 0 {
				e.log.Info("removed the directories of tasks that left this node", "count", n, "retention", e.cfg.TaskRetention)
			}
		}
	}
}

// SweepTaskDirs removes the directories of tasks that are no longer on this
// node (no supervised task, no state.json) and in which nothing changed for
// TaskRetention before now, and returns how many it removed. Until then a
// finished task's logs stay readable through `fathom job logs`.
func (e *Executor) SweepTaskDirs(now time.Time) int {
	if e.cfg.TaskRetention <= 0 {
		return 0
	}
	root := filepath.Join(e.cfg.DataDir, "tasks")
	ents, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	n := 0
	for _, ent := range ents {
		if !ent.IsDir() {
			continue
		}
		dir := filepath.Join(root, ent.Name())
		if _, err := os.Stat(filepath.Join(dir, "state.json")); err == nil {
			continue // a task still recorded here (the next agent re-attaches)
		}
		if newest, ok := newestChange(dir); !ok || now.Sub(newest) < e.cfg.TaskRetention {
			continue
		}
		// Claim the directory under mu, so that a task given this id again
		// meanwhile starts with a fresh directory instead of losing its own.
		e.mu.Lock()
		_, live := e.tasks[ent.Name()]
		gone := dir + ".removing"
		if !live {
			live = os.Rename(dir, gone) != nil
		}
		e.mu.Unlock()
		if live {
			continue
		}
		if err := os.RemoveAll(gone); err != nil {
			e.log.Warn("could not remove a task directory", "dir", gone, "err", err)
			continue
		}
		n++
	}
	return n
}

// newestChange is the latest modification time of dir and the files in it.
func newestChange(dir string) (time.Time, bool) {
	st, err := os.Stat(dir)
	if err != nil {
		return time.Time{}, false
	}
	newest := st.ModTime()
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		if info, err := ent.Info(); err == nil && info.ModTime().After(newest) {
			newest = info.ModTime()
		}
	}
	return newest, true
}

// Mode is the enforcement the executor applies.
func (e *Executor) Mode() cgroups.Mode { return e.cfg.Cgroups.Mode() }

func (e *Executor) taskDir(id string) string { return filepath.Join(e.cfg.DataDir, "tasks", id) }

// LogPath is where a task's stdout and stderr go.
func (e *Executor) LogPath(id string) string { return filepath.Join(e.taskDir(id), "output.log") }

// Recover re-attaches to tasks recorded in DataDir. A recorded process that
// still runs with the same start time (so not a reused pid) is adopted, not
// restarted; one that is gone is reported as ended. Must be called once,
// before Reconcile.
func (e *Executor) Recover() error {
	entries, err := os.ReadDir(filepath.Join(e.cfg.DataDir, "tasks"))
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, ent := range entries {
		if !ent.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.taskDir(ent.Name()), "state.json"))
		if err != nil {
			continue // a task that never started, or was removed half-way
		}
		var p persisted
		if err := json.Unmarshal(b, &p); err != nil {
			e.log.Warn("ignoring unreadable task state", "task", ent.Name(), "err", err)
			continue
		}
		t := e.newTask(p.Assignment)
		t.applied = p.Assignment
		t.status = TaskStatus{TaskID: t.id, Restarts: p.Restarts, StartedAt: p.StartedAt, Generation: p.Assignment.Generation}
		if p.CgroupMode == e.cfg.Cgroups.Mode() {
			if g, err := e.cfg.Cgroups.Open(p.Cgroup); err == nil {
				t.cg = g
			}
		}
		if t.cg == nil {
			if g, err := e.cfg.Cgroups.Create(t.id); err == nil {
				t.cg = g
			}
		}
		t.oomBase = p.OOMBase
		if st, err := cgroups.ProcStartTime(p.PID); p.PID > 0 && err == nil && st == p.StartTicks && !isZombie(p.PID) {
			t.pid, t.startTicks = p.PID, p.StartTicks
			t.exited = make(chan exitInfo, 1)
			t.runStarted = time.Now()
			go watchForeign(t.pid, t.startTicks, t.exited, e.quit)
			t.status.State, t.status.PID = StateRunning, int32(p.PID)
			t.status.Reason = "re-attached after agent restart"
			e.log.Info("re-attached task", "task", t.id, "pid", p.PID)
		} else {
			// The process ended while no agent watched it. Its exit code went
			// to whoever reaped it; the cgroup's OOM counter still tells
			// whether the kernel killed it for memory.
			t.status = e.endedStatus(t, exitInfo{known: false})
			t.status.Reason = "process ended while the agent was down; exit code unknown (it was not this agent's child)" + oomSuffix(t.status.OOMKilled)
			if t.applied.JobType != "service" {
				t.doneGen = t.applied.Generation
			}
		}
		e.mu.Lock()
		e.tasks[t.id] = t
		e.mu.Unlock()
		e.wg.Add(1)
		go e.supervise(t)
		e.cfg.OnStatus(t.status)
	}
	return nil
}

func oomSuffix(oom bool) string {
	if oom {
		return "; the cgroup recorded an OOM kill"
	}
	return ""
}

func (e *Executor) newTask(a Assignment) *task {
	return &task{id: a.TaskID, dir: e.taskDir(a.TaskID), logPath: e.LogPath(a.TaskID), desired: a, doneGen: -1, wake: make(chan struct{}, 1), removed: make(chan struct{})}
}

// Reconcile makes the desired set the truth: new tasks start, changed ones
// are resized in place or restarted, missing ones are stopped and forgotten.
// It does not wait for any of that to happen.
func (e *Executor) Reconcile(set []Assignment) {
	want := make(map[string]Assignment, len(set))
	for _, a := range set {
		want[a.TaskID] = a
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, t := range e.tasks {
		a, ok := want[id]
		t.mu.Lock()
		if ok {
			t.desired = a
			t.gone = false
		} else {
			t.gone = true
		}
		t.mu.Unlock()
		t.poke()
		delete(want, id)
	}
	for _, a := range set {
		if _, ok := want[a.TaskID]; !ok {
			continue
		}
		t := e.newTask(a)
		e.tasks[a.TaskID] = t
		e.wg.Add(1)
		go e.supervise(t)
	}
}

func (t *task) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Evict kills a running task now (no grace: memory is short) and reports it
// with evicted=true and used, the working set it was evicted for (or, when
// larger, what its cgroup shows as it is killed). It is not restarted until
// its assignment changes.
func (e *Executor) Evict(id, reason string, used int64) bool {
	e.mu.Lock()
	t := e.tasks[id]
	e.mu.Unlock()
	if t == nil {
		return false
	}
	t.mu.Lock()
	running := t.pid != 0
	if running {
		t.evictReason, t.evictUsed = reason, used
	}
	t.mu.Unlock()
	t.poke()
	return running
}

// Statuses returns every known task's current status.
func (e *Executor) Statuses() []TaskStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]TaskStatus, 0, len(e.tasks))
	for _, t := range e.tasks {
		t.mu.Lock()
		if t.status.State != "" {
			out = append(out, t.status)
		}
		t.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	return out
}

// Status returns one task's status.
func (e *Executor) Status(id string) (TaskStatus, bool) {
	e.mu.Lock()
	t := e.tasks[id]
	e.mu.Unlock()
	if t == nil {
		return TaskStatus{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status, t.status.State != ""
}

// Close stops supervising without touching the processes: they keep
// running and a later Recover re-attaches to them.
func (e *Executor) Close() {
	select {
	case <-e.quit:
	default:
		close(e.quit)
	}
	e.wg.Wait()
}

// StopAll stops every task (SIGTERM, grace, SIGKILL) and waits, then Closes.
func (e *Executor) StopAll() {
	e.Reconcile(nil)
	e.mu.Lock()
	var waits []chan struct{}
	for _, t := range e.tasks {
		waits = append(waits, t.removed)
	}
	e.mu.Unlock()
	for _, w := range waits {
		<-w
	}
	e.Close()
}

// supervise owns one task's process for its whole life on this node.
func (e *Executor) supervise(t *task) {
	defer e.wg.Done()
	defer e.stopCheck(t)
	for {
		e.syncCheck(t)
		select {
		case <-e.quit: // the agent is going away; the processes stay
			return
		default:
		}
		t.mu.Lock()
		d, gone, evict, used, state := t.desired, t.gone, t.evictReason, t.evictUsed, t.status.State
		running := t.pid != 0
		t.mu.Unlock()

		switch {
		case gone || d.Desired == DesiredStop:
			if running {
				if !e.stop(t, "stopped by the control plane") {
					return
				}
			} else if state == "" || state == StateRunning {
				e.setStatus(t, func(s *TaskStatus) {
					if s.State == "" || s.State == StateRunning {
						s.State, s.Reason = StateStopped, "stopped by the control plane"
					}
					s.Generation = d.Generation
				})
			}
			if gone {
				e.remove(t)
				return
			}
		case running && evict != "":
			e.evict(t, evict, used)
		case running && d.Generation != t.applied.Generation:
			if sameSpec(d, t.applied) {
				e.resize(t, d)
			} else {
				e.stop(t, "restarting with a changed command, environment or user")
			}
			continue
		case !running && t.doneGen != d.Generation && state == StateSucceeded && t.applied.JobType != "service" && sameSpec(d, t.applied):
			// A finished batch task whose limits changed has nothing to rerun.
			t.doneGen = d.Generation
			continue
		case !running && d.Desired == DesiredKeep:
			// A kept copy that is not running stays down: its task runs
			// (or is about to run) elsewhere.
			if state == "" || state == StateRunning {
				e.setStatus(t, func(s *TaskStatus) {
					if s.State == "" || s.State == StateRunning {
						s.State, s.Reason = StateStopped, "not restarted: the task was re-placed on another node"
					}
					s.Generation = d.Generation
				})
			}
		case !running && t.doneGen != d.Generation:
			e.start(t, d)
			continue
		}

		var exited chan exitInfo
		if t.pid != 0 {
			exited = t.exited
		}
		select {
		case <-e.quit:
			return
		case <-t.wake:
		case ex := <-exited:
			e.ended(t, ex)
		}
	}
}

func (e *Executor) setStatus(t *task, f func(*TaskStatus)) {
	t.mu.Lock()
	t.status.TaskID = t.id
	f(&t.status)
	s := t.status
	t.mu.Unlock()
	e.cfg.OnStatus(s)
}

func (e *Executor) reject(t *task, a Assignment, reason string) {
	e.log.Warn("rejected assignment", "task", t.id, "reason", reason)
	t.doneGen = a.Generation
	e.setStatus(t, func(s *TaskStatus) {
		*s = TaskStatus{TaskID: t.id, State: StateRejected, Reason: reason, Generation: a.Generation, Restarts: s.Restarts, FinishedAt: time.Now()}
	})
}

// resolveCommand finds the program of a task's command. `fathom burn`, the
// workload generator that both Fathom binaries carry, runs as the agent's
// own executable when no `fathom` is on the task's PATH, so that
// examples/burn.yaml runs on any node without the CLI installed there.
func resolveCommand(argv, env []string) (string, error) {
	exe, err := resolveExecutable(argv[0], env)
	if err != nil && len(argv) > 1 && argv[0] == "fathom" && argv[1] == "burn" {
		if self, serr := os.Executable(); serr == nil {
			return self, nil
		}
	}
	return exe, err
}

// resolveExecutable finds argv[0] the way the task's PATH would.
func resolveExecutable(cmd0 string, env []string) (string, error) {
	if strings.Contains(cmd0, "/") {
		fi, err := os.Stat(cmd0)
		if err != nil {
			return "", fmt.Errorf("executable %q not found", cmd0)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%q is not an executable file", cmd0)
		}
		return cmd0, nil
	}
	path := ""
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = p
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, cmd0)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in PATH %q", cmd0, path)
}

// gateScript holds the process until the agent has moved it into its cgroup
// (cgroup v1 cannot start a process inside a group), then execs the task in
// place, so the pid the agent sees is the task's own.
const gateScript = `read _ <&3 || exit 111; exec 3<&-; exec "$0" "$@"`

// start launches the task. Problems the node cannot fix are REJECTED; the
// task's other siblings are unaffected.
func (e *Executor) start(t *task, a Assignment) {
	if a.TaskID == "" || a.TaskID == "." || a.TaskID == ".." || strings.ContainsAny(a.TaskID, "/\x00") {
		e.reject(t, a, fmt.Sprintf("task id %q cannot name a directory or cgroup (empty, '.', '..' or contains '/')", a.TaskID))
		return
	}
	if len(a.Command) == 0 || a.Command[0] == "" {
		e.reject(t, a, "assignment has an empty command")
		return
	}
	if a.CPULimitCores < 0 || a.MemoryLimitBytes < 0 || a.CPURequestCores < 0 || a.MemoryRequestBytes < 0 {
		e.reject(t, a, "negative cpu or memory size in the assignment")
		return
	}
	var cred *syscall.Credential
	home := "/"
	if a.User != "" {
		u, err := user.Lookup(a.User)
		if err != nil {
			e.reject(t, a, fmt.Sprintf("unknown user %q on node %s", a.User, e.cfg.Node))
			return
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		home = u.HomeDir
	}
	if why := portsInUse(a.Ports); why != "" {
		e.failStart(t, a, why+" on node "+e.cfg.Node)
		return
	}
	env := e.taskEnv(a, home)
	exe, err := resolveCommand(a.Command, env)
	if err != nil {
		e.reject(t, a, err.Error())
		return
	}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		e.failStart(t, a, fmt.Sprintf("creating task directory: %v", err))
		return
	}
	if cred != nil {
		_ = os.Chown(t.dir, int(cred.Uid), int(cred.Gid))
	}
	// A fresh group per run: counters start at zero and page cache charged
	// by an earlier run cannot make a new limit look "below current use".
	if t.cg != nil {
		t.statsMu.Lock()
		_ = t.cg.Kill()
		_ = t.cg.Delete()
		t.statsMu.Unlock()
	}
	g, err := e.cfg.Cgroups.Create(t.id)
	if err != nil {
		e.failStart(t, a, fmt.Sprintf("creating cgroup: %v", err))
		return
	}
	t.mu.Lock()
	t.cg = g
	t.mu.Unlock()
	t.statsMu.Lock()
	err = t.cg.SetLimits(limitsOf(a))
	st, _ := t.cg.Stats()
	t.statsMu.Unlock()
	if err != nil {
		if errors.Is(err, cgroups.ErrLimitBelowUsage) {
			e.reject(t, a, err.Error())
		} else {
			e.failStart(t, a, fmt.Sprintf("setting cgroup limits: %v", err))
		}
		return
	}
	logf, err := os.OpenFile(e.LogPath(t.id), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		e.failStart(t, a, fmt.Sprintf("opening log file: %v", err))
		return
	}
	defer logf.Close()
	gateR, gateW, err := os.Pipe()
	if err != nil {
		e.failStart(t, a, fmt.Sprintf("pipe: %v", err))
		return
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", gateScript, exe}, a.Command[1:]...)...)
	cmd.Env = env
	cmd.Dir = t.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{gateR}
	// Setpgid: the task leads its own group so stop can signal all of it.
	// No Pdeathsig: tasks must outlive an agent restart.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		gateR.Close()
		gateW.Close()
		e.failStart(t, a, fmt.Sprintf("starting process: %v", err))
		return
	}
	gateR.Close()
	pid := cmd.Process.Pid
	if err := t.cg.AddProc(pid); err != nil {
		gateW.Close() // EOF: the gate exits 111 without running the task
		_ = cmd.Wait()
		e.failStart(t, a, fmt.Sprintf("moving pid %d into its cgroup: %v", pid, err))
		return
	}
	ticks, _ := cgroups.ProcStartTime(pid)
	exited := make(chan exitInfo, 1)
	now := time.Now()
	t.mu.Lock()
	t.pid, t.startTicks, t.exited, t.applied, t.oomBase, t.runStarted = pid, ticks, exited, a, st.OOMKills, now
	restarts := t.status.Restarts
	if t.status.State != "" && t.status.State != StateRejected {
		restarts++
	}
	t.status = TaskStatus{TaskID: t.id, State: StateRunning, PID: int32(pid), Restarts: restarts, StartedAt: now, Generation: a.Generation}
	status := t.status
	t.mu.Unlock()
	// Persist before the task may run: an agent killed from here on finds
	// the pid on restart. Killed before the gate opens, the gate sees EOF and
	// exits without running the task, so there is never an untracked copy.
	e.persist(t)
	_, _ = gateW.Write([]byte("go\n"))
	gateW.Close()
	e.reaper.watch(cmd.Process, exited)
	e.log.Info("started task", "task", t.id, "pid", pid, "generation", a.Generation)
	e.cfg.OnStatus(status)
}

// failStart reports a local failure to start (exit code -1); like an exit,
// the control plane's restart policy decides whether it runs again.
func (e *Executor) failStart(t *task, a Assignment, reason string) {
	e.log.Error("task failed to start", "task", t.id, "reason", reason)
	t.doneGen = a.Generation
	e.setStatus(t, func(s *TaskStatus) {
		*s = TaskStatus{TaskID: t.id, State: StateFailed, ExitCode: -1, Reason: reason, Generation: a.Generation, Restarts: s.Restarts, FinishedAt: time.Now()}
	})
}

func limitsOf(a Assignment) cgroups.Limits {
	return cgroups.Limits{CPUCores: a.CPULimitCores, CPURequest: a.CPURequestCores, MemoryBytes: a.MemoryLimitBytes}
}

func (e *Executor) taskEnv(a Assignment, home string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	m := map[string]string{
		"PATH": path, "HOME": home,
		"FATHOM_TASK_ID": a.TaskID, "FATHOM_JOB_ID": a.JobID, "FATHOM_NAMESPACE": a.Namespace,
		"FATHOM_JOB_NAME": a.JobName, "FATHOM_TASK_INDEX": strconv.Itoa(int(a.TaskIndex)), "FATHOM_NODE": e.cfg.Node,
	}
	for k, v := range a.Env {
		m[k] = v
	}
	for name, p := range a.Ports {
		m[PortEnv(name)] = strconv.Itoa(int(p))
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// resize applies new limits to the running process; the pid does not change.
func (e *Executor) resize(t *task, a Assignment) {
	t.statsMu.Lock()
	err := t.cg.SetLimits(limitsOf(a))
	t.statsMu.Unlock()
	if err != nil {
		// Keep the process at its old limits; answer this generation with
		// REJECTED and the pid that still runs.
		reason := fmt.Sprintf("limit change to generation %d rejected: %v; the task keeps running at generation %d's limits", a.Generation, err, t.applied.Generation)
		e.log.Warn("resize rejected", "task", t.id, "err", err)
		t.mu.Lock()
		t.applied.Generation = a.Generation // answered; do not retry the same generation
		t.mu.Unlock()
		e.setStatus(t, func(s *TaskStatus) {
			s.State, s.Reason, s.Generation = StateRejected, reason, a.Generation
		})
		// Report the truth again right after: the process still runs.
		e.setStatus(t, func(s *TaskStatus) { s.State = StateRunning })
		return
	}
	t.mu.Lock()
	t.applied = a
	t.mu.Unlock()
	e.persist(t)
	e.log.Info("resized task in place", "task", t.id, "pid", t.pid, "cpu_limit", a.CPULimitCores, "memory_limit", a.MemoryLimitBytes)
	e.setStatus(t, func(s *TaskStatus) { s.Generation, s.Reason = a.Generation, "limits changed in place" })
}

// stop sends SIGTERM to the task's process group, waits the grace period,
// then SIGKILLs the group and everything left in its cgroup. It returns
// false if the executor was closed meanwhile (the process is left alone).
func (e *Executor) stop(t *task, reason string) bool {
	pid := t.pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	timer := time.NewTimer(e.cfg.GracePeriod)
	defer timer.Stop()
	var ex exitInfo
	select {
	case ex = <-t.exited:
	case <-timer.C:
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		ex = <-t.exited
	case <-e.quit:
		return false
	}
	t.statsMu.Lock()
	_ = t.cg.Kill()
	t.statsMu.Unlock()
	st := e.endedStatus(t, ex)
	st.State, st.Reason = StateStopped, reason
	e.log.Info("stopped task", "task", t.id, "pid", pid, "exit_code", st.ExitCode, "reason", reason)
	e.clearRun(t)
	t.mu.Lock()
	t.status = st
	t.mu.Unlock()
	e.cfg.OnStatus(st)
	return true
}

func (e *Executor) evict(t *task, reason string, used int64) {
	t.statsMu.Lock()
	if st, err := t.cg.Stats(); err == nil {
		used = max(used, st.MemoryWorkingSet)
	}
	t.statsMu.Unlock()
	_ = syscall.Kill(-t.pid, syscall.SIGKILL)
	t.statsMu.Lock()
	_ = t.cg.Kill()
	t.statsMu.Unlock()
	ex := <-t.exited
	st := e.endedStatus(t, ex)
	st.State, st.Evicted, st.Reason, st.MemoryUsed = StateFailed, true, "evicted: "+reason, used
	e.log.Warn("evicted task", "task", t.id, "reason", reason, "memory_used", used)
	t.doneGen = t.applied.Generation
	e.clearRun(t)
	t.mu.Lock()
	t.status, t.evictReason, t.evictUsed = st, "", 0
	t.mu.Unlock()
	e.cfg.OnStatus(st)
}

// ended handles a process that exited on its own.
func (e *Executor) ended(t *task, ex exitInfo) {
	t.statsMu.Lock()
	_ = t.cg.Kill() // the task is over; so is anything it left behind
	t.statsMu.Unlock()
	st := e.endedStatus(t, ex)
	switch {
	case !ex.known:
		st.State = StateFailed
		st.Reason = "exited after the agent re-attached; exit code unknown (it is not this agent's child)" + oomSuffix(st.OOMKilled)
	case st.OOMKilled:
		st.State, st.Reason = StateFailed, "OOM-killed by the kernel: memory limit reached (cgroup oom_kill counter)"
	case ex.code == 0:
		st.State, st.Reason = StateSucceeded, "exited 0"
	default:
		st.State, st.Reason = StateFailed, fmt.Sprintf("exited with code %d", ex.code)
	}
	// Whatever the job type, the process is not started again here: the
	// control plane's restart policy decides, with a new generation.
	t.doneGen = t.applied.Generation
	st.LogTail = e.logTail(t.id)
	e.log.Info("task ended", "task", t.id, "state", st.State, "exit_code", st.ExitCode, "oom", st.OOMKilled)
	e.clearRun(t)
	t.mu.Lock()
	t.status = st
	t.mu.Unlock()
	e.cfg.OnStatus(st)
}

// endedStatus fills exit code and OOM from the cgroup's own counter.
func (e *Executor) endedStatus(t *task, ex exitInfo) TaskStatus {
	t.mu.Lock()
	st := t.status
	t.mu.Unlock()
	st.TaskID = t.id
	st.PID = 0
	st.FinishedAt = time.Now()
	st.Generation = t.applied.Generation
	st.ExitCode = ex.code
	if !ex.known {
		st.ExitCode = -1
	}
	if t.cg != nil {
		t.statsMu.Lock()
		s, err := t.cg.Stats()
		t.statsMu.Unlock()
		st.OOMKilled = err == nil && s.OOMKills > t.oomBase
	}
	return st
}

func (e *Executor) clearRun(t *task) {
	t.mu.Lock()
	t.pid, t.startTicks, t.exited = 0, 0, nil
	t.mu.Unlock()
	_ = os.Remove(filepath.Join(t.dir, "state.json"))
}

func (e *Executor) remove(t *task) {
	if t.cg != nil {
		t.statsMu.Lock()
		var err error
		// Killed processes leave the group only once the kernel has torn
		// them down; give that a moment before removing the directory.
		for i := 0; i < 50; i++ {
			_ = t.cg.Kill()
			if err = t.cg.Delete(); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.statsMu.Unlock()
		if err != nil {
			e.log.Warn("could not remove cgroup", "task", t.id, "err", err)
		}
	}
	e.mu.Lock()
	if e.tasks[t.id] == t {
		delete(e.tasks, t.id)
	}
	e.mu.Unlock()
	_ = os.Remove(filepath.Join(t.dir, "state.json"))
	close(t.removed)
}

func (e *Executor) persist(t *task) {
	t.mu.Lock()
	p := persisted{Assignment: t.applied, PID: t.pid, StartTicks: t.startTicks, OOMBase: t.oomBase,
		Restarts: t.status.Restarts, StartedAt: t.status.StartedAt, CgroupMode: e.cfg.Cgroups.Mode()}
	t.mu.Unlock()
	if t.cg != nil {
		p.Cgroup = t.cg.Paths()
		if e.cfg.Cgroups.Mode() == cgroups.ModeNone {
			p.Cgroup = map[string]string{"none": strconv.Itoa(p.PID)}
		}
	}
	b, _ := json.Marshal(p)
	tmp := filepath.Join(t.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		e.log.Error("persisting task state", "task", t.id, "err", err)
		return
	}
	if err := os.Rename(tmp, filepath.Join(t.dir, "state.json")); err != nil {
		e.log.Error("persisting task state", "task", t.id, "err", err)
	}
}

// watchForeign polls a re-attached process (not our child, so no wait(2))
// once a second and reports when it is gone or its pid was reused.
func watchForeign(pid int, ticks uint64, out chan<- exitInfo, quit <-chan struct{}) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		select {
		case <-quit:
			return
		case <-tk.C:
		}
		st, err := cgroups.ProcStartTime(pid)
		if err != nil || st != ticks || isZombie(pid) {
			out <- exitInfo{known: false}
			return
		}
	}
}

func isZombie(pid int) bool {
	s, err := procState(pid)
	return err != nil || s == 0 || s == 'Z' || s == 'X'
}

// procState is the state letter of pid in /proc/<pid>/stat (R, S, T, Z,
// ...), 0 when the file is malformed, and an error when it cannot be read
// (the process is gone).
func procState(pid int) (byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0, nil
	}
	return b[i+2], nil
}

// TaskUsage is one running task's counters at one instant.
type TaskUsage struct {
	Assignment Assignment
	PID        int
	Stats      cgroups.Stats
}

// Usage reads the counters of every running task.
func (e *Executor) Usage() []TaskUsage {
	e.mu.Lock()
	ts := make([]*task, 0, len(e.tasks))
	for _, t := range e.tasks {
		ts = append(ts, t)
	}
	e.mu.Unlock()
	out := make([]TaskUsage, 0, len(ts))
	for _, t := range ts {
		t.mu.Lock()
		pid, a, cg := t.pid, t.applied, t.cg
		t.mu.Unlock()
		if pid == 0 || cg == nil {
			continue
		}
		t.statsMu.Lock()
		st, err := cg.Sample()
		t.statsMu.Unlock()
		if err != nil {
			continue
		}
		out = append(out, TaskUsage{Assignment: a, PID: pid, Stats: st})
	}
	return out
}

// logTail returns the last lines of a task's output (at most logtail.MaxLines
// and logtail.MaxBytes, cut at a line start), "" when there is none.
func (e *Executor) logTail(id string) string {
	c, err := e.OpenLog(id, logtail.MaxLines)
	defer c.Close()
	if err != nil {
		return ""
	}
	// The tail is at most 10 lines but a line can be long: read what the
	// cursor gives, keeping the last logtail.MaxBytes.
	buf := make([]byte, 4096)
	var out []byte
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if len(out) > 2*logtail.MaxBytes {
			out = append(out[:0], out[len(out)-logtail.MaxBytes:]...)
		}
		if err != nil || n == 0 {
			break
		}
	}
	return logtail.Bound(string(out))
}
