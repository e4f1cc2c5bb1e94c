package cgroups

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Mode names an enforcement back end, as the node reports it.
type Mode string

const (
	ModeV2   Mode = "cgroup2"
	ModeV1   Mode = "cgroup1"
	ModeNone Mode = "none"
)

// ErrLimitBelowUsage is returned by SetLimits when a memory limit would be
// lower than what the group already uses; the old limit stays in force.
var ErrLimitBelowUsage = errors.New("memory limit below current use")

// ErrNoFreezer is returned by Freeze when the back end cannot freeze a group
// (cgroup1 without the freezer hierarchy, or no cgroups at all).
var ErrNoFreezer = errors.New("no cgroup freezer")

// freezeTimeout bounds how long Freeze waits for the kernel to stop every
// process; a group that does not freeze in time is thawed again and the
// caller gets an error.
const freezeTimeout = 2 * time.Second

// waitFor polls done every millisecond until it reports true, fails, or
// freezeTimeout passes.
func waitFor(done func() (bool, error)) error {
	deadline := time.Now().Add(freezeTimeout)
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not frozen after %s", freezeTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// Limits are what a group enforces. Zero means unlimited.
type Limits struct {
	CPUCores    float64 // CFS quota as cores; 0 = unlimited
	CPURequest  float64 // relative weight (shares) as cores; 0 = default
	MemoryBytes int64   // hard limit; 0 = unlimited
}

// Stats are a group's counters at one instant.
type Stats struct {
	CPUSeconds       float64 // cumulative user+system CPU of every process ever in the group
	MemoryUsage      int64   // charged memory including page cache
	MemoryWorkingSet int64   // usage minus inactive file cache (what cAdvisor calls working set)
	OOMKills         uint64  // kernel OOM kills inside the group (cgroup's own counter)
	MemoryFailCount  uint64  // times the limit was hit (v1 memory.failcnt; v2 memory.events max)
}

// Group is one task's control group.
type Group interface {
	// Paths identifies the group on disk; persist it to Open it after a restart.
	Paths() map[string]string
	// AddProc moves pid into the group.
	AddProc(pid int) error
	// SetLimits applies limits in place; running processes keep running.
	SetLimits(Limits) error
	// Stats reads all of the group's counters.
	Stats() (Stats, error)
	// Sample is Stats for the once-a-second sampler: CPU and memory are
	// read every call, the OOM and limit-hit counters only every tenth call
	// (they are reported with 10 s pushes; exits use Stats).
	Sample() (Stats, error)
	// Procs lists the pids currently in the group.
	Procs() ([]int, error)
	// Kill sends SIGKILL to every process in the group.
	Kill() error
	// Freeze stops every process in the group and returns once they are
	// all stopped (the kernel's freezer: cgroup.freeze on v2, freezer.state
	// on v1); Thaw lets them run again. Processes do not notice. Freeze
	// returns ErrNoFreezer where the back end has none.
	Freeze() error
	Thaw() error
	// Delete removes the (empty) group.
	Delete() error
}

// Manager creates and re-opens task groups under one parent.
type Manager interface {
	Mode() Mode
	// Create makes (or reuses) the group for name, a task id.
	Create(name string) (Group, error)
	// Open re-attaches to a group by the paths a Group reported.
	Open(paths map[string]string) (Group, error)
	// SetParentCPU weighs the parent of all task groups as the node's
	// capacity in cores (cpu.shares = cores×1024), as a kubelet weighs its
	// pods cgroup, so that the tasks together compete for CPU with the rest
	// of the machine in proportion to what the node offers them.
	SetParentCPU(cores float64) error
	// Missing lists the controllers the back end would enforce with but
	// the hierarchy does not offer (a cgroup2 tree whose cpu or memory
	// controller is bound to cgroup v1). Their limits are not enforced.
	Missing() []string
	// RemoveParent removes the parent of the task groups when it is empty
	// (no group left under it): what an agent that stopped its tasks on exit
	// leaves behind. A parent still holding groups stays; that is no error.
	RemoveParent() error
}

// removeEmptyDir removes dir if it is an empty cgroup. The kernel refuses
// (EBUSY) a cgroup with children or processes; that, and a dir already
// gone, are no error.
func removeEmptyDir(dir string) error {
	err := os.Remove(dir)
	if err == nil || os.IsNotExist(err) || errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.ENOTEMPTY) {
		return nil
	}
	return fmt.Errorf("removing the parent cgroup %s: %w", dir, err)
}

// Enforcement is what the node reports: the back end's mode, or "none"
// when the memory controller is missing (no limit protects the machine
// then, whatever else works).
func Enforcement(m Manager) Mode {
	if contains(m.Missing(), "memory") {
		return ModeNone
	}
	return m.Mode()
}

// Degraded describes, for the node's status and the log, what a back end
// with missing controllers cannot do; "" when nothing is missing.
func Degraded(m Manager) string {
	miss := m.Missing()
	if len(miss) == 0 {
		return ""
	}
	return fmt.Sprintf("%s without the %s controller(s): those limits are not enforced", m.Mode(), strings.Join(miss, ","))
}

// sharesToWeight converts cgroup v1 cpu.shares to a v2 cpu.weight the way
// runc does.
func sharesToWeight(shares int64) int64 {
	return max(1, min(10000, 1+((shares-2)*9999)/262142))
}

