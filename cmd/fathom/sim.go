package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/scheduler"
	"github.com/fathom-scheduler/fathom/sim"
	"github.com/fathom-scheduler/fathom/sim/trace"
)

func init() { register(newSimCmd) }

func newSimCmd(g *cli.Globals) *cobra.Command {
	var (
		path, format, policies, fails, tsOut, taskOut, prio, risk, vms, corr string
		machineCPU, eps, spread                                              float64
		machineMem                                                           string
		seed                                                                 uint64
		samples                                                              int
		noProgress                                                           bool
		budget                                                               models.ViolationBudget
	)
	cmd := &cobra.Command{
		Use:   "sim --trace FILE --format F [--policy p1,p2,...]",
		Short: "Replay a trace through the real control loop, predictor and scheduler, per policy side by side",
		Long: `Replay a cluster trace on virtual time through the control loop the server runs
(package controller, with Fathom's own predictor and scheduler), with simulated
agents on machines of one shape (by default the largest provisioned size in the
trace) and a node provider that adds and removes machines at once. Each policy
sizes every task with no look-ahead, the controller places, resizes, moves and
restarts the tasks, and the tasks then use what the trace says they used.

Policies: provisioned (the trace's own sizes), vpa, autopilot (baselines that
pack on their limits, no oversubscription), fathom (packs on its predicted
requests within the overload-risk bound) and oracle (knows each window's usage
in advance; the floor).

Per-task figures (slack, violations, footprint, changes) are computed by the same
code as 'fathom model eval'; cluster figures are machines used (mean, peak)
against the lower bound, utilization, overloaded machine-windows, evictions and
reschedules. See docs/simulator.md for how machines are counted.`,
		Example: `  fathom sim --trace ../shared/traces/bitbrains-rnd-2013-07-vm001-250.csv.gz --format bitbrains -o json
  fathom sim --trace trace.csv --format fathom --policy vpa,fathom --fail 2@3d --timeseries ts.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return cli.UsageErrorf("--trace is required: a trace file (or directory for google2011/alibaba2018)")
			}
			opts := sim.Options{OverloadRisk: eps, Seed: seed, SampleTasks: samples, Timeseries: tsOut != "", StepSpread: spread, Budget: budget}
			if spread == 0 || math.IsNaN(spread) || math.IsInf(spread, 0) {
				return cli.UsageErrorf("--step-spread %v: give a finite factor > 0 (e.g. 1), or < 0 for the recommender's own distribution", spread)
			}
			if taskOut != "" && samples == 0 {
				opts.SampleTasks = 3
			}
			if policies != "" {
				opts.Policies = simSplitList(policies)
			}
			for _, f := range simSplitList(fails) {
				fl, err := sim.ParseFailure(f)
				if err != nil {
					return cli.UsageErrorf("%v", err)
				}
				opts.Failures = append(opts.Failures, fl)
			}
			var err error
			if opts.Risk, err = scheduler.ParseRiskModel(risk); err != nil {
				return cli.UsageErrorf("--risk-model: %v", err)
			}
			switch corr {
			case "online":
			case "trace":
				opts.CorrelationFromTrace = true
			default:
				c, err := scheduler.ParseCorrelation(corr)
				if err != nil {
					return cli.UsageErrorf("--risk-correlation: %v (or online, trace: estimated from the trace)", err)
				}
				opts.Correlation = &c
			}
			opts.Machine.CPU = machineCPU
			if machineMem != "" {
				if opts.Machine.Memory, err = simParseBytes(machineMem); err != nil {
					return cli.UsageErrorf("--machine-memory: %v", err)
				}
			}
			lo := sim.LoadOptions{}
			if prio != "" {
				p, err := scheduler.ParsePriority(prio)
				if err != nil {
					return cli.UsageErrorf("--priority: %v", err)
				}
				lo.Priority, lo.PrioritySet = p, true
			}
			if lo.VMs, err = trace.ParseVMRange(vms); err != nil {
				return cli.UsageErrorf("--vms: %v", err)
			}
			w, err := sim.Load(path, format, lo)
			if err != nil {
				if strings.Contains(err.Error(), "trace format") {
					return cli.UsageErrorf("--format: %v", err)
				}
				return err
			}
			var bar *progressbar.ProgressBar
			if !noProgress && g.Output != "json" && simIsTerminal(os.Stderr) {
				bar = progressbar.NewOptions(w.Slots*len(simOrDefault(opts.Policies, sim.Policies)),
					progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("simulating"),
					progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond),
					progressbar.OptionClearOnFinish())
				opts.Progress = func(done, total int) { _ = bar.Set(done) }
			}
			rep, err := sim.Run(w, opts)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				if strings.Contains(err.Error(), sim.ErrInvalid.Error()) {
					return cli.UsageErrorf("%v", err)
				}
				return err
			}
			if tsOut != "" {
				if err := simWriteFile(tsOut, func(w io.Writer) error { return sim.WriteTimeseries(w, rep.Timeseries) }); err != nil {
					return err
				}
			}
			if taskOut != "" {
				if err := simWriteFile(taskOut, func(w io.Writer) error { return sim.WriteTaskSeries(w, rep.TaskSeries) }); err != nil {
					return err
				}
			}
			if g.Output == "csv" {
				return writeSimCSV(g.Stdout, rep)
			}
			return g.Print(rep, func(w io.Writer) { printSimTable(w, rep) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&path, "trace", "", "trace file (or directory for google2011/alibaba2018)")
	f.StringVar(&format, "format", "bitbrains", "trace format: "+strings.Join(sim.Formats, "|"))
	f.StringVar(&policies, "policy", strings.Join(sim.Policies, ","), "policies to compare, comma-separated")
	f.Float64Var(&machineCPU, "machine-cpu", 0, "machine CPU, cores (default: the trace's largest provisioned)")
	f.StringVar(&machineMem, "machine-memory", "", "machine memory, bytes or with Ki/Mi/Gi/Ti (default: the trace's largest provisioned)")
	f.Float64Var(&eps, "overload-risk", scheduler.DefaultOverloadRisk, "ε: largest accepted probability that a machine's usage exceeds its capacity")
	f.StringVar(&risk, "risk-model", "gaussian", "overload risk bound: gaussian|bernstein|cantelli")
	f.StringVar(&corr, "risk-correlation", "online", "ρ, the mean pairwise correlation of co-located tasks' usage for the risk bound: online (estimated from the window-to-window changes replayed so far: no look-ahead), trace (the same estimate from the whole trace at once), one value, or cpu,memory (0: independent)")
	f.Float64Var(&spread, "step-spread", predictor.DefaultStepSpread, "fathom policy: predicted spread = this × the RMS window-to-window change of a task's usage (< 0: the recommender's own distribution)")
	bindViolationBudget(f, &budget)
	f.StringVar(&fails, "fail", "", "machine failures N@T, comma-separated (e.g. 2@3d: two machines in use fail 3 days in)")
	f.StringVar(&tsOut, "timeseries", "", "write a per-window CSV time series of every policy's cluster to this file")
	f.StringVar(&taskOut, "task-series", "", "write per-window usage, request and limit of a few sample tasks to this CSV file")
	f.IntVar(&samples, "sample-tasks", 0, "how many sample tasks --task-series records (default 3)")
	f.StringVar(&prio, "priority", "", "priority for tasks of traces without one: prod|batch|best-effort (default batch)")
	f.StringVar(&vms, "vms", "", "Bitbrains VMs to replay, e.g. 201-250 (default all)")
	f.Uint64Var(&seed, "seed", 1, "seed for failures and the scheduler's tie-breaks")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bar")
	cmd.AddCommand(newSimSweepCmd(g))
	return cmd
}

func newSimSweepCmd(g *cli.Globals) *cobra.Command {
	var path, format, policies, scales, vms string
	cmd := &cobra.Command{
		Use:   "sweep --trace FILE --format F [--scales 0.8,1,1.25]",
		Short: "Per-task slack and violations per policy as the safety margin varies",
		Long: `Evaluate each recommender with its limits multiplied by each scale (1 = as it is),
with the code 'fathom model eval' runs, to show how slack trades against
violations as the margin varies. Output feeds notebooks/rightsizing.ipynb.`,
		Example: `  fathom sim sweep --trace ../shared/traces/bitbrains-rnd-2013-07-vm001-250.csv.gz --format bitbrains -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return cli.UsageErrorf("--trace is required")
			}
			var sc []float64
			for _, s := range simSplitList(scales) {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil || !(v > 0) {
					return cli.UsageErrorf("--scales: %q is not a number > 0", s)
				}
				sc = append(sc, v)
			}
			r, err := trace.ParseVMRange(vms)
			if err != nil {
				return cli.UsageErrorf("--vms: %v", err)
			}
			w, err := sim.Load(path, format, sim.LoadOptions{VMs: r})
			if err != nil {
				return err
			}
			pts, err := sim.MarginSweep(w.Series(), simSplitList(policies), sc, nil)
			if err != nil {
				return cli.UsageErrorf("%v", err)
			}
			out := struct {
				Trace string           `json:"trace"`
				Sweep []sim.SweepPoint `json:"sweep"`
			}{path, pts}
			if g.Output == "csv" {
				cw := csv.NewWriter(g.Stdout)
				_ = cw.Write([]string{"policy", "resource", "scale", "slack", "footprint", "violations", "severe_violations", "changes_per_task_day"})
				for _, p := range pts {
					ff := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
					_ = cw.Write([]string{p.Policy, p.Resource, ff(p.Scale), ff(p.Slack), ff(p.Footprint), ff(p.Violations), ff(p.SevereViolations), ff(p.ChangesPerTaskDay)})
				}
				cw.Flush()
				return cw.Error()
			}
			return g.Print(out, func(w io.Writer) {
				fmt.Fprintln(w, "POLICY\tRESOURCE\tSCALE\tSLACK\tFOOTPRINT\tVIOLATIONS\tSEVERE")
				for _, p := range pts {
					fmt.Fprintf(w, "%s\t%s\t%.2f\t%s\t%.3f\t%s\t%s\n", p.Policy, p.Resource, p.Scale, predictor.FormatPercent(p.Slack), p.Footprint,
						predictor.FormatPercent(p.Violations), predictor.FormatPercent(p.SevereViolations))
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&path, "trace", "", "trace file")
	f.StringVar(&format, "format", "bitbrains", "trace format: "+strings.Join(sim.Formats, "|"))
	f.StringVar(&policies, "policy", "provisioned,vpa,autopilot,fathom", "recommenders to sweep, comma-separated")
	f.StringVar(&scales, "scales", "0.6,0.8,0.9,1,1.1,1.25,1.5,2", "limit multipliers, comma-separated")
	f.StringVar(&vms, "vms", "", "Bitbrains VMs, e.g. 201-250 (default all)")
	return cmd
}

func simOrDefault(a, def []string) []string {
	if len(a) == 0 {
		return def
	}
	return a
}

func simSplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// simParseBytes reads 1073741824, 64Gi, 512Mi, 1Ti, 1.5Gi.
func simParseBytes(s string) (float64, error) {
	mult := 1.0
	for _, u := range []struct {
		suf string
		m   float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}} {
		if v, ok := strings.CutSuffix(s, u.suf); ok {
			s, mult = v, u.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a size; use bytes or a number with Ki, Mi, Gi or Ti (e.g. 256Gi)", s)
	}
	return v * mult, nil
}

func simIsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func simWriteFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func printSimTable(w io.Writer, rep *sim.Report) {
	fmt.Fprintf(w, "trace %s: %d tasks, %d windows, machine %.4g cores / %.4g GiB, ε=%g, violation budget %s, ρ cpu %.3f memory %.3f (whole-trace estimate %.3f, %.3f)\n\n",
		rep.Trace, rep.Tasks, rep.Windows, rep.Machine.CPU, rep.Machine.Memory/(1<<30), rep.OverloadRisk, rep.Budget,
		rep.RiskCorrelation[0], rep.RiskCorrelation[1], rep.StepCorrelation.Weighted[0], rep.StepCorrelation.Weighted[1])
	fmt.Fprintln(w, "POLICY\tMACHINES MEAN\tPEAK\tLOWER BOUND\tUTILIZATION\tOVERLOADED\tEVICTIONS\tRESCHEDULES")
	for _, c := range rep.Cluster {
		fmt.Fprintf(w, "%s\t%.2f\t%d\t%.2f\t%s\t%s\t%d\t%d\n", c.Policy, c.MachinesMean, c.MachinesPeak, c.LowerBoundMean,
			predictor.FormatPercent(c.Utilization), predictor.FormatPercent(c.OverloadedMachineWindows), c.Evictions, c.Reschedules)
	}
	fmt.Fprintln(w, "\t\t\t\t\t\t\t")
	fmt.Fprintln(w, "POLICY\tRESOURCE\tSLACK\tFOOTPRINT\tVIOLATIONS\tSEVERE\tCHANGES/DAY\t")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%s\t%s\t%s\t%.3f\t%s\t%s\t%.2f\t\n", r.Policy, r.Resource, predictor.FormatPercent(r.Slack), r.Footprint,
			predictor.FormatPercent(r.Violations), predictor.FormatPercent(r.SevereViolations), r.ChangesPerTaskDay)
	}
	for _, a := range rep.Assumptions {
		fmt.Fprintf(w, "note: %s\n", a)
	}
}

