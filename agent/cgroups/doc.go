// Package cgroups gives the agent one small view of Linux control groups:
// create a group per task under a configurable parent, put a process in it,
// set a memory limit and a CPU quota (and change them in place), read CPU
// seconds, memory working set and the kernel's own OOM-kill counter, and kill
// everything inside.
//
// Three back ends satisfy Manager:
//
//   - cgroup2: the unified hierarchy (memory.max, cpu.max, memory.events
//     oom_kill, cpu.stat usage_usec, cgroup.kill, cgroup.freeze). Used when
//     the v2 hierarchy offers both the cpu and memory controllers, or,
//     degraded, when it lacks them and cgroup1 is not usable (or mode
//     "cgroup2" is asked for): groups, CPU from cpu.stat, freezing and
//     killing still work; memory is read from /proc and the missing
//     controllers' limits are not enforced (Manager.Missing, Enforcement,
//     Degraded say so).
//   - cgroup1: the legacy per-controller hierarchies (memory.limit_in_bytes,
//     cpu.cfs_quota_us, cpuacct.usage, memory.oom_control oom_kill,
//     memory.failcnt; freezer.state when the freezer hierarchy is
//     mounted). Used on hybrid machines whose memory and cpu controllers are
//     bound to v1, such as the Debian 12 build machines.
//   - none: no writable cgroup. Groups only remember their processes; usage is
//     measured from /proc and nothing is enforced. The node reports
//     enforcement "none".
//
// The code writes the control files directly instead of going through
// github.com/containerd/cgroups: the agent needs a handful of files, must
// work on hybrid mounts (v1 memory next to a v2 tree without controllers) and
// must re-open groups it created before a restart by path.
//
// A parent that does not start with "/" is resolved below the agent's own
// cgroup in each hierarchy (read from /proc/self/cgroup), the way a delegated
// service manager nests its children; an absolute parent starts at the
// hierarchy root.
package cgroups
