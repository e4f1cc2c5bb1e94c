package agent

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fathom-scheduler/fathom/agent/burn"
)

// TestMain lets the test binary act as the workload ("fathom burn") and as a
// stand-alone agent process, so the tests need no separately built binary.
func TestMain(m *testing.M) {
	switch os.Getenv("FATHOM_TEST_ROLE") {
	case "burn":
		os.Exit(runTestBurn())
	case "agent":
		os.Exit(runTestAgent())
	}
	os.Exit(m.Run())
}

func runTestBurn() int {
	cpu, _ := strconv.ParseFloat(os.Getenv("BURN_CPU"), 64)
	mem, _ := ParseBytes(envOr("BURN_MEMORY", "0"))
	dur, _ := time.ParseDuration(envOr("BURN_DURATION", "0s"))
	pattern := envOr("BURN_PATTERN", "steady")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := burn.Run(ctx, burn.Config{CPU: cpu, Memory: mem, Pattern: pattern, Period: time.Minute, Duration: dur}); err != nil {
		fmt.Fprintln(os.Stderr, "burn:", err)
		return 1
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
