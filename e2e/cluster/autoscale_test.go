package cluster

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
)

// TestNodeProviderAddsAndRemovesAgents: one 1-core agent and a service of two
// 0.6-core replicas (one fits). The server's node provider hook, a shell
// script, is asked to add a machine and starts a second real agent; the
// waiting replica runs there. When the job stops, one idle node is removable:
// after --node-removal-delay it is cordoned and handed to `remove`, which
// stops that agent if it is one the hook started.
func TestNodeProviderAddsAndRemovesAgents(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	hook := filepath.Join(dir, "nodes.sh")
	// add N: start N agents named auto-K in their own session, output to a
	// file (the hook exits at once and must not hold its pipes open).
	// remove NODE...: SIGTERM the agents it started.
	script := `#!/bin/sh
set -eu
dir=` + dir + `
echo "$*" >> "$dir/calls"
action=$1; shift
case $action in
add)
  i=0
  while [ $i -lt "$1" ]; do
    i=$((i + 1)); k=$(ls "$dir" | grep -c '^auto-.*\.pid$' || true); name=auto-$((k + 1))
    setsid "$FATHOM_BIN_E2E" agent --server "$FATHOM_API_E2E" --name "$name" --cpu 1 --memory 1Gi \
      --metrics-addr 127.0.0.1:0 --data-dir "$dir/agent-$name" --grace-period 1s --stop-tasks-on-exit \
      --cgroup-parent "fathom-e2e-$name" > "$dir/$name.log" 2>&1 < /dev/null &
    echo $! > "$dir/$name.pid"
  done ;;
remove)
  for n in "$@"; do
    if [ -f "$dir/$n.pid" ]; then kill "$(cat "$dir/$n.pid")" || true; fi
  done ;;
esac
`
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	httpAddr := freePort(t)
	absBin, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FATHOM_BIN_E2E", absBin)
	t.Setenv("FATHOM_API_E2E", "http://"+httpAddr)
	t.Cleanup(func() { // the agents the hook started, and their tasks
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			name, ok := strings.CutSuffix(e.Name(), ".pid")
			if !ok {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			killTasksOf(name)
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
				t.Logf("--- %s.log ---\n%s", name, lastLines(string(b), 30))
			}
		}
	})

	c := &cluster{t: t, api: "http://" + httpAddr, grpc: freePort(t), dir: t.TempDir()}
	start(t, "server", "server", "--data-dir", filepath.Join(c.dir, "server"), "--http-addr", httpAddr, "--dns-addr", "", "--grpc-addr", c.grpc,
		"--heartbeat-timeout", "3s", "--no-rightsizing",
		"--node-provider-cmd", hook, "--node-provider-cooldown", "1m", "--node-removal-delay", "2s")
	c.waitFor("server ready", 60*time.Second, func() bool {
		return c.do("GET", "/v1/nodes", nil, &fathomv1.ListNodesResponse{}) == nil
	})
	c.startAgent("seed", "1", "1Gi")
	c.waitNodesUp(1)

	job := c.submit(`name: grow
namespace: e2e
type: service
priority: prod
replicas: 2
task:
  command: ["/bin/sleep", "3600"]
  resources: {cpu: 600m, memory: 64Mi}
`)
	var byNode map[string]int
	took := c.waitFor("both replicas running, one on a machine the hook added", 90*time.Second, func() bool {
		var n int
		n, byNode = running(c.tasks(job))
		return n == 2
	})
	t.Logf("both replicas running after %s: %v", took.Round(time.Millisecond), byNode)
	if byNode["auto-1"] != 1 || byNode["seed"] != 1 {
		t.Errorf("replicas by node %v, want one on seed and one on auto-1", byNode)
	}
	if got := readCalls(t, calls); len(got) != 1 || got[0] != "add 1" {
		t.Fatalf("hook calls %q, want exactly [add 1]", got)
	}

	// Stop the job: both nodes go idle and one (beyond the spare) is removed.
	if err := c.do("DELETE", "/v1/jobs/"+job, nil, nil); err != nil {
		t.Fatal(err)
	}
	var removed string
	took = c.waitFor("a remove call", 60*time.Second, func() bool {
		for _, l := range readCalls(t, calls) {
			if r, ok := strings.CutPrefix(l, "remove "); ok {
				removed = r
				return true
			}
		}
		return false
	})
	t.Logf("remove %s called %s after the stop", removed, took.Round(time.Millisecond))
	if removed != "auto-1" && removed != "seed" {
		t.Fatalf("removed %q, want one of the two nodes", removed)
	}
	resp := &fathomv1.ListNodesResponse{}
	if err := c.do("GET", "/v1/nodes", nil, resp); err != nil {
		t.Fatal(err)
	}
	for _, n := range resp.GetNodes() {
		if n.GetName() == removed && (n.GetSchedulable() && n.GetState() == fathomv1.NodeState_NODE_STATE_UP) {
			t.Errorf("%s handed for removal but up and schedulable: %v", removed, n)
		}
	}
	if removed == "auto-1" {
		// The hook stopped that agent: the node goes down and its removal
		// mark is cleared.
		c.waitFor("auto-1 down and its mark cleared", 30*time.Second, func() bool {
			resp := &fathomv1.ListNodesResponse{}
			if err := c.do("GET", "/v1/nodes", nil, resp); err != nil {
				return false
			}
			for _, n := range resp.GetNodes() {
				if n.GetName() == "auto-1" {
					return n.GetState() == fathomv1.NodeState_NODE_STATE_DOWN && n.GetRemovalRequestedAt() == nil
				}
			}
			return false
		})
	}
	if got := readCalls(t, calls); len(got) != 2 {
		t.Errorf("hook calls %q, want [add 1, remove %s]", got, removed)
	}
}

func readCalls(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
