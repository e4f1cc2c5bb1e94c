package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"

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
	for _, f := range modelSubcommands {
		cmd.AddCommand(f(g))
	}
	return cmd
}

// modelSubcommands are further `fathom model` sub-commands (list, retrain:
// the registry side, which talks to the server), added from init functions
// of their own files with registerModelSubcommand.
var modelSubcommands []func(*cli.Globals) *cobra.Command

// registerModelSubcommand adds a `fathom model` sub-command. Call it from an
// init function.
func registerModelSubcommand(f func(*cli.Globals) *cobra.Command) {
	modelSubcommands = append(modelSubcommands, f)
}

// EvalReport is the -o json shape of `fathom model eval` (ARCHITECTURE.md).
type EvalReport struct {
	Trace   string         `json:"trace"`
	Format  string         `json:"format"`
	VMs     string         `json:"vms,omitempty"`
	Tasks   int            `json:"tasks"`
	Rows    int            `json:"rows"`
	Dropped map[string]int `json:"dropped"`
	Seconds float64        `json:"seconds"`
	// OOMFeedback: memory violations were reported to recommenders as OOM kills.
	OOMFeedback bool `json:"oom_feedback"`
	// Budget is the violation budget the fathom fleet steered to.
	Budget  predictor.ViolationBudget `json:"budget"`
	Results []predictor.Result        `json:"results"`
	// Sweep, with --sweep: fathom's curve over budgets, the baselines'
	// over their knobs, and the ratios at equal violations.
	Sweep *predictor.SweepReport `json:"sweep,omitempty"`
}

func newModelEvalCmd(g *cli.Globals) *cobra.Command {
	var (
		tracePath, format, vms       string
		budget                       models.ViolationBudget
		policies                     []string
		workers                      int
		noOOM, sweep                 bool
		scales, percentiles, margins []float64
	)
	cmd := &cobra.Command{
		Use:   "eval --trace FILE --format bitbrains",
		Short: "Replay a usage trace through every recommender and print their figures",
		Long: `Replays every task of a trace through each recommender. The limit for each
5-minute window is asked for before the window is seen (no look-ahead); the
first 24 h of each task are a warm-up and are not scored. Per resource it
prints slack Σ(limit−usage)⁺/Σlimit, footprint Σlimit/Σprovisioned, violations
(usage > limit), severe violations (usage > 1.2 × limit) and limit changes
(> 5%) per task-day.

The fathom recommenders of all the trace's tasks are one fleet: they steer the
share of task-windows over the limit to --violation-budget together, from their
own misses as the replay goes (no look-ahead, nothing tuned on the trace).

With --sweep it traces fathom's footprint against violations over budgets
(--violation-budget × --budget-scales) and each baseline's over its own knobs
(--percentiles × --margins: vpa's target percentile and safety margin,
autopilot's percentile of CPU and of its 48 h memory window and its margin),
reads each baseline's Pareto envelope at fathom's violation rate, and prints
fathom's footprint over the better baseline's at equal violations.`,
		Example: `  fathom model eval --trace ../shared/traces/bitbrains-rnd-2013-07-vm001-250.csv.gz --format bitbrains
  fathom model eval --trace rnd.csv.gz --format bitbrains --vms 1-150 --violation-budget cpu=0.005,memory=0.0005
  fathom model eval --trace rnd.csv.gz --format bitbrains --vms 1-150 --sweep -o json`,
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
			eo := predictor.EvalOptions{Policies: policies, Workers: workers, NoOOMFeedback: noOOM, Budget: budget}
			res, err := predictor.Evaluate(series, eo)
			if err != nil {
				return err
			}
			rep := EvalReport{
				Trace: tracePath, Format: format, VMs: vms, Tasks: len(series), Rows: stats.Rows, OOMFeedback: !noOOM,
				Dropped: map[string]int{"zero_capacity": stats.ZeroCapacity, "duplicate_timestamp": stats.DuplicateTime, "out_of_order": stats.OutOfOrderTime},
				Budget:  budget, Results: res,
			}
			if sweep {
				sw, err := predictor.Sweep(series, predictor.SweepOptions{Eval: eo, Budget: budget, Scales: scales, Percentiles: percentiles, Margins: margins})
				if err != nil {
					return cli.UsageErrorf("--sweep: %v", err)
				}
				rep.Sweep = &sw
			}
			rep.Seconds = time.Since(t0).Seconds()
			return g.Print(rep, func(w io.Writer) {
				printEvalTable(w, rep)
				if rep.Sweep != nil {
					printSweepTables(w, *rep.Sweep)
				}
			})
		},
	}
	cmd.Flags().StringVar(&tracePath, "trace", "", "trace file (CSV, optionally gzipped) or directory of per-VM files")
	cmd.Flags().StringVar(&format, "format", "bitbrains", "trace format: bitbrains")
	cmd.Flags().StringVar(&vms, "vms", "", "VMs to evaluate, e.g. 1-200 (default all)")
	cmd.Flags().StringSliceVar(&policies, "policies", append([]string{predictor.PolicyProvisioned}, models.Kinds[1:]...), "policies to evaluate")
	cmd.Flags().IntVar(&workers, "workers", runtime.GOMAXPROCS(0), "tasks replayed in parallel")
	cmd.Flags().BoolVar(&noOOM, "no-oom-feedback", false, "do not tell recommenders about the OOM kill a memory violation would cause")
	bindViolationBudget(cmd.Flags(), &budget)
	cmd.Flags().BoolVar(&sweep, "sweep", false, "also trace fathom's and the baselines' footprint-vs-violations curves and print the ratio at equal violations")
	cmd.Flags().Float64SliceVar(&scales, "budget-scales", predictor.DefaultSweepScales, "with --sweep: multiples of --violation-budget that trace fathom's curve")
	cmd.Flags().Float64SliceVar(&percentiles, "percentiles", predictor.DefaultSweepPercentiles, "with --sweep: the baselines' target percentiles")
	cmd.Flags().Float64SliceVar(&margins, "margins", predictor.DefaultSweepMargins, "with --sweep: the baselines' safety margins (0.15 = +15%)")
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
	fmt.Fprintf(w, "violation budget %s (fathom: %s of CPU windows, %s of memory windows may exceed the limit)\n",
		rep.Budget, predictor.FormatPercent(rep.Budget.CPU), predictor.FormatPercent(rep.Budget.Memory))
	fmt.Fprintln(w, "POLICY\tRESOURCE\tSLACK\tFOOTPRINT\tVIOLATIONS\tSEVERE\tCHANGES/TASK-DAY")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%s\t%s\t%.2f%%\t%.3f\t%.3f%%\t%.3f%%\t%.2f\n", r.Policy, r.Resource,
			100*r.Slack, r.Footprint, 100*r.Violations, 100*r.SevereViolations, r.ChangesPerTaskDay)
	}
}

