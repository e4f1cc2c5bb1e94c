package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/sim"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

func init() { register(newTraceCmd) }

func newTraceCmd(g *cli.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Work with traces: export your cluster's usage in Fathom's trace format",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTraceExportCmd(g))
	return cmd
}

func newTraceExportCmd(g *cli.Globals) *cobra.Command {
	var since, until, promURL, out string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "export --since 7d -o trace.csv",
		Short: "Write a live cluster's per-task usage in Fathom's trace format",
		Long: `Read every task's usage from the cluster's Prometheus HTTP API (the server's
embedded store answers /api/v1/query*, or give --prometheus-url) in 5-minute
windows, and write it in Fathom's trace format (docs/simulator.md), so that
'fathom sim --format fathom' can replay your own cluster through every policy.`,
		Example: `  fathom trace export --since 7d -o trace.csv
  fathom trace export --prometheus-url http://127.0.0.1:9090 --since 2d --until 1d -o - | gzip > trace.csv.gz
  fathom sim --trace trace.csv --format fathom`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now().UTC()
			ago := func(flag, s string) (time.Time, error) {
				if s == "" || s == "now" {
					return now, nil
				}
				if t, err := time.Parse(time.RFC3339, s); err == nil {
					return t, nil
				}
				d, err := sim.ParseDuration(s)
				if err != nil || d < 0 {
					return time.Time{}, cli.UsageErrorf("--%s %q: give a duration back from now (7d, 36h) or an RFC 3339 time", flag, s)
				}
				return now.Add(-d), nil
			}
			from, err := ago("since", since)
			if err != nil {
				return err
			}
			to, err := ago("until", until)
			if err != nil {
				return err
			}
			if !to.After(from) {
				return cli.UsageErrorf("--since (%s) must be before --until (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
			}
			if out == "" {
				return cli.UsageErrorf("-o FILE is required (use -o - for standard output)")
			}
			base := promURL
			if base == "" {
				base = g.ServerURL()
			}
			client, err := api.NewClient(api.Config{Address: strings.TrimRight(base, "/")})
			if err != nil {
				return cli.UsageErrorf("--prometheus-url %q: %v", base, err)
			}
			var w io.Writer = g.Stdout
			var f *os.File
			if out != "-" {
				if f, err = os.Create(out); err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var progress func(done, total int)
			if out != "-" && simIsTerminal(os.Stderr) {
				var bar *progressbar.ProgressBar
				progress = func(done, total int) {
					if bar == nil {
						bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr),
							progressbar.OptionSetDescription("exporting tasks"), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
					}
					_ = bar.Set(done)
				}
			}
			st, err := sim.Export(ctx, promv1.NewAPI(client), from, to, trace.NewFathomWriter(w), progress)
			if err != nil {
				if f != nil {
					f.Close()
					os.Remove(out) // no half-written trace
				}
				return fmt.Errorf("export from %s: %w", base, err)
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return err
				}
				fmt.Fprintf(g.Stderr, "wrote %d windows of %d tasks (%s to %s) to %s\n", st.Rows, st.Tasks,
					from.Format(time.RFC3339), to.Format(time.RFC3339), out)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "7d", "start: a duration back from now (7d, 36h) or an RFC 3339 time")
	f.StringVar(&until, "until", "now", "end: a duration back from now or an RFC 3339 time")
	f.StringVar(&promURL, "prometheus-url", "", "Prometheus HTTP API base URL (default: the control plane, --server)")
	// -o here names the output file, as in 'fathom trace export -o trace.csv';
	// it shadows the global --output format flag for this command only.
	f.StringVarP(&out, "output", "o", "", "file to write (- for standard output)")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long")
	return cmd
}
