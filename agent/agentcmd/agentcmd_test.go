package agentcmd

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/agent"
	"github.com/fathom-scheduler/fathom/internal/cli"
)

// parse runs the agent command line args through a root like either binary
// builds it, and returns the config the agent would start with and the
// command line `fathom agent` would hand to fathom-agent.
func parse(t *testing.T, use string, args []string) (agent.Config, []string, error) {
	t.Helper()
	var got agent.Config
	var rebuilt []string
	var errBuf bytes.Buffer
	g := cli.NewGlobals(&bytes.Buffer{}, &errBuf)
	cmd := NewAgentCommand(g, Options{Use: use, Version: "test", Exec: func(c *cobra.Command) error {
		rebuilt = Args(c) // what ExecSlim would hand to fathom-agent
		return errors.New("not exec'ing in a test")
	}, run: func(_ context.Context, cfg agent.Config) error {
		got = cfg
		return nil
	}})
	root := cmd
	if use == "agent" {
		root = &cobra.Command{Use: "fathom", SilenceUsage: true, SilenceErrors: true}
		root.AddCommand(cmd)
		args = append([]string{"agent"}, args...)
	}
	root.SilenceUsage, root.SilenceErrors = true, true
	g.Bind(root)
	root.SetArgs(args)
	err := root.Execute()
	return got, rebuilt, err
}

// TestExecKeepsEveryFlag: what `fathom agent` parses and what fathom-agent
// parses from the command line it is exec'd with are the same config.
func TestExecKeepsEveryFlag(t *testing.T) {
	args := []string{"--server", "10.0.0.1:7071", "--name", "rack1-07", "--cpu", "7500m", "--memory", "120Gi",
		"--label", "zone=a", "--label", "disk=ssd,fast", "--metrics-addr", "127.0.0.1:9", "--data-dir", "/tmp/x y",
		"--cgroup-parent", "/fathom", "--cgroup-mode", "cgroup2", "--remote-write-url", "http://h/api/v1/write",
		"--remote-write-buffer", "7", "--eviction-threshold", "0.9", "--grace-period", "3s", "--sample-interval", "2s",
		"--push-interval", "20s", "--port-range", "30000-30100", "--log-max-size", "1Mi", "--log-max-files", "5", "--task-retention", "2h", "--stop-tasks-on-exit", "--log-level", "debug"}
	fat, rebuilt, err := parse(t, "agent", args)
	if err != nil {
		t.Fatal(err)
	}
	slim, _, err := parse(t, SlimName, rebuilt)
	if err != nil {
		t.Fatalf("fathom-agent %s: %v", strings.Join(rebuilt, " "), err)
	}
	fat.Log, slim.Log, fat.Ready, slim.Ready = nil, nil, nil, nil
	if !reflect.DeepEqual(fat, slim) {
		t.Errorf("fathom agent parsed\n%+v\nfathom-agent parsed from %q\n%+v", fat, rebuilt, slim)
	}
	want := agent.Config{Server: "10.0.0.1:7071", Name: "rack1-07", CPU: 7.5, Memory: 120 << 30,
		Labels: map[string]string{"zone": "a", "disk": "ssd,fast"}, PortRange: "30000-30100", MetricsAddr: "127.0.0.1:9", DataDir: "/tmp/x y",
		CgroupParent: "/fathom", CgroupMode: "cgroup2", RemoteWriteURL: "http://h/api/v1/write", RemoteWriteBuffer: 7,
		EvictionThreshold: 0.9, GracePeriod: 3e9, SampleInterval: 2e9, PushInterval: 20e9, LogMaxSize: 1 << 20, LogMaxFiles: 5,
		TaskRetention: 2 * time.Hour, StopTasksOnExit: true, Version: "test"}
	if !reflect.DeepEqual(fat, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", fat, want)
	}
}

func TestBadFlagsSayWhatToFix(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-max-size", "100"}, "at least 4Ki"},
		{[]string{"--log-max-size", "ten"}, "--log-max-size"},
		{[]string{"--log-max-files", "0"}, "at least 1"},
		{[]string{"--task-retention", "-1h"}, "--task-retention"},
		{[]string{"--cgroup-mode", "v3"}, "not one of auto, cgroup2, cgroup1, none"},
		{[]string{"--label", "novalue"}, "key=value"},
	} {
		_, _, err := parse(t, SlimName, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !cli.IsUsageError(err) {
			t.Errorf("%v: error %v, want a usage error mentioning %q", tc.args, err, tc.want)
		}
	}
}
