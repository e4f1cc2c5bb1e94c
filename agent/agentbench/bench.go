// Package agentbench measures what the node agent itself costs: it starts
// `fathom agent` as a separate process with N long-running tasks from an
// assignments file, lets it sample every second and push by remote write to
// a local receiver, and reads the agent's CPU time and resident memory from
// /proc. `fathom bench agent` and scripts/bench.d/30-agent.sh run it.
package agentbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure a run.
type Options struct {
	Binary         string        // the fathom binary to run as `fathom agent`
	Tasks          int           // running tasks (sleep processes); default 100
	Duration       time.Duration // measurement window; default 60s
	Warmup         time.Duration // after all tasks run, before measuring; default 15s
	SampleInterval time.Duration // default 1s
	PushInterval   time.Duration // default 10s
	Progress       func(string)  // optional
}

// Result is what a run measured. Figures come from /proc/<agent pid>.
type Result struct {
	Tasks                 int     `json:"tasks"`
	Seconds               float64 `json:"seconds"`
	SampleIntervalSeconds float64 `json:"sample_interval_s"`
	PushIntervalSeconds   float64 `json:"push_interval_s"`
	Enforcement           string  `json:"enforcement"`
	// AgentBinary is what the agent process was running while measured
	// (/proc/<pid>/exe): fathom-agent when `fathom agent` exec'd the slim
	// binary, fathom itself when it ran in-process.
	AgentBinary            string  `json:"agent_binary"`
	CPUPercentOfOneCore    float64 `json:"agent_cpu_percent_of_one_core"`
	RSSMiB                 float64 `json:"agent_rss_mib"`
	RSSPeakMiB             float64 `json:"agent_rss_peak_mib"`
	RSSAnonMiB             float64 `json:"agent_rss_anon_mib"`
	RSSFileMiB             float64 `json:"agent_rss_file_mib"`
	PSSMiB                 float64 `json:"agent_pss_mib"`           // proportional set size (smaps_rollup)
	GoHeapInuseMiB         float64 `json:"agent_go_heap_inuse_mib"` // go_memstats_heap_inuse_bytes
	GoSysMiB               float64 `json:"agent_go_sys_mib"`        // go_memstats_sys_bytes: all the runtime obtained
	RemoteWriteRequests    int64   `json:"remote_write_requests"`
	RemoteWriteSamplesSent float64 `json:"remote_write_samples_sent"`
	RemoteWriteDropped     float64 `json:"remote_write_samples_dropped"`
	GoalCPUPercent         float64 `json:"goal_cpu_percent_max"`
	GoalRSSMiB             float64 `json:"goal_rss_mib_max"`
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Run performs one measurement.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Tasks <= 0 {
		o.Tasks = 100
	}
	if o.Duration <= 0 {
		o.Duration = time.Minute
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	} else if o.Warmup == 0 {
		o.Warmup = 15 * time.Second
	}
	if o.SampleInterval <= 0 {
		o.SampleInterval = time.Second
	}
	if o.PushInterval <= 0 {
		o.PushInterval = 10 * time.Second
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	dir, err := os.MkdirTemp("", "fathom-bench-agent-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)

	var b strings.Builder
	b.WriteString("{\"assignments\": [\n")
	for i := 0; i < o.Tasks; i++ {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `{"task_id": "bench-%d", "job_id": "bench", "namespace": "bench", "job_name": "sleeper", "task_index": %d, "command": ["sleep", "100000"], "job_type": "service", "priority": "batch", "memory_limit_bytes": 67108864, "cpu_limit_cores": 0.5, "generation": 1}`, i, i)
	}
	b.WriteString("]}\n")
	assignments := filepath.Join(dir, "assignments.json")
	if err := os.WriteFile(assignments, []byte(b.String()), 0o644); err != nil {
		return Result{}, err
	}

	// A remote-write receiver that accepts everything, like a healthy store.
	var requests atomic.Int64
	rwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, err
	}
	rw := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		requests.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = rw.Serve(rwLn) }()
	defer rw.Close()

	httpAddr, err := freePort()
	if err != nil {
		return Result{}, err
	}
	parent := fmt.Sprintf("fathom-bench-%d", os.Getpid())
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return Result{}, err
	}
	defer logf.Close()
	cmd := exec.Command(o.Binary, "agent", "--assignments", assignments, "--name", "bench", "--data-dir", filepath.Join(dir, "data"),
		"--metrics-addr", httpAddr, "--cgroup-parent", parent, "--grace-period", "2s", "--stop-tasks-on-exit", "--log-level", "warn",
		"--remote-write-url", "http://"+rwLn.Addr().String()+"/api/v1/write",
		"--sample-interval", o.SampleInterval.String(), "--push-interval", o.PushInterval.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("starting %s agent: %w", o.Binary, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		removeCgroupDirs(parent)
	}()

	progress(fmt.Sprintf("agent pid %d starting %d tasks", pid, o.Tasks))
	deadline := time.Now().Add(2 * time.Minute)
	for {
		m, _ := scrape("http://" + httpAddr + "/metrics")
		if m["fathom_agent_tasks_running"] == float64(o.Tasks) {
			break
		}
		select {
		case <-exited:
			tail, _ := os.ReadFile(logf.Name())
			return Result{}, fmt.Errorf("agent exited early:\n%s", tail)
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return Result{}, fmt.Errorf("agent did not get %d tasks running within 2 minutes (saw %v)", o.Tasks, m["fathom_agent_tasks_running"])
		}
	}
	progress(fmt.Sprintf("%d tasks running; warming up %s, then measuring %s", o.Tasks, o.Warmup, o.Duration))
	if err := sleep(ctx, o.Warmup); err != nil {
		return Result{}, err
	}
	t0, err := cpuTicks(pid)
	if err != nil {
		return Result{}, err
	}
	s0 := time.Now()
	if err := sleep(ctx, o.Duration); err != nil {
		return Result{}, err
	}
	t1, err := cpuTicks(pid)
	if err != nil {
		return Result{}, err
	}
	secs := time.Since(s0).Seconds()
	st, err := procStatus(pid)
	if err != nil {
		return Result{}, err
	}
	rollup, _ := procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	m, _ := scrape("http://" + httpAddr + "/metrics")
	const hz = 100 // USER_HZ
	r := Result{
		Tasks: o.Tasks, Seconds: secs, SampleIntervalSeconds: o.SampleInterval.Seconds(), PushIntervalSeconds: o.PushInterval.Seconds(),
		Enforcement: str(m["enforcement"]), AgentBinary: exe,
		PSSMiB: rollup["Pss"] / 1024, GoHeapInuseMiB: num(m["go_memstats_heap_inuse_bytes"]) / (1 << 20),
		GoSysMiB:            num(m["go_memstats_sys_bytes"]) / (1 << 20),
		CPUPercentOfOneCore: float64(t1-t0) / hz / secs * 100,
		RSSMiB:              st["VmRSS"] / 1024, RSSPeakMiB: st["VmHWM"] / 1024, RSSAnonMiB: st["RssAnon"] / 1024, RSSFileMiB: st["RssFile"] / 1024,
		RemoteWriteRequests: requests.Load(), RemoteWriteSamplesSent: num(m["fathom_agent_remote_write_samples_total"]),
		RemoteWriteDropped: num(m["fathom_agent_remote_write_dropped_samples_total"]),
		GoalCPUPercent:     1, GoalRSSMiB: 40,
	}
	return r, nil
}

