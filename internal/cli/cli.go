// Package cli holds what every fathom sub-command shares: the global flags
// (--server, -o), output formatting (table, json, yaml) and exit codes.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// DefaultServer is the control plane address used when neither --server nor
// FATHOM_ADDR is set.
const DefaultServer = "http://127.0.0.1:7070"

// Exit codes: 0 success, 1 failure, 2 bad input (usage, invalid spec, a 400).
const (
	ExitFailure  = 1
	ExitBadInput = 2
)

// Globals are the flags every command sees, plus where it writes.
type Globals struct {
	Server string
	Output string
	Stdout io.Writer
	Stderr io.Writer
}

// NewGlobals returns Globals writing to the given streams.
func NewGlobals(stdout, stderr io.Writer) *Globals {
	return &Globals{Stdout: stdout, Stderr: stderr}
}

// Bind registers the persistent flags on the root command.
func (g *Globals) Bind(root *cobra.Command) {
	def := os.Getenv("FATHOM_ADDR")
	if def == "" {
		def = DefaultServer
	}
	root.PersistentFlags().StringVar(&g.Server, "server", def, "control plane address (env FATHOM_ADDR)")
	root.PersistentFlags().StringVarP(&g.Output, "output", "o", "table", "output format: table|json|yaml")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch g.Output {
		case "table", "json", "yaml", "csv":
			return nil
		}
		return UsageErrorf("--output %q is not supported; use table, json or yaml", g.Output)
	}
	// A flag value that does not parse (--violation-budget gpu=1,
	// --workers lots) is bad input: exit 2 with what to fix.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageErrorf("%v", err) })
}

// ServerURL returns the control plane base URL with a scheme and no trailing slash.
func (g *Globals) ServerURL() string {
	s := strings.TrimRight(g.Server, "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return s
}

// Print writes v as JSON or YAML when -o asks for it, and otherwise calls table
// with a tabwriter that is flushed afterwards.
func (g *Globals) Print(v any, table func(w io.Writer)) error {
	switch g.Output {
	case "json":
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return err
		}
		_, err = g.Stdout.Write(y)
		return err
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// ExitError carries an explicit process exit code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ErrUsage marks bad input from the person at the keyboard; main exits 2.
var ErrUsage = errors.New("bad input")

// UsageErrorf returns an error that makes the process exit with code 2.
func UsageErrorf(format string, args ...any) error {
	return &ExitError{Code: ExitBadInput, Err: fmt.Errorf(format, args...)}
}

// IsUsageError reports whether err should exit with code 2.
func IsUsageError(err error) bool {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code == ExitBadInput
	}
	return errors.Is(err, ErrUsage) || strings.HasPrefix(err.Error(), "unknown command") ||
		strings.HasPrefix(err.Error(), "unknown flag") || strings.Contains(err.Error(), "accepts ")
}

// Exit ends the process for the error a command returned: nothing for nil;
// otherwise the error on stderr and exit status ExitError.Code, 2 for a usage
// error, 1 for anything else. Every Fathom binary's main ends with it.
func Exit(err error) {
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	var ee *ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.Code)
	}
	if IsUsageError(err) {
		os.Exit(2)
	}
	os.Exit(1)
}
