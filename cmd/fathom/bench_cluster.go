package main

// fathom bench cluster: the whole control plane end to end — a real server
// in its own process, hollow nodes over real gRPC, tasks submitted over REST
// (internal/clusterbench).

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/internal/clusterbench"
)

func init() { addBenchCommand(newBenchClusterCmd) }

func newBenchClusterCmd(g *cli.Globals) *cobra.Command {
	var o clusterbench.Options
	var dataDir, cpuProfile, heapProfile, binary string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Measure the control plane end to end: a real server, hollow nodes over gRPC, tasks over REST",
		Long: `Starts 'fathom server' as a child process (embedded etcd with fsync, as in
production, in a temporary --data-dir) and --nodes hollow nodes in this
process. Hollow nodes speak the real agent protocol over real gRPC — they
register, heartbeat every 3 s, stream their assignments and report each task
RUNNING — but start no processes (like Kubernetes' Kubemark). Then submits
--tasks tasks over REST as jobs of at most --jobs-of replicas, one after
another, while a steady trickle of GET and POST calls (--api-rate a second)
measures the API's latency, and waits until every task is reported running.

Prints tasks_per_sec (first submission to the last task reported running),
start latency p50/p99 (each task's job submission to its RUNNING report),
the API trickle's p99, the server process's peak RSS and CPU seconds, and
the load average. Then checks every task runs exactly once, on the node the
server says, within the node's capacity; a failed check is an error.`,
		Example: `  fathom bench cluster --nodes 1000 --tasks 20000 -o json
  fathom bench cluster --nodes 5000 --tasks 100000 --cpu-profile server.cpu --heap-profile server.heap`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Nodes < 1 || o.Tasks < 1 || o.JobsOf < 1 || o.JobsOf > 10000 {
				return cli.UsageErrorf("--nodes and --tasks must be at least 1, --jobs-of in 1..10000")
			}
			if o.APIRate <= 0 {
				return cli.UsageErrorf("--api-rate must be positive, e.g. 20")
			}
			raiseFileLimit()
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			if binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				binary = exe
			}
			dir := dataDir
			if dir == "" {
				d, err := os.MkdirTemp("", "fathom-bench-cluster-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			if !quiet {
				o.Progress = func(s string) { fmt.Fprintf(g.Stderr, "bench cluster: %s: %s\n", time.Now().Format("15:04:05"), s) }
			}
			var args []string
			if cpuProfile != "" {
				args = append(args, "--cpu-profile", cpuProfile)
			}
			if heapProfile != "" {
				args = append(args, "--heap-profile", heapProfile)
			}
			child, err := clusterbench.StartChild(ctx, binary, dir, args...)
			if err != nil {
				return err
			}
			o.Server = child.Server
			res, runErr := clusterbench.Run(ctx, o)
			if err := child.Stop(); err != nil && runErr == nil {
				runErr = fmt.Errorf("server: %w (see %s)", err, child.Log)
			}
			if runErr != nil && res.TasksRunning == 0 {
				return runErr
			}
			err = g.Print(res, func(w io.Writer) {
				fmt.Fprintf(w, "cluster\t%d hollow nodes (%.0f cores, %d GiB each), %d tasks in %d jobs of at most %d\n", res.Nodes, res.NodeCPUCores, res.NodeMemoryBytes>>30, res.Tasks, res.Jobs, res.JobsOf)
				fmt.Fprintf(w, "tasks/s\t%.0f (%d running after %.1f s; submissions took %.1f s, POST p99 %.0f ms)\n", res.TasksPerSec, res.TasksRunning, res.Seconds, res.SubmitSeconds, res.SubmitP99Ms)
				fmt.Fprintf(w, "start latency\tp50 %.2f s, p99 %.2f s, max %.2f s\n", res.StartLatencyP50, res.StartLatencyP99, res.StartLatencyMax)
				fmt.Fprintf(w, "API latency\tp50 %.1f ms, p99 %.1f ms, max %.1f ms (%d calls, %d errors)\n", res.APILatencyP50Ms, res.APILatencyP99Ms, res.APILatencyMaxMs, res.APICalls, res.APIErrors)
				fmt.Fprintf(w, "server RSS\tpeak %.0f MiB, end %.0f MiB\n", float64(res.ServerRSSPeakBytes)/(1<<20), float64(res.ServerRSSEndBytes)/(1<<20))
				fmt.Fprintf(w, "CPU seconds\tserver %.1f, hollow nodes and clients %.1f\n", res.ServerCPUSeconds, res.BenchCPUSeconds)
				fmt.Fprintf(w, "load average\t%.1f %.1f %.1f (%.1f at the start; %d CPUs)\n", res.LoadAverage[0], res.LoadAverage[1], res.LoadAverage[2], res.LoadAverageStart, res.CPUs)
				fmt.Fprintf(w, "check\t%d duplicates, %d misplaced, %d nodes over capacity; %d nodes used\n", res.Duplicates, res.Misplaced, res.Overcommitted, res.NodesUsed)
			})
			if runErr != nil {
				return runErr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Nodes, "nodes", 1000, "hollow nodes")
	f.IntVar(&o.Tasks, "tasks", 20000, "tasks to submit")
	f.IntVar(&o.JobsOf, "jobs-of", 10000, "replicas per job (at most 10,000)")
	f.Float64Var(&o.NodeCPU, "node-cpu", 8, "cores each hollow node offers")
	f.Int64Var(&o.NodeMemory, "node-memory", 32<<30, "bytes each hollow node offers")
	f.StringVar(&o.TaskCPU, "task-cpu", "", `the jobs' CPU hint, e.g. 100m (default: unsized, as people submit)`)
	f.StringVar(&o.TaskMemory, "task-memory", "", `the jobs' memory hint, e.g. 128Mi (default: unsized)`)
	f.Float64Var(&o.APIRate, "api-rate", 20, "API calls a second during the run (GET a job, GET a job list, GET a node, POST a one-replica job, in turn)")
	f.DurationVar(&o.Timeout, "timeout", 15*time.Minute, "give up when not every task runs by then")
	f.StringVar(&dataDir, "data-dir", "", "the server's data dir (default: a temporary directory, removed afterwards)")
	f.StringVar(&binary, "server-binary", "", "the fathom binary to run as the server (default: this one)")
	f.StringVar(&cpuProfile, "cpu-profile", "", "write the server's CPU profile over its whole life to this file (go tool pprof)")
	f.StringVar(&heapProfile, "heap-profile", "", "write the server's heap profile, taken as it stops (after the run), to this file")
	f.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	return cmd
}

// raiseFileLimit lifts the soft limit on open files to the hard one: every
// hollow node holds a connection (the server child inherits the limit).
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
