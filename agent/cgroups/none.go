package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// none enforces nothing. A group remembers its leader process, which the
// executor starts as a process-group leader; usage is read from
// /proc/<pid>/stat (utime+stime of the leader plus its reaped children) and
// /proc/<pid>/statm (resident set). Live children that are still running are
// not counted: that is the price of having no cgroup.
type none struct{}

// NewNone returns the measurement-only back end.
func NewNone() Manager { return none{} }

func (none) Mode() Mode { return ModeNone }

func (none) SetParentCPU(float64) error { return nil }

// RemoveParent implements Manager: there is no parent.
func (none) RemoveParent() error { return nil }

// Missing implements Manager: none promises no enforcement to begin with.
func (none) Missing() []string { return nil }

func (none) Create(name string) (Group, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	return &noneGroup{}, nil
}

func (none) Open(paths map[string]string) (Group, error) {
	pid, err := strconv.Atoi(paths["none"])
	if err != nil {
		return nil, fmt.Errorf("none: saved group has no leader pid: %w", err)
	}
	return &noneGroup{pid: pid}, nil
}

type noneGroup struct {
	pid int
	buf [1024]byte
}

func (g *noneGroup) Paths() map[string]string { return map[string]string{"none": strconv.Itoa(g.pid)} }

func (g *noneGroup) AddProc(pid int) error {
	g.pid = pid // the executor adds only each run's leader
	return nil
}

// SetLimits records nothing: without cgroups there is nothing to enforce.
func (g *noneGroup) SetLimits(Limits) error { return nil }

var clockTicks = 100.0 // USER_HZ; 100 on every Linux architecture Go supports

// Sample implements Group; without cgroups there are no slow counters.
func (g *noneGroup) Sample() (Stats, error) { return g.Stats() }

func (g *noneGroup) Stats() (Stats, error) {
	var s Stats
	if g.pid == 0 {
		return s, nil
	}
	b, err := readSmall("/proc/"+strconv.Itoa(g.pid)+"/stat", g.buf[:])
	if err != nil {
		return s, err
	}
	f, err := statFields(b)
	if err != nil {
		return s, err
	}
	// fields after the command: state(3) ... utime(14) stime(15) cutime(16) cstime(17)
	var ticks int64
	for _, i := range []int{14, 15, 16, 17} {
		v, _ := strconv.ParseInt(string(f[i-3]), 10, 64)
		ticks += v
	}
	s.CPUSeconds = float64(ticks) / clockTicks
	if s.MemoryUsage, err = residentBytes(g.pid, g.buf[:]); err != nil {
		return s, err
	}
	s.MemoryWorkingSet = s.MemoryUsage
	return s, nil
}

// residentBytes is the resident set of pid from /proc/<pid>/statm (buf is
// scratch space for the read).
func residentBytes(pid int, buf []byte) (int64, error) {
	b, err := readSmall("/proc/"+strconv.Itoa(pid)+"/statm", buf)
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, nil
	}
	pages, _ := strconv.ParseInt(string(f[1]), 10, 64)
	return pages * int64(os.Getpagesize()), nil
}

// statFields splits /proc/<pid>/stat after the parenthesised command name;
// element 0 is field 3 (state).
func statFields(b []byte) ([][]byte, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return nil, errors.New("malformed /proc stat")
	}
	f := bytes.Fields(b[i+2:])
	if len(f) < 20 {
		return nil, errors.New("short /proc stat")
	}
	return f, nil
}

func (g *noneGroup) Procs() ([]int, error) {
	if g.pid == 0 || syscall.Kill(g.pid, 0) != nil {
		return nil, nil
	}
	return []int{g.pid}, nil
}

func (g *noneGroup) Kill() error {
	if g.pid == 0 {
		return nil
	}
	if err := syscall.Kill(-g.pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

func (g *noneGroup) Delete() error { return nil }

// Freeze implements Group: without cgroups there is no freezer.
func (g *noneGroup) Freeze() error { return ErrNoFreezer }

// Thaw implements Group.
func (g *noneGroup) Thaw() error { return ErrNoFreezer }

// ProcStartTime returns field 22 of /proc/<pid>/stat (start time in clock
// ticks since boot), which together with the pid identifies a process across
// pid reuse.
func ProcStartTime(pid int) (uint64, error) {
	var buf [1024]byte
	b, err := readSmall("/proc/"+strconv.Itoa(pid)+"/stat", buf[:])
	if err != nil {
		return 0, err
	}
	f, err := statFields(b)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(f[22-3]), 10, 64)
}