// writeSimCSV writes one row per policy with the cluster figures and the
// per-resource task figures side by side.
func writeSimCSV(out io.Writer, rep *sim.Report) error {
	w := csv.NewWriter(out)
	_ = w.Write([]string{"policy", "machines_mean", "machines_peak", "lower_bound_mean", "utilization", "overloaded_machine_windows", "evictions", "reschedules",
		"cpu_slack", "cpu_footprint", "cpu_violations", "cpu_severe_violations", "cpu_changes_per_task_day",
		"memory_slack", "memory_footprint", "memory_violations", "memory_severe_violations", "memory_changes_per_task_day"})
	ff := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	for _, c := range rep.Cluster {
		row := []string{c.Policy, ff(c.MachinesMean), strconv.Itoa(c.MachinesPeak), ff(c.LowerBoundMean), ff(c.Utilization), ff(c.OverloadedMachineWindows), strconv.Itoa(c.Evictions), strconv.Itoa(c.Reschedules)}
		for _, res := range []string{"cpu", "memory"} {
			for _, r := range rep.Results {
				if r.Policy == c.Policy && r.Resource == res {
					row = append(row, ff(r.Slack), ff(r.Footprint), ff(r.Violations), ff(r.SevereViolations), ff(r.ChangesPerTaskDay))
				}
			}
		}
		_ = w.Write(row)
	}
	w.Flush()
	return w.Error()
}