// New picks a back end. mode "" or "auto" detects: cgroup2 if the unified
// hierarchy has the cpu and memory controllers and the parent can be created
// there, else cgroup1 if the memory, cpu and cpuacct hierarchies are mounted
// and writable, else a writable cgroup2 tree without them (degraded: see
// Missing), else none. An explicit mode that is not usable is an error;
// "cgroup2" on a writable tree without the controllers is degraded, not an
// error.
func New(mode string, parent string) (Manager, error) {
	if parent == "" {
		parent = "fathom"
	}
	if strings.Contains(parent, "..") {
		return nil, fmt.Errorf("cgroup parent %q must not contain '..'", parent)
	}
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	own, err := readOwnCgroups("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	switch mode {
	case "", "auto":
		if m, err := newV2(mounts, own, parent, false); err == nil {
			return m, nil
		}
		if m, err := newV1(mounts, own, parent); err == nil {
			return m, nil
		}
		// A v2 tree without the cpu or memory controller still groups the
		// task's processes, counts their CPU, freezes and kills them.
		if m, err := newV2(mounts, own, parent, true); err == nil {
			return m, nil
		}
		return NewNone(), nil
	case string(ModeV2):
		return newV2(mounts, own, parent, true)
	case string(ModeV1):
		return newV1(mounts, own, parent)
	case string(ModeNone):
		return NewNone(), nil
	}
	return nil, fmt.Errorf("cgroup mode %q is not one of auto, cgroup2, cgroup1, none", mode)
}

// mount is one cgroup hierarchy mount from /proc/self/mountinfo.
type mount struct {
	root, point string
	v2          bool
	controllers []string
}

func readMounts() ([]mount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	var out []mount
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root point opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		p := strings.Fields(post)
		if len(f) < 5 || len(p) < 3 {
			continue
		}
		switch p[0] {
		case "cgroup2":
			out = append(out, mount{root: f[3], point: f[4], v2: true})
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(p[2], ",") {
				switch o {
				case "rw", "ro", "relatime", "noexec", "nosuid", "nodev":
				default:
					ctrls = append(ctrls, o)
				}
			}
			out = append(out, mount{root: f[3], point: f[4], controllers: ctrls})
		}
	}
	return out, nil
}

// readOwnCgroups maps controller name ("" for v2) to this process's cgroup path.
func readOwnCgroups(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

// hostPath turns a cgroup path as /proc/self/cgroup shows it into a path under
// the mount point, honouring a mount whose root is a sub-tree.
func hostPath(m mount, cg string) string {
	rel := cg
	if m.root != "/" {
		rel = strings.TrimPrefix(cg, m.root)
	}
	return filepath.Join(m.point, rel)
}

// parentDir resolves the configured parent inside one hierarchy.
func parentDir(m mount, own, parent string) string {
	if strings.HasPrefix(parent, "/") {
		return filepath.Join(m.point, parent)
	}
	return filepath.Join(hostPath(m, own), parent)
}

// validName rejects task ids that would escape the parent directory.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("task id %q cannot name a cgroup (empty, '.', '..' or contains '/')", name)
	}
	return nil
}

func writeFile(path, val string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %q to %s: %w", val, path, err)
	}
	return nil
}

// readSmall reads a small control file into buf without allocating per call.
func readSmall(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

func readInt(path string) (int64, error) {
	var buf [64]byte
	b, err := readSmall(path, buf[:])
	if err != nil {
		return 0, err
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return -1, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// keyed finds "key value" in a flat-keyed file's content.
func keyed(b []byte, key string) (int64, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > len(key) && line[len(key)] == ' ' && string(line[:len(key)]) == key {
			v, err := strconv.ParseInt(string(line[len(key)+1:]), 10, 64)
			return v, err == nil
		}
	}
	return 0, false
}

func readProcs(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, sc.Err()
}

func killPids(pids []int) error {
	var first error
	for _, p := range pids {
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil && err != syscall.ESRCH && first == nil {
			first = err
		}
	}
	return first
}

// probeWritable creates dir (and parents) and checks a child can be made in it.
func probeWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	probe := filepath.Join(dir, fmt.Sprintf(".probe-%d", os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	return os.Remove(probe)
}

// files keeps a group's counter files open: the sampler re-reads them every
// second, and pread on an open descriptor costs a fraction of open+read+close.
type files struct {
	fds map[string]int
}

// read returns path's content in buf, re-reading from offset 0.
func (f *files) read(path string, buf []byte) ([]byte, error) {
	if f.fds == nil {
		f.fds = map[string]int{}
	}
	fd, ok := f.fds[path]
	if !ok {
		var err error
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		f.fds[path] = fd
	}
	n := 0
	for n < len(buf) {
		m, err := syscall.Pread(fd, buf[n:], int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			syscall.Close(fd)
			delete(f.fds, path)
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

func (f *files) readInt(path string) (int64, error) {
	var buf [64]byte
	b, err := f.read(path, buf[:])
	if err != nil {
		return 0, err
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return -1, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

func (f *files) close() {
	for p, fd := range f.fds {
		syscall.Close(fd)
		delete(f.fds, p)
	}
}

// sampleEvery is how many Sample calls share one read of the slow-moving
// counters (OOM kills, limit hits).
const sampleEvery = 10

// sampled caches the slow-moving counters between full reads.
type sampled struct {
	n        int
	oom, hit uint64
}
