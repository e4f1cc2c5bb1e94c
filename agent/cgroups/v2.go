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

// v2 uses the unified hierarchy. Where the cpu or memory controller is not
// available (bound to cgroup v1 on a hybrid machine), the group still holds
// the task's processes and gives CPU time (cpu.stat is a core file),
// cgroup.events, cgroup.freeze and cgroup.kill; memory is then the resident
// set of the group's processes from /proc, and the missing controller's
// limits are not enforced (Missing says which).
type v2 struct {
	parent  string
	missing []string
}

// v2Controllers are the controllers the v2 back end enforces with.
var v2Controllers = []string{"cpu", "memory"}

func newV2(mounts []mount, own map[string]string, parent string, allowMissing bool) (Manager, error) {
	var mt *mount
	for i := range mounts {
		if mounts[i].v2 {
			mt = &mounts[i]
			break
		}
	}
	if mt == nil {
		return nil, errors.New("cgroup2: no unified hierarchy mounted")
	}
	dir := parentDir(*mt, own[""], parent)
	b, err := os.ReadFile(filepath.Join(mt.point, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("cgroup2: %w", err)
	}
	ctrls := strings.Fields(string(b))
	var have, missing []string
	for _, c := range v2Controllers {
		if contains(ctrls, c) {
			have = append(have, c)
		} else {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 && !allowMissing {
		return nil, fmt.Errorf("cgroup2: hierarchy at %s lacks the %s controller(s) (has %q); they are bound to cgroup v1", mt.point, strings.Join(missing, ","), ctrls)
	}
	if err := probeWritable(dir); err != nil {
		return nil, fmt.Errorf("cgroup2: parent %s is not writable: %w", dir, err)
	}
	// Enable the controllers there are for the task groups on every level
	// from the mount point down to the parent. A non-root cgroup holding
	// processes cannot enable controllers for its children ("no internal
	// processes"), which is the agent's own cgroup when the parent is
	// relative; the error then names the fix (an absolute --cgroup-parent,
	// or a delegated slice).
	if len(have) > 0 {
		rel, _ := filepath.Rel(mt.point, dir)
		cur := mt.point
		for _, part := range strings.Split(rel, string(filepath.Separator)) {
			if err := enableControllers(cur, have); err != nil {
				return nil, fmt.Errorf("cgroup2: enabling %s in %s: %w (use an absolute --cgroup-parent outside the agent's own cgroup)", strings.Join(have, ","), cur, err)
			}
			cur = filepath.Join(cur, part)
		}
		if err := enableControllers(dir, have); err != nil {
			return nil, fmt.Errorf("cgroup2: enabling %s in %s: %w", strings.Join(have, ","), dir, err)
		}
	}
	return &v2{parent: dir, missing: missing}, nil
}

func enableControllers(dir string, want []string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	have := strings.Fields(string(b))
	var add []string
	for _, c := range want {
		if !contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return writeFile(filepath.Join(dir, "cgroup.subtree_control"), strings.Join(add, " "))
}

func (*v2) Mode() Mode { return ModeV2 }

// Missing implements Manager.
func (m *v2) Missing() []string { return m.missing }

func (m *v2) RemoveParent() error { return removeEmptyDir(m.parent) }

func (m *v2) SetParentCPU(cores float64) error {
	if contains(m.missing, "cpu") {
		return nil // nothing to weigh with; Missing reports it
	}
	shares := max(2, min(262144, int64(cores*1024)))
	return writeFile(filepath.Join(m.parent, "cpu.weight"), strconv.FormatInt(sharesToWeight(shares), 10))
}

func (m *v2) Create(name string) (Group, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	p := filepath.Join(m.parent, name)
	if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("cgroup2: creating %s: %w", p, err)
	}
	return m.group(p), nil
}

func (m *v2) group(path string) *v2Group {
	return &v2Group{path: path, noCPU: contains(m.missing, "cpu"), noMemory: contains(m.missing, "memory")}
}

func (m *v2) Open(paths map[string]string) (Group, error) {
	p, ok := paths["unified"]
	if !ok {
		return nil, errors.New("cgroup2: saved group has no unified path")
	}
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("cgroup2: saved group %s is gone: %w", p, err)
	}
	return m.group(p), nil
}

type v2Group struct {
	path string
	// noCPU, noMemory: the controller is missing; its limits are skipped
	// and memory is measured from /proc.
	noCPU, noMemory bool
	buf             [4096]byte
	files           files
	cache           sampled
}

func (g *v2Group) Paths() map[string]string { return map[string]string{"unified": g.path} }

func (g *v2Group) AddProc(pid int) error {
	return writeFile(filepath.Join(g.path, "cgroup.procs"), strconv.Itoa(pid))
}

func (g *v2Group) SetLimits(l Limits) error {
	if !g.noMemory {
		mem := "max"
		if l.MemoryBytes > 0 {
			st, err := g.Stats()
			if err == nil && st.MemoryWorkingSet > l.MemoryBytes {
				return fmt.Errorf("%w: limit %d bytes, working set %d bytes", ErrLimitBelowUsage, l.MemoryBytes, st.MemoryWorkingSet)
			}
			mem = strconv.FormatInt(l.MemoryBytes, 10)
		}
		if err := writeFile(filepath.Join(g.path, "memory.max"), mem); err != nil {
			if errors.Is(err, syscall.EBUSY) {
				return fmt.Errorf("%w: the kernel could not reclaim down to %s bytes", ErrLimitBelowUsage, mem)
			}
			return err
		}
	}
	if g.noCPU {
		return nil
	}
	cpu := fmt.Sprintf("max %d", cfsPeriodUS)
	if l.CPUCores > 0 {
		cpu = fmt.Sprintf("%d %d", max(1000, int64(l.CPUCores*cfsPeriodUS)), cfsPeriodUS)
	}
	if err := writeFile(filepath.Join(g.path, "cpu.max"), cpu); err != nil {
		return err
	}
	weight := int64(100)
	if l.CPURequest > 0 {
		weight = sharesToWeight(max(2, int64(l.CPURequest*1024)))
	}
	return writeFile(filepath.Join(g.path, "cpu.weight"), strconv.FormatInt(weight, 10))
}

func (g *v2Group) Stats() (Stats, error) { return g.read(true) }

// Sample implements Group.
func (g *v2Group) Sample() (Stats, error) {
	full := g.cache.n%sampleEvery == 0
	g.cache.n++
	return g.read(full)
}

func (g *v2Group) read(full bool) (Stats, error) {
	var s Stats
	b, err := g.files.read(filepath.Join(g.path, "cpu.stat"), g.buf[:])
	if err != nil {
		return s, err
	}
	us, _ := keyed(b, "usage_usec")
	s.CPUSeconds = float64(us) / 1e6
	if g.noMemory {
		s.MemoryUsage, err = g.procsResident()
		s.MemoryWorkingSet = s.MemoryUsage
		return s, err
	}
	if s.MemoryUsage, err = g.files.readInt(filepath.Join(g.path, "memory.current")); err != nil {
		return s, err
	}
	b, err = g.files.read(filepath.Join(g.path, "memory.stat"), g.buf[:])
	if err != nil {
		return s, err
	}
	inactive, _ := keyed(b, "inactive_file")
	s.MemoryWorkingSet = max(0, s.MemoryUsage-inactive)
	if full {
		b, err = g.files.read(filepath.Join(g.path, "memory.events"), g.buf[:])
		if err != nil {
			return s, err
		}
		if v, ok := keyed(b, "oom_kill"); ok {
			g.cache.oom = uint64(v)
		}
		if v, ok := keyed(b, "max"); ok {
			g.cache.hit = uint64(v)
		}
	}
	s.OOMKills, s.MemoryFailCount = g.cache.oom, g.cache.hit
	return s, nil
}

func (g *v2Group) Procs() ([]int, error) { return readProcs(filepath.Join(g.path, "cgroup.procs")) }

func (g *v2Group) Kill() error {
	if err := writeFile(filepath.Join(g.path, "cgroup.kill"), "1"); err == nil {
		return nil
	}
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

func (g *v2Group) Delete() error {
	g.files.close()
	if err := os.Remove(g.path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing cgroup %s: %w", g.path, err)
	}
	return nil
}

// Freeze implements Group with cgroup.freeze, a core file of every non-root
// v2 group (no controller needed); cgroup.events says when it took effect.
func (g *v2Group) Freeze() error {
	if err := writeFile(filepath.Join(g.path, "cgroup.freeze"), "1"); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ErrNoFreezer
		}
		return err
	}
	err := waitFor(func() (bool, error) {
		b, err := readSmall(filepath.Join(g.path, "cgroup.events"), g.buf[:])
		if err != nil {
			return false, err
		}
		v, _ := keyed(b, "frozen")
		return v == 1, nil
	})
	if err != nil {
		_ = g.Thaw()
		return fmt.Errorf("cgroup2: freezing %s: %w", g.path, err)
	}
	return nil
}

// Thaw implements Group.
func (g *v2Group) Thaw() error { return writeFile(filepath.Join(g.path, "cgroup.freeze"), "0") }

// procsResident sums the resident set of the group's processes from
// /proc/<pid>/statm, for a group without the memory controller. Pages
// shared between them count once per process.
func (g *v2Group) procsResident() (int64, error) {
	pids, err := g.Procs()
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, pid := range pids {
		rss, err := residentBytes(pid, g.buf[:])
		if err != nil {
			continue // exited since the list was read
		}
		sum += rss
	}
	return sum, nil
}
