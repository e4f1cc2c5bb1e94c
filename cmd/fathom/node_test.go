package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/server"
)

// runCLI runs the fathom command line in-process and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = f // newRootCmd binds its output to os.Stdout when called
	root := newRootCmd()
	os.Stdout = saved
	root.SetArgs(args)
	err = root.Execute()
	f.Close()
	b, rerr := os.ReadFile(f.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	return string(b), err
}

// TestNodeListAutoscaling runs a real server (embedded etcd, the reconcile
// loop, a shell-script node provider) with two idle nodes registered over
// gRPC, and reads `fathom node list` until the report says one node could go
// and the hook has been asked to remove it.
func TestNodeListAutoscaling(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	hook := filepath.Join(dir, "nodes.sh")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho \"$*\" >> \""+calls+"\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var c serverConfig
	cmd := &cobra.Command{}
	c.bind(cmd)
	if err := cmd.Flags().Parse([]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "", "--dns-addr", "",
		"--no-rightsizing", "--heartbeat-timeout", "5s",
		"--node-provider-cmd", hook, "--node-removal-delay", "1ms", "--node-provider-cooldown", "1h"}); err != nil {
		t.Fatal(err)
	}
	c.NoMetricsStore = true
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	c.Ready = func(httpAddr, _ string) { addr <- httpAddr }
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("server: %v", err)
		}
	})
	var api string
	select {
	case a := <-addr:
		api = a
	case err := <-done:
		t.Fatalf("server stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("server not ready in 60s")
	}
	conn, err := grpc.NewClient(api, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	agents := fathomv1.NewAgentServiceClient(conn)
	for _, n := range []string{"node-a", "node-b"} {
		if _, err := agents.Register(ctx, &fathomv1.RegisterNodeRequest{Name: n, CpuCores: 2, MemoryBytes: 4 << 30, Enforcement: "none"}); err != nil {
			t.Fatal(err)
		}
	}
	go func() { // the agents' heartbeats; node-b's machine is busy with other work
		for ctx.Err() == nil {
			for _, n := range []string{"node-a", "node-b"} {
				agents.Heartbeat(ctx, &fathomv1.HeartbeatRequest{NodeId: n, CpuUsedCores: 1.9, MemoryUsedBytes: 3 << 30,
					TaskCpuUsedCores: 0.25, TaskMemoryUsedBytes: 48 << 20})
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()

	type listing struct {
		Nodes []struct {
			Name      string `json:"name"`
			Removable bool   `json:"removable"`
			Removal   string `json:"removal"`
		} `json:"nodes"`
		Autoscale *struct {
			NodesUp        int      `json:"nodes_up"`
			MachinesUsed   int      `json:"machines_used"`
			MachinesNeeded int      `json:"machines_needed"`
			LowerBound     *int     `json:"lower_bound"`
			Add            *int     `json:"add"`
			CouldRemove    []string `json:"could_remove"`
			NodeProvider   struct {
				Configured bool     `json:"configured"`
				Handed     []string `json:"handed"`
				LastCall   *struct {
					Action  string   `json:"action"`
					Args    []string `json:"args"`
					Outcome string   `json:"outcome"`
				} `json:"last_call"`
			} `json:"node_provider"`
		} `json:"autoscale"`
	}
	var l listing
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := runCLI(t, "--server", "http://"+api, "node", "list", "-o", "json")
		if err != nil {
			t.Fatalf("node list -o json: %v", err)
		}
		l = listing{}
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if l.Autoscale != nil && len(l.Autoscale.NodeProvider.Handed) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node handed to the node provider within 30s; last listing:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	a := l.Autoscale
	gone := a.NodeProvider.Handed[0]
	if a.NodesUp != 2 || a.MachinesUsed != 0 || a.MachinesNeeded != 0 || a.LowerBound == nil || *a.LowerBound != 0 || a.Add == nil || *a.Add != 0 || !a.NodeProvider.Configured {
		t.Errorf("report %+v: want 2 up, none used or needed, lower bound and add present and 0, provider configured", *a)
	}
	if lc := a.NodeProvider.LastCall; lc == nil || lc.Action != "remove" || lc.Outcome != "ok" || len(lc.Args) != 1 || lc.Args[0] != gone {
		t.Errorf("last call %+v, want remove %s ok", lc, gone)
	}
	b, _ := os.ReadFile(calls)
	if got := strings.TrimSpace(string(b)); got != "remove "+gone {
		t.Errorf("hook calls %q, want exactly %q", got, "remove "+gone)
	}
	for _, n := range l.Nodes {
		if (n.Name == gone) != n.Removable {
			t.Errorf("node %s removable %v", n.Name, n.Removable)
		}
		if n.Name == gone && !strings.Contains(n.Removal, "handed to the node provider") {
			t.Errorf("node %s removal %q", n.Name, n.Removal)
		}
	}

	out, err := runCLI(t, "--server", "http://"+api, "node", "list")
	if err != nil {
		t.Fatalf("node list: %v", err)
	}
	// CPU USED and MEM USED are the tasks' (0.25 cores, 48Mi), not the machine's (1.9, 3Gi).
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[0] == "node-b" && (f[3] != "0.25" || f[5] != "48Mi") {
			t.Errorf("node-b CPU USED %s, MEM USED %s: want the tasks' 0.25 and 48Mi, not the machine's:\n%s", f[3], f[5], line)
		}
	}
	for _, want := range []string{"REMOVABLE", "yes: handed to the node provider", "no\n", "node-b  ",
		"work needs 0 machines (lower bound 0); 0 in use of 2 up;", "add 0 (machines of 2 cores, 4Gi)",
		`node provider: last call "remove ` + gone + `" ok`} {
		if !strings.Contains(out, want) {
			t.Errorf("node list lacks %q:\n%s", want, out)
		}
	}
	t.Logf("fathom node list:\n%s", out)
}

// TestNodeTableSummary checks the table's summary lines for what a live
// cluster rarely shows at once: waiting work, unfittable tasks, a failed
// call, no provider.
func TestNodeTableSummary(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	resp := &fathomv1.ListNodesResponse{
		Nodes: []*fathomv1.Node{{Name: "n1", State: fathomv1.NodeState_NODE_STATE_UP, Schedulable: true, CpuCores: 2, MemoryBytes: 4 << 30}},
		Autoscale: &fathomv1.AutoscaleReport{ComputedAt: timestamppb.New(now.Add(-2 * time.Second)), NodesUp: 1, MachinesUsed: 1,
			MachinesNeeded: 3, LowerBound: 2, Add: 2, Unfittable: 1, NodeCpuCores: 2, NodeMemoryBytes: 4 << 30,
			NodeProvider: &fathomv1.NodeProviderStatus{Configured: true, NextAddAt: timestamppb.New(now.Add(5 * time.Minute)),
				LastCall: &fathomv1.NodeProviderCall{Action: "add", Args: []string{"2"}, StartedAt: timestamppb.New(now.Add(-time.Minute)),
					DurationSeconds: 0.25, Outcome: "failed", ExitCode: 3, Stderr: "calling the cloud\nquota exceeded"}}},
	}
	var b strings.Builder
	writeNodeTable(&b, resp, now)
	out := b.String()
	for _, want := range []string{
		"work needs 3 machines (lower bound 2); 1 in use of 1 up; 0 could be removed: none; add 2 (machines of 2 cores, 4Gi); report 2s old",
		"1 waiting task(s) fit no machine of that shape",
		`node provider: last call "add 2" failed (exit 3) after 250ms, 1m ago: quota exceeded; next add not before`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	resp.Autoscale.NodeProvider = &fathomv1.NodeProviderStatus{}
	b.Reset()
	writeNodeTable(&b, resp, now)
	if !strings.Contains(b.String(), "node provider: none") {
		t.Errorf("without a provider:\n%s", b.String())
	}
	resp.Autoscale = nil
	b.Reset()
	writeNodeTable(&b, resp, now)
	if !strings.Contains(b.String(), "no report yet") {
		t.Errorf("without a report:\n%s", b.String())
	}
}

func TestNodeProviderFlagsBadInput(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"--node-provider-cmd /nonexistent/fathom-nodes", "not an executable"},
		{"--node-provider-timeout 0s", "--node-provider-timeout"},
		{"--node-removal-delay -1m", "--node-removal-delay"},
	} {
		var c serverConfig
		cmd := &cobra.Command{}
		c.bind(cmd)
		if err := cmd.Flags().Parse(strings.Fields(tc.args)); err != nil {
			t.Fatal(err)
		}
		err := validateNodeProvider(&c.NodeProvider)
		if err == nil || !cli.IsUsageError(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a usage error about %s", tc.args, err, tc.want)
		}
	}
	var ok server.NodeProviderOptions
	ok.Command, ok.Timeout, ok.Cooldown, ok.RemovalDelay = "sh -c true", time.Second, time.Second, time.Second
	if err := validateNodeProvider(&ok); err != nil {
		t.Errorf("a command found on PATH: %v", err)
	}
}
