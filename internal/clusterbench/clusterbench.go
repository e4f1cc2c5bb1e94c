// Package clusterbench measures the whole control plane end to end: one
// real server (its own process for `fathom bench cluster`, so its memory
// and CPU can be read from /proc) with the embedded etcd writing with fsync,
// N hollow nodes in this process speaking the real agent protocol over real
// gRPC (agent.RunHollow: register, heartbeat, stream assignments, report
// RUNNING; no processes), and M tasks submitted over REST as jobs of at
// most 10,000 replicas, one after another, while a steady trickle of GET and
// POST calls measures the API's latency. When every task is reported
// running it checks the outcome — every task running exactly once, on the
// node the server says, within that node's capacity — and returns the
// figures. `fathom bench cluster` prints them; the package's test runs a
// small cluster through the same code as a correctness check.
package clusterbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fathom-scheduler/fathom/agent"
	"github.com/fathom-scheduler/fathom/controller"
)

// Server is the control plane under test.
type Server struct {
	// HTTP is the REST base URL (http://127.0.0.1:7070); GRPC the agents'
	// gRPC address (127.0.0.1:7071).
	HTTP, GRPC string
	// PID is the server's process, whose RSS and CPU time are measured; 0
	// when it runs inside this process (the figures are then left out).
	PID int
}

// Options configure a run.
type Options struct {
	Server Server
	// Nodes hollow nodes, Tasks tasks in jobs of at most JobsOf replicas
	// (default and most: 10,000, the API's limit).
	Nodes, Tasks, JobsOf int
	// NodeCPU cores and NodeMemory bytes each hollow node offers; default
	// 8 cores and 32 GiB.
	NodeCPU    float64
	NodeMemory int64
	// TaskCPU and TaskMemory are the jobs' resource hints ("100m",
	// "128Mi"); empty = unsized, as people submit (Fathom sizes them).
	TaskCPU, TaskMemory string
	// APIRate is the trickle of API calls per second during the run
	// (default 20): GET a job, GET the job list of a namespace, GET a node,
	// POST a one-replica job.
	APIRate float64
	// Timeout bounds the wait for every task to run; default 10 minutes.
	Timeout time.Duration
	// Progress, if set, is told what is happening.
	Progress func(string)
}

// Result is what a run measured. The figures are the contract.
type Result struct {
	Nodes  int `json:"nodes"`
	Tasks  int `json:"tasks"`
	Jobs   int `json:"jobs"`
	JobsOf int `json:"jobs_of"`
	// Seconds from the first submission to the last task reported running
	// (acknowledged by the server); TasksPerSec is Tasks over it.
	Seconds      float64 `json:"seconds"`
	TasksPerSec  float64 `json:"tasks_per_sec"`
	TasksRunning int     `json:"tasks_running"`
	// Each task's job submission (the POST sent) to its RUNNING report
	// acknowledged.
	StartLatencyP50 float64 `json:"start_latency_p50_s"`
	StartLatencyP99 float64 `json:"start_latency_p99_s"`
	StartLatencyMax float64 `json:"start_latency_max_s"`
	// SubmitSeconds is how long the submissions took (their POSTs
	// acknowledged), SubmitP99Ms the slowest percentile of those POSTs.
	SubmitSeconds float64 `json:"submit_seconds"`
	SubmitP99Ms   float64 `json:"submit_p99_ms"`
	// The API trickle during the run.
	APICalls        int     `json:"api_calls"`
	APIErrors       int     `json:"api_errors"`
	APILatencyP50Ms float64 `json:"api_latency_p50_ms"`
	APILatencyP99Ms float64 `json:"api_latency_p99_ms"`
	APILatencyMaxMs float64 `json:"api_latency_max_ms"`
	// The server process (0 when it ran in-process): peak resident memory
	// over its life (VmHWM), resident memory at the end, and CPU seconds
	// (user + system) from the first submission to the last running report.
	ServerRSSPeakBytes int64   `json:"server_rss_peak_bytes,omitempty"`
	ServerRSSEndBytes  int64   `json:"server_rss_end_bytes,omitempty"`
	ServerCPUSeconds   float64 `json:"server_cpu_seconds,omitempty"`
	// TasksPerServerCPUSec is Tasks over ServerCPUSeconds: the figure a
	// busy machine does not distort.
	TasksPerServerCPUSec float64 `json:"tasks_per_server_cpu_sec,omitempty"`
	// BenchCPUSeconds: this process (the hollow nodes and the clients).
	BenchCPUSeconds float64 `json:"bench_cpu_seconds"`
	// The machine's load average at the end (1, 5 and 15 minutes) and at
	// the start: wall-clock figures on a shared machine include waiting
	// for a core.
	LoadAverage      [3]float64 `json:"load_average"`
	LoadAverageStart float64    `json:"load_average_start_1m"`
	CPUs             int        `json:"cpus"`
	// The check: tasks reported running by more than one node, tasks the
	// server does not show running where they were reported, and nodes
	// whose tasks' requests exceed their capacity (all must be 0).
	Duplicates      int     `json:"duplicates"`
	Misplaced       int     `json:"misplaced"`
	Overcommitted   int     `json:"overcommitted_nodes"`
	NodesUsed       int     `json:"nodes_used"`
	Checked         bool    `json:"checked"`
	NodeCPUCores    float64 `json:"node_cpu_cores"`
	NodeMemoryBytes int64   `json:"node_memory_bytes"`
}