func init() {
	registerModelSubcommand(modelListCmd)
	registerModelSubcommand(modelRetrainCmd)
}

func modelListCmd(g *cli.Globals) *cobra.Command {
	var namespace, job string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the trained model versions in the server's registry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if namespace != "" {
				q.Set("namespace", namespace)
			}
			if job != "" {
				q.Set("job_name", job)
			}
			resp := &fathomv1.ListModelsResponse{}
			if err := newAPIClient(g).call(cmd.Context(), "GET", "/v1/models", q, "", nil, resp); err != nil {
				return err
			}
			out, err := marshalOut(resp)
			if err != nil {
				return err
			}
			return g.Print(out, func(w io.Writer) { printModelTable(w, resp.GetModels()) })
		},
	}
	cmd.Flags().StringVar(&namespace, "namespace", "", "only this namespace")
	cmd.Flags().StringVar(&job, "job", "", "only this job name")
	return cmd
}

func printModelTable(w io.Writer, ms []*fathomv1.Model) {
	fmt.Fprintln(w, "NAMESPACE\tJOB\tMODEL\tKIND\tVERSION\tTRAINED\tTASKS\tSAMPLES\tFIGURES")
	for _, m := range ms {
		keys := make([]string, 0, len(m.GetMetrics()))
		for k := range m.GetMetrics() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		figs := make([]string, 0, len(keys))
		for _, k := range keys {
			figs = append(figs, fmt.Sprintf("%s=%.4g", k, m.GetMetrics()[k]))
		}
		trained := ""
		if m.GetTrainedAt() != nil {
			trained = m.GetTrainedAt().AsTime().UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", m.GetNamespace(), m.GetJobName(), m.GetName(), m.GetKind(),
			m.GetVersion(), trained, m.GetTasks(), m.GetSamples(), strings.Join(figs, " "))
	}
}

