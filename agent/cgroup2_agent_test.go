package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/agent/cgroups"
)

// TestAgentOnCgroup2 runs the whole agent with --cgroup-mode cgroup2 on the
// machine's real unified hierarchy. Where that tree lacks the cpu or memory
// controller (bound to cgroup v1 on hybrid machines) the agent must not
// fail: it registers the enforcement it really has with a label saying what
// is missing, exports the same on fathom_node_enforcement_info, runs the
// task in its own v2 group, measures its CPU from cpu.stat, and stops it.
func TestAgentOnCgroup2(t *testing.T) {
	parent := fmt.Sprintf("fathom-test-%d-agent-v2", os.Getpid())
	m, err := cgroups.New("cgroup2", parent)
	if err != nil {
		t.Skipf("no writable cgroup2 hierarchy here (%v): needs root and a mounted cgroup2 tree", err)
	}
	defer removeParent(parent)
	srv := newCPServer(t, "127.0.0.1:0")
	addr, _, stop := startAgent(t, Config{Server: srv.addr, Name: "v2", CPU: 2, Memory: 4 << 30, DataDir: t.TempDir(),
		CgroupMode: "cgroup2", CgroupParent: parent, RemoteWriteURL: "http://127.0.0.1:1/",
		SampleInterval: 200 * time.Millisecond, GracePeriod: time.Second})
	defer stop()

	r := srv.waitRegistrations(t, 1, 10*time.Second)
	missing := strings.Join(m.Missing(), ",")
	wantEnf := string(cgroups.Enforcement(m))
	if r.GetEnforcement() != wantEnf {
		t.Errorf("registered enforcement %q, want %q (cgroup2 missing %q)", r.GetEnforcement(), wantEnf, missing)
	}
	label := r.GetLabels()[DegradedLabel]
	if missing != "" && (!strings.Contains(label, missing) || !strings.Contains(label, "not enforced")) {
		t.Errorf("node label %s = %q: want it to name the missing controllers %q and say they are not enforced", DegradedLabel, label, missing)
	}
	if missing == "" && label != "" {
		t.Errorf("full cgroup2, yet the node is labelled degraded: %q", label)
	}

	srv.assign(burnTask("v2burn-0", "service", 0.3, "8Mi", "0s"))
	run, _ := srv.waitStatus(t, 0, "v2burn-0", 10*time.Second, func(s TaskStatus) bool { return s.State == StateRunning })
	own, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", run.PID))
	if !regexp.MustCompile(`(?m)^0::/(.*/)?` + parent + `/v2burn-0$`).Match(own) {
		t.Errorf("/proc/%d/cgroup:\n%s\nwant the task in %s/v2burn-0 on the unified hierarchy", run.PID, own, parent)
	}

	time.Sleep(2 * time.Second)
	body := httpGet(t, "http://"+addr+"/metrics")
	info := fmt.Sprintf(`fathom_node_enforcement_info{backend="cgroup2",enforcement=%q,missing=%q,node="v2"} 1`, wantEnf, missing)
	if !strings.Contains(body, info) {
		t.Errorf("/metrics lacks %s", info)
	}
	cpu := regexp.MustCompile(`fathom_task_cpu_usage_seconds_total\{[^}]*task="v2burn-0"\} (\S+)`).FindStringSubmatch(body)
	if cpu == nil {
		t.Fatalf("/metrics has no CPU series for v2burn-0")
	}
	if v, _ := strconv.ParseFloat(cpu[1], 64); v < 0.1 {
		t.Errorf("CPU of a 0.3-core burner after 2 s, from cpu.stat: %v s", v)
	}

	srv.assign()
	srv.waitStatus(t, 0, "v2burn-0", 15*time.Second, func(s TaskStatus) bool { return s.State == StateStopped })
	if syscall.Kill(int(run.PID), 0) == nil {
		t.Errorf("pid %d still runs after its assignment was removed", run.PID)
	}
	deadline := time.Now().Add(5 * time.Second)
	self, _ := os.ReadFile("/proc/self/cgroup")
	ownV2 := strings.TrimPrefix(regexp.MustCompile(`(?m)^0::(.*)$`).FindString(string(self)), "0::")
	dir := filepath.Join(cgroup2Mount(t), ownV2, parent, "v2burn-0")
	if _, err := os.Stat(filepath.Dir(dir)); err != nil {
		t.Fatalf("task parent cgroup: %v", err)
	}
	for {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("task cgroup %s still exists after the task was removed", dir)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cgroup2Mount is where the unified hierarchy is mounted.
func cgroup2Mount(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if pre, post, ok := strings.Cut(l, " - "); ok && strings.HasPrefix(post, "cgroup2 ") {
			if f := strings.Fields(pre); len(f) > 4 {
				return f[4]
			}
		}
	}
	t.Fatal("no cgroup2 mount")
	return ""
}