// The jobs of the load and of the API probe: the namespaces are also the
// jobs' name prefixes, and neither is a prefix of the other.
const benchNamespace, probeNamespace = "load", "probe"

func (o *Options) defaults() error {
	if o.JobsOf <= 0 {
		o.JobsOf = 10000
	}
	if o.NodeCPU <= 0 {
		o.NodeCPU = 8
	}
	if o.NodeMemory <= 0 {
		o.NodeMemory = 32 << 30
	}
	if o.APIRate <= 0 {
		o.APIRate = 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	switch {
	case o.Nodes < 1 || o.Tasks < 1:
		return errors.New("--nodes and --tasks must be at least 1")
	case o.JobsOf > 10000:
		return fmt.Errorf("--jobs-of %d: a job has at most 10,000 replicas", o.JobsOf)
	case o.Server.HTTP == "" || o.Server.GRPC == "":
		return errors.New("clusterbench: Options.Server needs the HTTP and gRPC addresses")
	}
	return nil
}

// running records the acknowledged RUNNING reports.
type running struct {
	mu    sync.Mutex
	first map[string]report // task id -> first acknowledged RUNNING report
	dups  map[string]bool   // tasks reported running by a second node
	bench atomic.Int64      // distinct bench tasks reported running
	all   chan struct{}     // closed when bench reaches want
	want  int64
}

type report struct {
	node string
	at   time.Time
}

func (r *running) add(node string, ss []agent.TaskStatus, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range ss {
		if s.State != agent.StateRunning {
			continue
		}
		prev, seen := r.first[s.TaskID]
		if seen {
			if prev.node != node {
				r.dups[s.TaskID] = true
			}
			continue
		}
		r.first[s.TaskID] = report{node: node, at: at}
		if strings.HasPrefix(s.TaskID, benchNamespace+"-") && r.bench.Add(1) == r.want {
			close(r.all)
		}
	}
}

// recordingPlane is the real gRPC control plane with the acknowledged
// RUNNING reports recorded.
type recordingPlane struct {
	*agent.GRPCControlPlane
	node string
	r    *running
}

func (p recordingPlane) ReportTaskStatus(ctx context.Context, nodeID string, ss []agent.TaskStatus) error {
	if err := p.GRPCControlPlane.ReportTaskStatus(ctx, nodeID, ss); err != nil {
		return err
	}
	p.r.add(p.node, ss, time.Now())
	return nil
}

// Run performs one measurement.
func Run(ctx context.Context, o Options) (Result, error) {
	if err := o.defaults(); err != nil {
		return Result{}, err
	}
	res := Result{Nodes: o.Nodes, Tasks: o.Tasks, JobsOf: o.JobsOf, CPUs: runtime.NumCPU(), NodeCPUCores: o.NodeCPU, NodeMemoryBytes: o.NodeMemory}
	res.LoadAverageStart = loadAverage()[0]
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 60 * time.Second}
	api := &client{base: strings.TrimRight(o.Server.HTTP, "/"), http: hc}

	// The hollow nodes.
	rec := &running{first: map[string]report{}, dups: map[string]bool{}, all: make(chan struct{}), want: int64(o.Tasks)}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	names := make([]string, o.Nodes)
	for i := range o.Nodes {
		names[i] = fmt.Sprintf("hollow-%05d", i)
		g, err := agent.DialControlPlane(o.Server.GRPC)
		if err != nil {
			return res, err
		}
		cp := recordingPlane{GRPCControlPlane: g, node: names[i], r: rec}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer g.Close()
			agent.RunHollow(ctx, agent.HollowConfig{ControlPlane: cp,
				Node: agent.NodeInfo{Name: names[i], CPUCores: o.NodeCPU, MemoryBytes: o.NodeMemory, AgentAddress: "127.0.0.1:1"}})
		}()
	}
	o.Progress(fmt.Sprintf("%d hollow nodes started; waiting for them to register", o.Nodes))
	if err := waitNodes(ctx, api, o.Nodes, 5*time.Minute); err != nil {
		return res, err
	}
	o.Progress(fmt.Sprintf("%d nodes up; submitting %d tasks in jobs of %d", o.Nodes, o.Tasks, o.JobsOf))

	cpu0, _ := procCPU(o.Server.PID)
	bench0 := procSelfCPU()
	start := time.Now()

	// The API trickle, until every task runs.
	probe := newProbe(api, o.APIRate, names)
	pctx, pstop := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { defer pwg.Done(); probe.run(pctx) }()

	// The submissions, one after another.
	submitted := map[string]time.Time{} // job id -> POST sent
	var jobIDs []string
	var submitLat []time.Duration
	var err error
	for left, n := o.Tasks, 0; left > 0; n++ {
		k := min(left, o.JobsOf)
		left -= k
		t0 := time.Now()
		var id string
		id, err = api.createJob(ctx, jobBody(fmt.Sprintf("%s-%d", benchNamespace, n), benchNamespace, k, o.TaskCPU, o.TaskMemory))
		if err != nil {
			break
		}
		submitLat = append(submitLat, time.Since(t0))
		submitted[id] = t0
		jobIDs = append(jobIDs, id)
	}
	res.Jobs = len(jobIDs)
	res.SubmitSeconds = time.Since(start).Seconds()
	if err != nil {
		pstop()
		return res, fmt.Errorf("submit: %w", err)
	}
	o.Progress(fmt.Sprintf("%d jobs submitted in %.1f s; waiting for every task to run", len(jobIDs), res.SubmitSeconds))
	timeout := time.NewTimer(o.Timeout)
	defer timeout.Stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-rec.all:
			break wait
		case <-ctx.Done():
			pstop()
			return res, ctx.Err()
		case <-timeout.C:
			pstop()
			return res, fmt.Errorf("after %s only %d of %d tasks were reported running", o.Timeout, rec.bench.Load(), o.Tasks)
		case <-tick.C:
			o.Progress(fmt.Sprintf("%d of %d tasks running after %.0f s", rec.bench.Load(), o.Tasks, time.Since(start).Seconds()))
		}
	}
	pstop()
	pwg.Wait()

	// The figures.
	rec.mu.Lock()
	var last time.Time
	lat := make([]time.Duration, 0, o.Tasks)
	for id, r := range rec.first {
		job, _, ok := controller.SplitTaskID(id)
		t0, bench := submitted[job]
		if !ok || !bench {
			continue
		}
		lat = append(lat, r.at.Sub(t0))
		if r.at.After(last) {
			last = r.at
		}
	}
	res.Duplicates = len(rec.dups)
	rec.mu.Unlock()
	res.TasksRunning = len(lat)
	res.Seconds = last.Sub(start).Seconds()
	res.TasksPerSec = float64(res.TasksRunning) / res.Seconds
	res.StartLatencyP50, res.StartLatencyP99, res.StartLatencyMax = seconds(quantile(lat, 0.5)), seconds(quantile(lat, 0.99)), seconds(quantile(lat, 1))
	res.SubmitP99Ms = ms(quantile(submitLat, 0.99))
	if cpu1, ok := procCPU(o.Server.PID); ok {
		res.ServerCPUSeconds = cpu1 - cpu0
		if res.ServerCPUSeconds > 0 {
			res.TasksPerServerCPUSec = float64(res.TasksRunning) / res.ServerCPUSeconds
		}
	}
	res.BenchCPUSeconds = procSelfCPU() - bench0
	if o.Server.PID != 0 {
		res.ServerRSSPeakBytes, res.ServerRSSEndBytes = procRSS(o.Server.PID)
	}
	pl := probe.latencies()
	res.APICalls, res.APIErrors = len(pl), int(probe.errs.Load())
	res.APILatencyP50Ms, res.APILatencyP99Ms, res.APILatencyMaxMs = ms(quantile(pl, 0.5)), ms(quantile(pl, 0.99)), ms(quantile(pl, 1))
	res.LoadAverage = loadAverage()

	o.Progress("checking every task against the server")
	if err := check(ctx, api, jobIDs, rec, o, &res); err != nil {
		return res, fmt.Errorf("check: %w", err)
	}
	if res.Duplicates+res.Misplaced+res.Overcommitted > 0 {
		return res, fmt.Errorf("check failed: %d tasks running on two nodes, %d not running where reported, %d nodes over capacity",
			res.Duplicates, res.Misplaced, res.Overcommitted)
	}
	if res.APIErrors > 0 {
		return res, fmt.Errorf("%d of %d API calls failed (first: %v)", res.APIErrors, res.APICalls, probe.firstErr.Load())
	}
	return res, nil
}