func modelRetrainCmd(g *cli.Globals) *cobra.Command {
	var (
		namespace, job, since, until string
		dryRun, noProgress           bool
	)
	cmd := &cobra.Command{
		Use:   "retrain",
		Short: "Retrain the models from the usage history in the metrics store",
		Long: `Asks the control plane to retrain the recommenders from the usage history
between --since and --until (default: the last 8 days), evaluate them against
the baselines on the same history, and store a new version. It also refits the
cold-start model, which sizes jobs that have no history yet, on the sizes
learned for every job retrained so far. With --dry-run it trains and evaluates
but stores and serves nothing.`,
		Example: `  fathom model retrain --since 72h --dry-run
  fathom model retrain --namespace team-a --job web --since 2026-11-01T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &fathomv1.RetrainModelsRequest{Namespace: namespace, JobName: job, DryRun: dryRun}
			now := time.Now()
			for _, f := range []struct {
				name, v string
				dst     **timestamppb.Timestamp
			}{{"--since", since, &req.Since}, {"--until", until, &req.Until}} {
				if f.v == "" {
					continue
				}
				ts, err := parseModelWhen(f.v, now)
				if err != nil {
					return cli.UsageErrorf("%s %q: %v", f.name, f.v, err)
				}
				*f.dst = timestamppb.New(ts)
			}
			if req.Since != nil && req.Until != nil && req.Until.AsTime().Before(req.Since.AsTime()) {
				return cli.UsageErrorf("--until %s is before --since %s; swap them", until, since)
			}
			body, err := protojson.Marshal(req)
			if err != nil {
				return err
			}
			var bar *progressbar.ProgressBar
			if !noProgress && g.Output == "table" {
				bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(g.Stderr),
					progressbar.OptionSetDescription("retraining"), progressbar.OptionSpinnerType(14),
					progressbar.OptionClearOnFinish())
				done := make(chan struct{})
				defer close(done)
				go func() {
					t := time.NewTicker(100 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-done:
							return
						case <-t.C:
							_ = bar.Add(1)
						}
					}
				}()
			}
			resp := &fathomv1.RetrainModelsResponse{}
			err = newAPIClient(g).call(cmd.Context(), "POST", "/v1/models:retrain", nil, "application/json", body, resp)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return err
			}
			out, err := marshalOut(resp)
			if err != nil {
				return err
			}
			return g.Print(out, func(w io.Writer) {
				verb := "stored"
				if resp.GetDryRun() {
					verb = "dry run, nothing stored"
				}
				fmt.Fprintf(w, "retrained %d model(s) from %d windows (%s)\n", len(resp.GetModels()), resp.GetWindows(), verb)
				printModelTable(w, resp.GetModels())
			})
		},
	}
	cmd.Flags().StringVar(&namespace, "namespace", "", "only this namespace")
	cmd.Flags().StringVar(&job, "job", "", "only this job name")
	cmd.Flags().StringVar(&since, "since", "", "history start: RFC 3339 time or a duration before now such as 72h (default until-8d)")
	cmd.Flags().StringVar(&until, "until", "", "history end: RFC 3339 time or a duration before now (default now)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "train and evaluate, but store nothing")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "no progress spinner")
	return cmd
}

// parseModelWhen reads an RFC 3339 time or a duration before now ("72h").
func parseModelWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time (2026-11-01T00:00:00Z) or a positive duration before now (72h)")
	}
	return now.Add(-d), nil
}

// printSweepTables prints fathom's curve against the baselines' envelopes
// at equal violations, then the baselines' Pareto points.
func printSweepTables(w io.Writer, sw predictor.SweepReport) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "At equal violations: fathom at each budget against each baseline's Pareto envelope read at fathom's violation rate (* = the budget given)")
	fmt.Fprintln(w, "RESOURCE\tBUDGET\tFATHOM FOOTPRINT\tVIOLATIONS\tACHIEVED/BUDGET\tVPA AT SAME VIOLATIONS\tAUTOPILOT AT SAME VIOLATIONS\tRATIO TO BETTER\tRATIO (CONSERVATIVE)")
	for _, c := range sw.Comparisons {
		mark := ""
		if c.Default {
			mark = "*"
		}
		env := map[string]string{}
		for _, e := range c.Baselines {
			env[e.Policy] = "out of range"
			if e.InRange {
				env[e.Policy] = fmt.Sprintf("%.3f (%.3f×)", e.Footprint, e.Ratio)
			}
		}
		ratio, cons := "n/a", "n/a"
		if c.Best != "" {
			ratio = fmt.Sprintf("%.3f× %s", c.Ratio, c.Best)
			cons = fmt.Sprintf("%.3f×", c.RatioConservative)
		}
		fmt.Fprintf(w, "%s\t%s%s\t%.3f\t%s\t%.2f\t%s\t%s\t%s\t%s\n", c.Resource, predictor.FormatPercent(c.Budget), mark,
			c.Fathom.Footprint, predictor.FormatPercent(c.Fathom.Violations), c.AchievedOverBudget, env["vpa"], env["autopilot"], ratio, cons)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Baselines' Pareto points (no other point of the policy has fewer violations and less footprint)")
	fmt.Fprintln(w, "POLICY\tRESOURCE\tPERCENTILE\tMARGIN\tFOOTPRINT\tVIOLATIONS\tSEVERE\tCHANGES/TASK-DAY")
	for _, pol := range []string{"vpa", "autopilot"} {
		for _, rsc := range []string{"cpu", "memory"} {
			for _, p := range predictor.Envelope(sw.Points, pol, rsc) {
				fmt.Fprintf(w, "%s\t%s\t%g\t%g\t%.3f\t%s\t%s\t%.2f\n", pol, rsc, p.Percentile, p.Margin, p.Footprint,
					predictor.FormatPercent(p.Violations), predictor.FormatPercent(p.SevereViolations), p.ChangesPerTaskDay)
			}
		}
	}
}