func num(v any) float64 { f, _ := v.(float64); return f }

func str(v any) string { s, _ := v.(string); return s }

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// scrape reads the un-labelled value of each metric family's first sample,
// and the enforcement label of fathom_node_enforcement_info as "enforcement".
func scrape(url string) (map[string]any, error) {
	out := map[string]any{}
	resp, err := http.Get(url)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			if strings.HasPrefix(name, "fathom_node_enforcement_info{") {
				if _, after, ok := strings.Cut(name, `enforcement="`); ok {
					out["enforcement"] = strings.SplitN(after, `"`, 2)[0]
				}
			}
			name = name[:i]
		}
		if _, seen := out[name]; seen {
			continue
		}
		if v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st, nil
}

// procStatus returns the kB fields of /proc/<pid>/status.
func procStatus(pid int) (map[string]float64, error) {
	return procKB(fmt.Sprintf("/proc/%d/status", pid))
}

// procKB returns the "Key: N kB" fields of a /proc file.
func procKB(path string) (map[string]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			n, _ := strconv.ParseFloat(f[0], 64)
			out[k] = n
		}
	}
	return out, nil
}

// removeCgroupDirs removes the bench's (empty) parent cgroup in every
// hierarchy it was created in.
func removeCgroupDirs(parent string) {
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == parent {
			_ = os.Remove(p)
			return filepath.SkipDir
		}
		if strings.Count(p, "/") > 7 {
			return filepath.SkipDir
		}
		return nil
	})
}

// MarshalJSON keeps figures rounded for people reading the JSON.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	round := func(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
	r.Seconds, r.CPUPercentOfOneCore = round(r.Seconds), round(r.CPUPercentOfOneCore)
	r.RSSMiB, r.RSSPeakMiB, r.RSSAnonMiB, r.RSSFileMiB = round(r.RSSMiB), round(r.RSSPeakMiB), round(r.RSSAnonMiB), round(r.RSSFileMiB)
	r.PSSMiB, r.GoHeapInuseMiB, r.GoSysMiB = round(r.PSSMiB), round(r.GoHeapInuseMiB), round(r.GoSysMiB)
	return json.Marshal(plain(r))
}