// check compares what the hollow nodes run with what the server says: each
// bench task running, on the node that reported it, and each node's tasks'
// requests within its capacity.
func check(ctx context.Context, api *client, jobIDs []string, rec *running, o Options, res *Result) error {
	type load struct {
		cpu float64
		mem int64
	}
	used := map[string]*load{}
	add := func(t apiTask) {
		l := used[t.Node]
		if l == nil {
			l = &load{}
			used[t.Node] = l
		}
		l.cpu += t.CPURequest
		l.mem += int64(t.MemoryRequest)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, id := range jobIDs {
		ts, err := api.tasks(ctx, id)
		if err != nil {
			return err
		}
		for _, t := range ts {
			r, ok := rec.first[t.ID]
			if t.State != "TASK_STATE_RUNNING" || !ok || r.node != t.Node {
				res.Misplaced++
				continue
			}
			add(t)
		}
	}
	// The probe's one-replica jobs share the nodes: count what they hold.
	var probes struct {
		Jobs []struct {
			ID string `json:"id"`
		} `json:"jobs"`
	}
	if err := api.get(ctx, "/v1/jobs?namespace="+probeNamespace, &probes); err != nil {
		return err
	}
	for _, j := range probes.Jobs {
		ts, err := api.tasks(ctx, j.ID)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if t.Node != "" && (t.State == "TASK_STATE_RUNNING" || t.State == "TASK_STATE_PLACED") {
				add(t)
			}
		}
	}
	nodes, err := api.nodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if n.CPURequested > n.CPUCores+1e-9 || n.MemoryRequested > n.MemoryBytes {
			res.Overcommitted++
		}
		if l := used[n.Name]; l != nil && (l.cpu > n.CPUCores+1e-9 || l.mem > int64(n.MemoryBytes)) {
			res.Overcommitted++
		}
	}
	res.NodesUsed = len(used)
	res.Checked = true
	return nil
}

