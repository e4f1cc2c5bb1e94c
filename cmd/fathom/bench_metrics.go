package main

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/metrics/bench"
)

func init() { addBenchCommand(newBenchMetricsCmd) }

func newBenchMetricsCmd(g *cli.Globals) *cobra.Command {
	var o bench.Options
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Embedded metrics store: remote-write ingest rate and Job right-sizing panel latency",
		Long: `Runs the embedded Prometheus-compatible store as the server does, on a loopback port:

  ingest   agents' remote-write pushes (1 s samples, one push per node per 10 s,
           pre-encoded) sent by concurrent clients; prints samples/s.
  queries  a job of --query-tasks tasks with --query-hours of history, the
           per-task recording rules evaluated over it every 5 m as the store's
           rule manager would have while it arrived (compacted into blocks, as
           after a day of running); then the Job right-sizing dashboard
           refreshed --query-runs times over the whole range over the HTTP API
           as Grafana opens it (all tasks selected, the default $top): its
           ranking variables, then each panel's queries concurrently, at the
           panel's step (--query-step raised to its 5 m minimum interval);
           prints p50/p99 of a dashboard refresh and per panel.`,
		Example: `  fathom bench metrics
  fathom bench metrics --query-hours 6 --query-runs 5 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.QueryResolution < time.Second || o.QueryStep < o.QueryResolution {
				return cli.UsageErrorf("--query-resolution must be ≥ 1s and --query-step ≥ --query-resolution")
			}
			if g.Output == "table" {
				o.Progress = func(s string) { fmt.Fprintln(g.Stderr, "bench metrics:", s) }
			}
			r, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			return g.Print(r, func(w io.Writer) {
				fmt.Fprintf(w, "remote-write ingest\t%.0f samples/s\t(%d samples in %d requests, %.1f s wall, %.1f s CPU, %d clients)\n",
					r.IngestSamplesPerSec, r.IngestSamples, r.IngestRequests, r.IngestSeconds, r.IngestCPUSeconds, o.IngestClients)
				fmt.Fprintf(w, "job right-sizing refresh p50\t%.1f ms\n", r.RightSizingP50Ms)
				fmt.Fprintf(w, "job right-sizing refresh p99\t%.1f ms\t(%d variable + %d panel queries over %d h of %d tasks, step %.0fs, top %s; %d samples stored + %d recorded by the rules, fill %.1f s of which rules %.1f s, compaction %.1f s; %.1f s CPU for %d refreshes)\n",
					r.RightSizingP99Ms, r.RightSizingVariableQueries, r.RightSizingQueryCount, r.QueryHours, r.QueryTasks, r.QueryPanelStepSeconds, r.QueryTopTasks,
					r.QuerySamplesStored, r.QueryRecordedSamples, r.QueryFillSeconds, r.QueryRulesSeconds, r.QueryCompactSeconds, r.QueryCPUSeconds, len(r.RightSizingVariablesMs))
				if n := len(r.RightSizingVariablesMs); n > 0 {
					vs := append([]float64(nil), r.RightSizingVariablesMs...)
					sort.Float64s(vs)
					fmt.Fprintf(w, "  ranking variables\tmedian %.1f ms\tmax %.1f ms\t(%d queries per refresh)\n", vs[n/2], vs[n-1], r.RightSizingVariableQueries)
				}
				for _, p := range r.Panels {
					fmt.Fprintf(w, "  panel %q\tp50 %.1f ms\tp99 %.1f ms\t(%d queries, %d series)\n", p.Title, p.P50Ms, p.P99Ms, p.Queries, p.Series)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", "", "scratch directory for the TSDBs (default: a temp dir, removed)")
	f.IntVar(&o.IngestTasks, "ingest-tasks", 1000, "tasks pushing usage")
	f.IntVar(&o.IngestNodes, "ingest-nodes", 50, "agents (one push per agent per 10 s)")
	f.IntVar(&o.IngestMinutes, "ingest-minutes", 5, "minutes of pushes to send")
	f.IntVar(&o.IngestClients, "ingest-clients", 8, "concurrent pushers")
	f.IntVar(&o.QueryTasks, "query-tasks", 1000, "tasks of the job the right-sizing dashboard shows")
	f.IntVar(&o.QueryHours, "query-hours", 24, "hours of history, and the dashboard's time range")
	f.IntVar(&o.QueryRuns, "query-runs", 10, "dashboard refreshes to time (p99 is by nearest rank: with 10, the slowest)")
	f.DurationVar(&o.QueryResolution, "query-resolution", 30*time.Second, "sample interval of the stored history (agents sample every 1 s; 30 s keeps the fill short)")
	f.DurationVar(&o.QueryStep, "query-step", time.Minute, "Grafana's auto step for the range (1m for 24 h on a wide panel); panels with a larger minimum interval use theirs")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the synthetic usage")
	return cmd
}
