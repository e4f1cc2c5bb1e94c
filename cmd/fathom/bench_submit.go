package main

// fathom bench submit: job submissions per second over REST on loopback,
// acknowledged only after the embedded etcd committed them, with p50/p99
// latency.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/internal/cli"
)

func init() { addBenchCommand(newBenchSubmitCmd) }

type benchSubmitResult struct {
	Jobs              int     `json:"jobs"`
	Concurrency       int     `json:"concurrency"`
	Errors            int64   `json:"errors"`
	Seconds           float64 `json:"seconds"`
	SubmissionsPerSec float64 `json:"submissions_per_sec"`
	LatencyP50Ms      float64 `json:"latency_p50_ms"`
	LatencyP99Ms      float64 `json:"latency_p99_ms"`
	LatencyMaxMs      float64 `json:"latency_max_ms"`
	Server            string  `json:"server"`
	EmbeddedEtcd      bool    `json:"embedded_etcd"`
	// StoredJobs is what GET /v1/jobs lists afterwards (embedded server only).
	StoredJobs int `json:"stored_jobs,omitempty"`
	// CPUSeconds this process (clients and, when embedded, server and etcd)
	// used while timing, and the machine's 1-minute load average at the end:
	// wall-clock figures on a busy machine include waiting for a core.
	CPUSeconds           float64 `json:"cpu_seconds"`
	SubmissionsPerCPUSec float64 `json:"submissions_per_cpu_sec"`
	LoadAverage1m        float64 `json:"load_average_1m"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func submitLoadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}

func newBenchSubmitCmd(g *cli.Globals) *cobra.Command {
	var jobs, conc, warmup int
	var dataDir, cpuProfile string
	cmd := &cobra.Command{
		Use:   "submit",
		Short: "Measure job submissions per second over REST (acknowledged = committed to etcd)",
		Long: `Submits --jobs jobs (no resources, like a person would) with --concurrency
clients over REST and prints submissions per second and p50/p99 latency.

Unless --server is given, it starts its own control plane in-process on a
loopback port with an embedded etcd in a temporary directory (fsync on, as in
production), and afterwards checks that GET /v1/jobs lists every job.`,
		Example: `  fathom bench submit
  fathom bench submit --jobs 50000 --concurrency 128 -o json
  fathom bench submit --server http://10.0.0.1:7070`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobs < 1 || conc < 1 || warmup < 0 {
				return cli.UsageErrorf("--jobs and --concurrency must be at least 1, --warmup at least 0")
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			res := benchSubmitResult{Jobs: jobs, Concurrency: conc}
			base := g.ServerURL()
			var done chan error
			if !cmd.Flags().Changed("server") {
				dir := dataDir
				if dir == "" {
					d, err := os.MkdirTemp("", "fathom-bench-submit-")
					if err != nil {
						return err
					}
					defer os.RemoveAll(d)
					dir = d
				}
				ready := make(chan string, 1)
				done = make(chan error, 1)
				cfg := serverConfig{
					DataDir: dir, HTTPAddr: "127.0.0.1:0", NoMetricsStore: true, HeartbeatTimeout: 10 * time.Second,
					Log:   slog.New(slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
					Ready: func(h, _ string) { ready <- "http://" + dialable(h) },
				}
				go func() { done <- runServer(ctx, cfg) }()
				select {
				case base = <-ready:
				case err := <-done:
					return fmt.Errorf("bench server: %w", err)
				}
				res.EmbeddedEtcd = true
			}
			res.Server = base
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}, Timeout: 30 * time.Second}
			run := func(prefix string, n int) ([]time.Duration, int64, time.Duration) {
				lat := make([]time.Duration, n)
				var next, errs atomic.Int64
				var firstErr sync.Once
				var wg sync.WaitGroup
				start := time.Now()
				for range conc {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := int(next.Add(1)) - 1
							if i >= n || ctx.Err() != nil {
								return
							}
							body := fmt.Appendf(nil, `{"name":"%s-%d","namespace":"bench","type":"batch","task":{"command":["sleep","3600"]}}`, prefix, i)
							t0 := time.Now()
							resp, err := client.Post(base+"/v1/jobs", "application/json", bytes.NewReader(body))
							if err == nil {
								data, _ := io.ReadAll(resp.Body)
								resp.Body.Close()
								if resp.StatusCode != 200 {
									err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, data)
								}
							}
							lat[i] = time.Since(t0)
							if err != nil {
								errs.Add(1)
								firstErr.Do(func() { fmt.Fprintln(g.Stderr, "bench submit: first error:", err) })
							}
						}
					}()
				}
				wg.Wait()
				return lat, errs.Load(), time.Since(start)
			}
			prefix := fmt.Sprintf("b%d", time.Now().UnixNano()%1e9)
			if warmup > 0 {
				run(prefix+"-w", warmup)
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
			}
			cpu0 := cpuSeconds()
			lat, errs, elapsed := run(prefix, jobs)
			if cpuProfile != "" {
				pprof.StopCPUProfile()
			}
			res.CPUSeconds = cpuSeconds() - cpu0
			if res.CPUSeconds > 0 {
				res.SubmissionsPerCPUSec = float64(jobs) / res.CPUSeconds
			}
			res.LoadAverage1m = submitLoadAverage()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			res.Errors = errs
			res.Seconds = elapsed.Seconds()
			res.SubmissionsPerSec = float64(jobs) / elapsed.Seconds()
			res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = q(0.50), q(0.99), q(1)
			if res.EmbeddedEtcd {
				list := &fathomv1.ListJobsResponse{}
				c := &apiClient{base: base, http: &http.Client{Timeout: 60 * time.Second}}
				if err := c.call(ctx, "GET", "/v1/jobs", map[string][]string{"namespace": {"bench"}}, "", nil, list); err != nil {
					return err
				}
				res.StoredJobs = len(list.GetJobs())
				cancel()
				if err := <-done; err != nil && ctx.Err() == nil {
					return err
				}
			}
			err := g.Print(res, func(w io.Writer) {
				fmt.Fprintf(w, "jobs\t%d (concurrency %d, warm-up %d, errors %d)\n", res.Jobs, res.Concurrency, warmup, res.Errors)
				fmt.Fprintf(w, "server\t%s (embedded etcd: %v)\n", res.Server, res.EmbeddedEtcd)
				fmt.Fprintf(w, "submissions/s\t%.0f\n", res.SubmissionsPerSec)
				fmt.Fprintf(w, "latency p50\t%.2f ms\n", res.LatencyP50Ms)
				fmt.Fprintf(w, "latency p99\t%.2f ms\n", res.LatencyP99Ms)
				fmt.Fprintf(w, "latency max\t%.2f ms\n", res.LatencyMaxMs)
				fmt.Fprintf(w, "cpu seconds\t%.1f (%.0f submissions per CPU-second)\n", res.CPUSeconds, res.SubmissionsPerCPUSec)
				fmt.Fprintf(w, "load average\t%.1f (1 min)\n", res.LoadAverage1m)
				if res.EmbeddedEtcd {
					fmt.Fprintf(w, "stored jobs\t%d (warm-up included)\n", res.StoredJobs)
				}
			})
			if err == nil && res.Errors > 0 {
				return fmt.Errorf("%d submissions failed", res.Errors)
			}
			return err
		},
	}
	cmd.Flags().IntVar(&jobs, "jobs", 20000, "submissions to time")
	cmd.Flags().IntVar(&conc, "concurrency", 64, "concurrent REST clients")
	cmd.Flags().IntVar(&warmup, "warmup", 500, "untimed submissions first")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data dir of the in-process server (default: a temporary directory, removed afterwards)")
	cmd.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the timed part (clients and, when embedded, the server) to this file (go tool pprof)")
	return cmd
}