func jobBody(name, ns string, replicas int, cpu, mem string) []byte {
	spec := map[string]any{"name": name, "namespace": ns, "type": "service", "replicas": replicas,
		"task": map[string]any{"command": []string{"sleep", "infinity"}}}
	if cpu != "" || mem != "" {
		r := map[string]string{}
		if cpu != "" {
			r["cpu"] = cpu
		}
		if mem != "" {
			r["memory"] = mem
		}
		spec["task"].(map[string]any)["resources"] = r
	}
	b, _ := json.Marshal(spec)
	return b
}

func waitNodes(ctx context.Context, api *client, want int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ns, err := api.nodes(ctx)
		up := 0
		for _, n := range ns {
			if n.State == "NODE_STATE_UP" {
				up++
			}
		}
		if err == nil && up >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d nodes up after %s (last error: %v)", up, want, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// probe is the steady trickle of API calls.
type probe struct {
	api      *client
	every    time.Duration
	nodes    []string
	mu       sync.Mutex
	lat      []time.Duration
	errs     atomic.Int64
	firstErr atomic.Value
	jobs     []string // probe jobs created, to GET
}

func newProbe(api *client, rate float64, nodes []string) *probe {
	return &probe{api: api, every: time.Duration(float64(time.Second) / rate), nodes: nodes}
}

func (p *probe) run(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			p.fail(errors.New("64 API calls outstanding"))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			err := p.call(ctx, i)
			if ctx.Err() != nil {
				return // cut short by the end of the run
			}
			p.mu.Lock()
			p.lat = append(p.lat, time.Since(t0))
			p.mu.Unlock()
			if err != nil {
				p.fail(err)
			}
		}()
	}
}

