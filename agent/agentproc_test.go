package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// runTestAgent is the body of a stand-alone agent process started by the
// restart test: the test binary re-executed with FATHOM_TEST_ROLE=agent.
func runTestAgent() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := Run(ctx, Config{
		Server: os.Getenv("AGENT_SERVER"), Name: "restart-node", DataDir: os.Getenv("AGENT_DATA"),
		CgroupParent: os.Getenv("AGENT_CGROUP_PARENT"), MetricsAddr: "127.0.0.1:0", CPU: 2, Memory: 4 << 30,
		RemoteWriteURL: "http://127.0.0.1:1/api/v1/write", GracePeriod: 2 * time.Second,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}
	return 0
}
