package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/fathom-scheduler/fathom/server"
	"github.com/fathom-scheduler/fathom/store"
)

// childEnv, when set to "<data dir>|<http addr>", makes the test binary run a
// control plane (embedded etcd in the data dir, REST on the address) instead
// of the tests, until it is killed.
const childEnv = "FATHOM_E2E_CONTROLPLANE_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		if err := runChild(v); err != nil {
			fmt.Fprintln(os.Stderr, "child server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(v string) error {
	dir, addr, ok := strings.Cut(v, "|")
	if !ok {
		return fmt.Errorf("%s=%q: want <data dir>|<http addr>", childEnv, v)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := store.Open(ctx, store.Options{DataDir: dir})
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := server.New(ctx, server.Options{Store: st, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return srv.Serve(ctx, server.ServeOptions{HTTP: l})
}
