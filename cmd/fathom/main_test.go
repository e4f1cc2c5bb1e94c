package main

import (
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/fathom-scheduler/fathom/internal/cli"
)

// TestUnknownSubcommandIsBadInput: a typo'd sub-command of a group exits 2
// with a suggestion instead of printing help and exiting 0; the group
// alone still prints its help.
func TestUnknownSubcommandIsBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "lst"}, `unknown command "lst" for "fathom job"; did you mean list?`},
		{[]string{"node", "lis"}, `did you mean list?`},
		{[]string{"job", "frobnicate"}, `unknown command "frobnicate" for "fathom job" (run 'fathom job --help'`},
		{[]string{"jbo"}, `unknown command "jbo" for "fathom"`},
	} {
		_, err := runCLI(t, tc.args...)
		if err == nil || !cli.IsUsageError(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fathom %s: %v, want a usage error (exit 2) containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	out, err := runCLI(t, "job")
	if err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("fathom job: %v, want its help:\n%s", err, out)
	}
}

func TestVersionFlag(t *testing.T) {
	out, err := runCLI(t, "--version")
	if err != nil || strings.TrimSpace(out) != versionLine() || !strings.HasPrefix(out, "fathom ") {
		t.Errorf("--version: %q, %v; want %q", out, err, versionLine())
	}
	out, err = runCLI(t, "version")
	if err != nil || strings.TrimSpace(out) != versionLine() {
		t.Errorf("version: %q, %v; want %q", out, err, versionLine())
	}
}

// TestServerAtTheGRPCPort points --server at a real gRPC-only listener: the
// error names the mistake instead of quoting HTTP/2 frame bytes.
func TestServerAtTheGRPCPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	go g.Serve(ln)
	defer g.Stop()
	_, err = runCLI(t, "--server", "http://"+ln.Addr().String(), "job", "list")
	if err == nil || !cli.IsUsageError(err) || !strings.Contains(err.Error(), "gRPC port") || strings.Contains(err.Error(), `\x00`) {
		t.Errorf("job list against a gRPC port: %v; want a usage error naming the gRPC port", err)
	}
}
