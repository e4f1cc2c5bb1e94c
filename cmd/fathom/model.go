package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

func init() { register(newModelCmd) }

func newModelCmd(g *cli.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Evaluate, list and retrain the sizing models",
		Long: `Fathom learns each task's CPU and memory from its usage. 'fathom model eval'
replays a real trace through every recommender with no look-ahead and prints
their figures side by side; 'list' and 'retrain' talk to the server's model
registry.`,
	}
	cmd.AddCommand(newModelEvalCmd(g))
	return cmd
}

// EvalReport is the -o json shape of `fathom model eval` (ARCHITECTURE.md).
type EvalReport struct {
	Trace   string             `json:"trace"`
	Format  string             `json:"format"`
	VMs     string             `json:"vms,omitempty"`
	Tasks   int                `json:"tasks"`
	Rows    int                `json:"rows"`
	Dropped map[string]int     `json:"dropped"`
	Seconds float64            `json:"seconds"`
	Results []predictor.Result `json:"results"`
}

func newModelEvalCmd(g *cli.Globals) *cobra.Command {
	var (
		tracePath, format, vms string
		policies               []string
		workers                int
	)
	cmd := &cobra.Command{
		Use:   "eval --trace FILE --format bitbrains",
		Short: "Replay a usage trace through every recommender and print their figures",
		Long: `Replays every task of a trace through each recommender. The limit for each
5-minute window is asked for before the window is seen (no look-ahead); the
first 24 h of each task are a warm-up and are not scored. Per resource it
prints slack Σ(limit−usage)⁺/Σlimit, footprint Σlimit/Σprovisioned, violations
(usage > limit), severe violations (usage > 1.2 × limit) and limit changes
(> 5%) per task-day.`,
		Example: `  fathom model eval --trace ../shared/traces/bitbrains-rnd-2013-07-vm001-250.csv.gz --format bitbrains
  fathom model eval --trace rnd.csv.gz --format bitbrains --vms 201-250 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tracePath == "" {
				return cli.UsageErrorf("--trace is required: give a Bitbrains CSV (gzipped or not) or a directory of per-VM GWA-T-12 files")
			}
			if format != "bitbrains" {
				return cli.UsageErrorf("--format %q is not supported; use bitbrains", format)
			}
			rng, err := trace.ParseVMRange(vms)
			if err != nil {
				return cli.UsageErrorf("--vms: %v", err)
			}
			for _, p := range policies {
				if p == predictor.PolicyProvisioned {
					continue
				}
				if _, err := models.New(p); err != nil {
					return cli.UsageErrorf("--policies: %v", err)
				}
			}
			t0 := time.Now()
			series, stats, err := loadBitbrains(tracePath, rng)
			if err != nil {
				return err
			}
			if len(series) == 0 {
				return cli.UsageErrorf("no VMs of %s are in --vms %s", tracePath, vms)
			}
			res, err := predictor.Evaluate(series, predictor.EvalOptions{Policies: policies, Workers: workers})
			if err != nil {
				return err
			}
			rep := EvalReport{
				Trace: tracePath, Format: format, VMs: vms, Tasks: len(series), Rows: stats.Rows,
				Dropped: map[string]int{"zero_capacity": stats.ZeroCapacity, "duplicate_timestamp": stats.DuplicateTime, "out_of_order": stats.OutOfOrderTime},
				Seconds: time.Since(t0).Seconds(), Results: res,
			}
			return g.Print(rep, func(w io.Writer) { printEvalTable(w, rep) })
		},
	}
	cmd.Flags().StringVar(&tracePath, "trace", "", "trace file (CSV, optionally gzipped) or directory of per-VM files")
	cmd.Flags().StringVar(&format, "format", "bitbrains", "trace format: bitbrains")
	cmd.Flags().StringVar(&vms, "vms", "", "VMs to evaluate, e.g. 1-200 (default all)")
	cmd.Flags().StringSliceVar(&policies, "policies", append([]string{predictor.PolicyProvisioned}, models.Kinds[1:]...), "policies to evaluate")
	cmd.Flags().IntVar(&workers, "workers", runtime.GOMAXPROCS(0), "tasks replayed in parallel")
	return cmd
}

func loadBitbrains(path string, rng trace.VMRange) ([]predictor.Series, trace.BitbrainsStats, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, trace.BitbrainsStats{}, cli.UsageErrorf("--trace: %v", err)
	}
	if fi.IsDir() {
		samples, st, err := trace.ReadBitbrainsDir(path)
		if err != nil {
			return nil, st, err
		}
		series, err := trace.BitbrainsSeries(func(yield func(trace.BitbrainsSample, error) bool) {
			for _, s := range samples {
				if !yield(s, nil) {
					return
				}
			}
		}, rng)
		return series, st, err
	}
	rc, err := trace.OpenFile(path)
	if err != nil {
		return nil, trace.BitbrainsStats{}, err
	}
	defer rc.Close()
	r, err := trace.NewBitbrainsReader(rc)
	if err != nil {
		return nil, trace.BitbrainsStats{}, err
	}
	series, err := trace.BitbrainsSeries(r.All(), rng)
	if err != nil {
		return nil, r.Stats(), fmt.Errorf("%s: %w", path, err)
	}
	return series, r.Stats(), nil
}

func printEvalTable(w io.Writer, rep EvalReport) {
	fmt.Fprintf(w, "trace %s (%d tasks, %d rows; dropped %d zero-capacity, %d duplicate-timestamp) in %.1fs\n",
		rep.Trace, rep.Tasks, rep.Rows, rep.Dropped["zero_capacity"], rep.Dropped["duplicate_timestamp"], rep.Seconds)
	fmt.Fprintln(w, "POLICY\tRESOURCE\tSLACK\tFOOTPRINT\tVIOLATIONS\tSEVERE\tCHANGES/TASK-DAY")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%s\t%s\t%.2f%%\t%.3f\t%.3f%%\t%.3f%%\t%.2f\n", r.Policy, r.Resource,
			100*r.Slack, r.Footprint, 100*r.Violations, 100*r.SevereViolations, r.ChangesPerTaskDay)
	}
}
