package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// v1 uses the memory, cpu and cpuacct hierarchies (pids when mounted).
type v1 struct {
	parents map[string]string // controller -> parent dir
}

var v1Required = []string{"memory", "cpu", "cpuacct"}

// v1Optional are used when mounted and writable: pids, and freezer so that
// a task can be paused for an instant (log rotation) without noticing.
var v1Optional = []string{"pids", "freezer"}

func newV1(mounts []mount, own map[string]string, parent string) (Manager, error) {
	parents := map[string]string{}
	for _, ctrl := range append(v1Required, v1Optional...) {
		for _, m := range mounts {
			if m.v2 || !contains(m.controllers, ctrl) {
				continue
			}
			parents[ctrl] = parentDir(m, own[ctrl], parent)
			break
		}
	}
	for _, ctrl := range v1Required {
		dir, ok := parents[ctrl]
		if !ok {
			return nil, fmt.Errorf("cgroup1: %s controller is not mounted", ctrl)
		}
		if err := probeWritable(dir); err != nil {
			return nil, fmt.Errorf("cgroup1: %s parent %s is not writable: %w", ctrl, dir, err)
		}
	}
	for _, ctrl := range v1Optional {
		if dir, ok := parents[ctrl]; ok && probeWritable(dir) != nil {
			delete(parents, ctrl)
		}
	}
	return &v1{parents: parents}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (*v1) Mode() Mode { return ModeV1 }

// Missing implements Manager: cgroup1 is used only with all it needs.
func (*v1) Missing() []string { return nil }

func (m *v1) RemoveParent() error {
	var first error
	for _, dir := range m.parents {
		if err := removeEmptyDir(dir); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (m *v1) SetParentCPU(cores float64) error {
	shares := max(2, min(262144, int64(cores*1024)))
	return writeFile(filepath.Join(m.parents["cpu"], "cpu.shares"), strconv.FormatInt(shares, 10))
}

func (m *v1) Create(name string) (Group, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for ctrl, dir := range m.parents {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
			return nil, fmt.Errorf("cgroup1: creating %s: %w", p, err)
		}
		paths[ctrl] = p
	}
	return &v1Group{paths: paths}, nil
}

func (m *v1) Open(paths map[string]string) (Group, error) {
	for _, ctrl := range v1Required {
		p, ok := paths[ctrl]
		if !ok {
			return nil, fmt.Errorf("cgroup1: saved group has no %s path", ctrl)
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("cgroup1: saved group %s is gone: %w", p, err)
		}
	}
	return &v1Group{paths: paths}, nil
}

type v1Group struct {
	paths map[string]string
	buf   [4096]byte // memory.stat is ~1.3 KiB; one buffer per group, callers serialise Stats
	files files
	cache sampled
}

func (g *v1Group) Paths() map[string]string {
	out := make(map[string]string, len(g.paths))
	for k, v := range g.paths {
		out[k] = v
	}
	return out
}

func (g *v1Group) AddProc(pid int) error {
	for _, p := range g.paths {
		if err := writeFile(filepath.Join(p, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

const cfsPeriodUS = 100000

func (g *v1Group) SetLimits(l Limits) error {
	mem := g.paths["memory"]
	if l.MemoryBytes > 0 {
		st, err := g.Stats()
		if err == nil && st.MemoryWorkingSet > l.MemoryBytes {
			return fmt.Errorf("%w: limit %d bytes, working set %d bytes", ErrLimitBelowUsage, l.MemoryBytes, st.MemoryWorkingSet)
		}
		if err := writeFile(filepath.Join(mem, "memory.limit_in_bytes"), strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
			if errors.Is(err, syscall.EBUSY) {
				return fmt.Errorf("%w: the kernel could not reclaim down to %d bytes", ErrLimitBelowUsage, l.MemoryBytes)
			}
			return err
		}
	} else if err := writeFile(filepath.Join(mem, "memory.limit_in_bytes"), "-1"); err != nil {
		return err
	}
	cpu := g.paths["cpu"]
	if err := writeFile(filepath.Join(cpu, "cpu.cfs_period_us"), strconv.Itoa(cfsPeriodUS)); err != nil {
		return err
	}
	quota := "-1"
	if l.CPUCores > 0 {
		q := int64(l.CPUCores * cfsPeriodUS)
		if q < 1000 {
			q = 1000 // the kernel's minimum quota
		}
		quota = strconv.FormatInt(q, 10)
	}
	if err := writeFile(filepath.Join(cpu, "cpu.cfs_quota_us"), quota); err != nil {
		return err
	}
	shares := int64(1024)
	if l.CPURequest > 0 {
		shares = max(2, int64(l.CPURequest*1024))
	}
	return writeFile(filepath.Join(cpu, "cpu.shares"), strconv.FormatInt(shares, 10))
}

func (g *v1Group) Stats() (Stats, error) { return g.read(true) }

// Sample implements Group.
func (g *v1Group) Sample() (Stats, error) {
	full := g.cache.n%sampleEvery == 0
	g.cache.n++
	return g.read(full)
}

func (g *v1Group) read(full bool) (Stats, error) {
	var s Stats
	ns, err := g.files.readInt(filepath.Join(g.paths["cpuacct"], "cpuacct.usage"))
	if err != nil {
		return s, err
	}
	s.CPUSeconds = float64(ns) / 1e9
	mem := g.paths["memory"]
	if s.MemoryUsage, err = g.files.readInt(filepath.Join(mem, "memory.usage_in_bytes")); err != nil {
		return s, err
	}
	b, err := g.files.read(filepath.Join(mem, "memory.stat"), g.buf[:])
	if err != nil {
		return s, err
	}
	inactive, _ := keyed(b, "total_inactive_file")
	s.MemoryWorkingSet = max(0, s.MemoryUsage-inactive)
	if full {
		b, err = g.files.read(filepath.Join(mem, "memory.oom_control"), g.buf[:])
		if err != nil {
			return s, err
		}
		if v, ok := keyed(b, "oom_kill"); ok {
			g.cache.oom = uint64(v)
		}
		if v, err := g.files.readInt(filepath.Join(mem, "memory.failcnt")); err == nil {
			g.cache.hit = uint64(v)
		}
	}
	s.OOMKills, s.MemoryFailCount = g.cache.oom, g.cache.hit
	return s, nil
}

func (g *v1Group) Procs() ([]int, error) {
	return readProcs(filepath.Join(g.paths["memory"], "cgroup.procs"))
}

func (g *v1Group) Kill() error {
	// Kill until empty: a fork racing the first pass lands in the group too.
	for i := 0; i < 10; i++ {
		pids, err := g.Procs()
		if err != nil || len(pids) == 0 {
			return err
		}
		if err := killPids(pids); err != nil {
			return err
		}
	}
	return nil
}

func (g *v1Group) Delete() error {
	g.files.close()
	var first error
	for _, p := range g.paths {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) && first == nil {
			first = fmt.Errorf("removing cgroup %s: %w", p, err)
		}
	}
	return first
}

// Freeze implements Group with the v1 freezer hierarchy.
func (g *v1Group) Freeze() error {
	dir, ok := g.paths["freezer"]
	if !ok {
		return ErrNoFreezer
	}
	state := filepath.Join(dir, "freezer.state")
	if err := writeFile(state, "FROZEN"); err != nil {
		return err
	}
	err := waitFor(func() (bool, error) {
		b, err := readSmall(state, g.buf[:])
		return strings.TrimSpace(string(b)) == "FROZEN", err
	})
	if err != nil {
		_ = g.Thaw()
		return fmt.Errorf("cgroup1: freezing %s: %w", dir, err)
	}
	return nil
}

// Thaw implements Group.
func (g *v1Group) Thaw() error {
	dir, ok := g.paths["freezer"]
	if !ok {
		return ErrNoFreezer
	}
	return writeFile(filepath.Join(dir, "freezer.state"), "THAWED")
}