func (p *probe) fail(err error) {
	p.errs.Add(1)
	p.firstErr.CompareAndSwap(nil, err.Error())
}

func (p *probe) call(ctx context.Context, i int) error {
	switch i % 4 {
	case 0:
		id, err := p.api.createJob(ctx, jobBody(fmt.Sprintf("%s-%d", probeNamespace, i), probeNamespace, 1, "", ""))
		if err == nil {
			p.mu.Lock()
			p.jobs = append(p.jobs, id)
			p.mu.Unlock()
		}
		return err
	case 1:
		p.mu.Lock()
		var id string
		if len(p.jobs) > 0 {
			id = p.jobs[len(p.jobs)-1]
		}
		p.mu.Unlock()
		if id == "" {
			return p.api.get(ctx, "/v1/jobs?namespace="+probeNamespace, nil)
		}
		return p.api.get(ctx, "/v1/jobs/"+id, nil)
	case 2:
		return p.api.get(ctx, "/v1/jobs?namespace="+benchNamespace, nil)
	default:
		return p.api.get(ctx, "/v1/nodes/"+p.nodes[(i/4)%len(p.nodes)], nil)
	}
}

func (p *probe) latencies() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lat)
}

// client is a small REST client.
type client struct {
	base string
	http *http.Client
}

func (c *client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

func (c *client) createJob(ctx context.Context, body []byte) (string, error) {
	var r struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/jobs", body, &r); err != nil {
		return "", err
	}
	return r.ID, nil
}

// apiTask and apiNode are the fields of the REST answers the check reads.
type apiTask struct {
	ID            string  `json:"id"`
	State         string  `json:"state"`
	Node          string  `json:"node"`
	CPURequest    float64 `json:"cpuRequestCores"`
	MemoryRequest numStr  `json:"memoryRequestBytes"`
}

type apiNode struct {
	Name            string  `json:"name"`
	State           string  `json:"state"`
	CPUCores        float64 `json:"cpuCores"`
	MemoryBytes     numStr  `json:"memoryBytes"`
	CPURequested    float64 `json:"cpuRequestedCores"`
	MemoryRequested numStr  `json:"memoryRequestedBytes"`
}

// numStr reads an int64, which protojson writes as a string.
type numStr int64

func (n *numStr) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	*n = numStr(v)
	return err
}

func (c *client) tasks(ctx context.Context, jobID string) ([]apiTask, error) {
	var out []apiTask
	token := ""
	for {
		var r struct {
			Tasks         []apiTask `json:"tasks"`
			NextPageToken string    `json:"nextPageToken"`
		}
		q := url.Values{"page_size": {"5000"}}
		if token != "" {
			q.Set("page_token", token)
		}
		if err := c.get(ctx, "/v1/jobs/"+jobID+"/tasks?"+q.Encode(), &r); err != nil {
			return nil, err
		}
		out = append(out, r.Tasks...)
		if r.NextPageToken == "" {
			return out, nil
		}
		token = r.NextPageToken
	}
}

func (c *client) nodes(ctx context.Context) ([]apiNode, error) {
	var out []apiNode
	token := ""
	for {
		var r struct {
			Nodes         []apiNode `json:"nodes"`
			NextPageToken string    `json:"nextPageToken"`
		}
		q := url.Values{"page_size": {"5000"}}
		if token != "" {
			q.Set("page_token", token)
		}
		if err := c.get(ctx, "/v1/nodes?"+q.Encode(), &r); err != nil {
			return nil, err
		}
		out = append(out, r.Nodes...)
		if r.NextPageToken == "" {
			return out, nil
		}
		token = r.NextPageToken
	}
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }
func ms(d time.Duration) float64      { return float64(d.Microseconds()) / 1000 }
