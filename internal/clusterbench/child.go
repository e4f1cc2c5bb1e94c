package clusterbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Child is a `fathom server` started as a child process.
type Child struct {
	Server
	cmd  *exec.Cmd
	done chan error
	// Log is the server's stderr (in the data dir).
	Log string
}

// StartChild starts `binary server` on two free loopback ports with its data
// (the embedded etcd, fsync on, as in production) in dataDir, plus args, and
// waits until it is ready.
func StartChild(ctx context.Context, binary, dataDir string, args ...string) (*Child, error) {
	hp, err := freePort()
	if err != nil {
		return nil, err
	}
	gp, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dataDir, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(binary, append([]string{"server", "--data-dir", dataDir, "--http-addr", hp, "--grpc-addr", gp, "--dns-addr", "",
		"--log-level", "warn"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s server: %w", binary, err)
	}
	c := &Child{Server: Server{HTTP: "http://" + hp, GRPC: gp, PID: cmd.Process.Pid}, cmd: cmd, done: make(chan error, 1), Log: logPath}
	go func() { c.done <- cmd.Wait() }()
	deadline := time.After(2 * time.Minute)
	for {
		resp, err := http.Get(c.HTTP + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case err := <-c.done:
			return nil, fmt.Errorf("server exited before it was ready (%v); see %s", err, logPath)
		case <-deadline:
			c.Stop()
			return nil, fmt.Errorf("server not ready in 2 minutes; see %s", logPath)
		case <-ctx.Done():
			c.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends the server (SIGTERM, then SIGKILL after 30 s) and waits.
func (c *Child) Stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == -1 {
			return nil // ended by the signal
		}
		return err
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		return <-c.done
	}
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
