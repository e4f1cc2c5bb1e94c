package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/metrics/dashboards"
	"github.com/fathom-scheduler/fathom/metrics/synth"
)

// Options of Run. Zero values take the defaults in brackets.
type Options struct {
	Dir string // scratch directory for the TSDBs [a temp dir, removed]

	// Ingest: IngestTasks tasks on IngestNodes agents, each pushing every 10 s
	// the 1 s samples of its tasks, for IngestMinutes, with IngestClients
	// concurrent pushers.
	IngestTasks, IngestNodes, IngestMinutes, IngestClients int // [1000, 50, 5, 8]

	// Query: QueryTasks tasks of one job with QueryHours of history at
	// QueryResolution; each panel of the Job right-sizing dashboard is
	// refreshed QueryRuns times over the whole range with step QueryStep.
	QueryTasks, QueryHours, QueryRuns int           // [1000, 24, 10]
	QueryResolution, QueryStep        time.Duration // [30 s, 1 m]

	Seed uint64
	// Progress, if set, receives one line per phase.
	Progress func(string)
}

// Result holds the figures. Durations are in milliseconds.
type Result struct {
	IngestSamples        int     `json:"ingest_samples"`
	IngestRequests       int     `json:"ingest_requests"`
	IngestSeconds        float64 `json:"ingest_seconds"`
	IngestSamplesPerSec  float64 `json:"ingest_samples_per_sec"`
	IngestRequestsPerSec float64 `json:"ingest_requests_per_sec"`
	// IngestCPUSeconds is this process's CPU time (user+system) during the
	// pushes — client and store together; on a shared machine wall time
	// alone overstates the cost.
	IngestCPUSeconds   float64 `json:"ingest_cpu_seconds"`
	QueryCPUSeconds    float64 `json:"query_cpu_seconds"`
	QueryTasks         int     `json:"query_tasks"`
	QueryHours         int     `json:"query_hours"`
	QuerySamplesStored int     `json:"query_samples_stored"`
	QueryFillSeconds   float64 `json:"query_fill_seconds"`
	// QueryRecordedSamples are the per-task recording rules' samples written
	// during the fill (the rule expressions evaluated over the fresh data at
	// the group's 5 m interval, as the rule manager would have), and
	// QueryRulesSeconds the part of the fill spent evaluating them.
	QueryRecordedSamples int     `json:"query_recorded_samples"`
	QueryRulesSeconds    float64 `json:"query_rules_seconds"`
	QueryCompactSeconds  float64 `json:"query_compact_seconds"`
	QueryStepSeconds     float64 `json:"query_step_seconds"`
	// QueryPanelStepSeconds is the step the time-series panels asked for:
	// QueryStep raised to the panels' minimum interval, as Grafana does.
	QueryPanelStepSeconds float64 `json:"query_panel_step_seconds"`
	QueryTopTasks         string  `json:"query_top_tasks"`
	Panels                []Panel `json:"panels"`
	RightSizingP50Ms      float64 `json:"rightsizing_panel_latency_p50_ms"`
	RightSizingP99Ms      float64 `json:"rightsizing_panel_latency_p99_ms"`
	RightSizingSlowest    string  `json:"rightsizing_slowest_panel"`
	RightSizingQueryCount int     `json:"rightsizing_queries_per_refresh"`
	// RightSizingVariableQueries are the ranking variables' queries run at the
	// start of each refresh, RightSizingVariablesMs how long they took.
	RightSizingVariableQueries int       `json:"rightsizing_variable_queries_per_refresh"`
	RightSizingVariablesMs     []float64 `json:"rightsizing_variables_ms"`
}

// Panel is the refresh latency of one panel (its queries run concurrently,
// as Grafana runs a panel's targets).
type Panel struct {
	Title   string  `json:"title"`
	Queries int     `json:"queries"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	Series  int     `json:"series"`
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.IngestTasks, 1000)
	def(&o.IngestNodes, 50)
	def(&o.IngestMinutes, 5)
	def(&o.IngestClients, 8)
	def(&o.QueryTasks, 1000)
	def(&o.QueryHours, 24)
	def(&o.QueryRuns, 10)
	if o.QueryResolution <= 0 {
		o.QueryResolution = 30 * time.Second
	}
	if o.QueryStep <= 0 {
		o.QueryStep = time.Minute
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
}

// Run runs both measurements.
func Run(ctx context.Context, o Options) (Result, error) {
	o.defaults()
	var r Result
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "fathom-bench-metrics-")
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if err := ingest(ctx, o, dir+"/ingest", &r); err != nil {
		return r, fmt.Errorf("ingest: %w", err)
	}
	if err := queries(ctx, o, dir+"/query", &r); err != nil {
		return r, fmt.Errorf("queries: %w", err)
	}
	return r, nil
}

// serve opens a store in dir and serves its API on a loopback port.
func serve(dir string) (*metrics.Store, string, func(), error) {
	s, err := metrics.OpenStore(metrics.StoreOptions{Dir: dir, NoRecordingRules: true})
	if err != nil {
		return nil, "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		return nil, "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", s.Handler())
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	return s, "http://" + l.Addr().String(), func() { srv.Close(); s.Close() }, nil
}

func ingest(ctx context.Context, o Options, dir string, r *Result) error {
	s, base, stop, err := serve(dir)
	if err != nil {
		return err
	}
	defer stop()
	_ = s
	// Pre-encode every push (one per node per 10 s) so that the timing is the
	// store's: HTTP, snappy, protobuf decoding, TSDB append and WAL.
	end := time.Now().Truncate(time.Second)
	start := end.Add(-time.Duration(o.IngestMinutes) * time.Minute)
	o.Progress(fmt.Sprintf("ingest: encoding %d min of %d tasks on %d nodes at 1 s", o.IngestMinutes, o.IngestTasks, o.IngestNodes))
	var rounds [][][]byte // per 10 s round, one body per node
	err = synth.Walk(synth.Cluster{Namespace: "bench", JobName: "ingest", Tasks: o.IngestTasks, Nodes: o.IngestNodes,
		Start: start, End: end.Add(-time.Second), Step: time.Second, Seed: o.Seed}, 10, func(batch []metrics.Series) error {
		byNode := map[string][]metrics.Series{}
		for _, s := range batch {
			byNode[s.Labels[metrics.LabelNode]] = append(byNode[s.Labels[metrics.LabelNode]], s)
			r.IngestSamples += len(s.Samples)
		}
		var bodies [][]byte
		for _, ss := range byNode {
			b, err := metrics.EncodeWriteRequest(ss)
			if err != nil {
				return err
			}
			bodies = append(bodies, b)
		}
		rounds = append(rounds, bodies)
		return nil
	})
	if err != nil {
		return err
	}
	o.Progress(fmt.Sprintf("ingest: pushing %d samples with %d clients", r.IngestSamples, o.IngestClients))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.IngestClients}}
	c0 := cpuTime()
	t0 := time.Now()
	for _, bodies := range rounds {
		// Agents push concurrently; a round completes before the next 10 s.
		work := make(chan []byte)
		errs := make(chan error, o.IngestClients)
		var wg sync.WaitGroup
		for i := 0; i < o.IngestClients; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range work {
					if err := metrics.PushWrite(ctx, client, base+"/api/v1/write", b); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		var firstErr error
	feed:
		for _, b := range bodies {
			select {
			case work <- b:
			case firstErr = <-errs:
				break feed
			}
		}
		close(work)
		wg.Wait()
		if firstErr == nil && len(errs) > 0 {
			firstErr = <-errs
		}
		if firstErr != nil {
			return firstErr
		}
		r.IngestRequests += len(bodies)
	}
	d := time.Since(t0)
	r.IngestCPUSeconds = (cpuTime() - c0).Seconds()
	r.IngestSeconds = d.Seconds()
	r.IngestSamplesPerSec = float64(r.IngestSamples) / d.Seconds()
	r.IngestRequestsPerSec = float64(r.IngestRequests) / d.Seconds()
	o.Progress(fmt.Sprintf("ingest: %.0f samples/s (%d samples, %d requests in %.1f s)", r.IngestSamplesPerSec, r.IngestSamples, r.IngestRequests, d.Seconds()))
	return nil
}

func queries(ctx context.Context, o Options, dir string, r *Result) error {
	s, base, stop, err := serve(dir)
	if err != nil {
		return err
	}
	defer stop()
	r.QueryTasks, r.QueryHours = o.QueryTasks, o.QueryHours
	end := time.Now().Truncate(time.Minute)
	start := end.Add(-time.Duration(o.QueryHours) * time.Hour)
	o.Progress(fmt.Sprintf("query: filling %d h of %d tasks at %s", o.QueryHours, o.QueryTasks, o.QueryResolution))
	s.DB().DisableCompactions()
	t0 := time.Now()
	// In time order, 30 min at a time, so that every sample is in the head's
	// appendable window; in-process appends, as the fill is not what is measured.
	// After each slice the per-task recording rules (group fathom-task, what
	// the dashboard reads) are evaluated over it at their 5 m interval, as the
	// store's rule manager would have evaluated them while the data arrived: the
	// state of a store that has run the rules all day.
	evaluated := start
	var rulesTime time.Duration
	err = synth.Walk(synth.Cluster{Namespace: "bench", JobName: "big", Tasks: o.QueryTasks, Nodes: 50,
		Start: start, End: end, Step: o.QueryResolution, Seed: o.Seed, Recommendations: true}, int(30*time.Minute/o.QueryResolution), func(batch []metrics.Series) error {
		if err := appendParallel(ctx, s, batch, &r.QuerySamplesStored); err != nil {
			return err
		}
		var newest int64
		for _, b := range batch {
			if n := len(b.Samples); n > 0 && b.Samples[n-1].TimestampMs > newest {
				newest = b.Samples[n-1].TimestampMs
			}
		}
		rt := time.Now()
		n, err := s.EvaluateRecordingRules(ctx, evaluated, time.UnixMilli(newest), "fathom-task")
		rulesTime += time.Since(rt)
		r.QueryRecordedSamples += n
		// The next call starts after the last evaluation time (EvaluateRecordingRules
		// aligns to the group's own interval).
		evaluated = time.UnixMilli(newest)
		return err
	})
	r.QueryRulesSeconds = rulesTime.Seconds()
	if err != nil {
		return err
	}
	r.QueryFillSeconds = time.Since(t0).Seconds()
	o.Progress(fmt.Sprintf("query: filled %d samples and %d recorded by the rules in %.1f s (%.1f s of it evaluating the rules)", r.QuerySamplesStored, r.QueryRecordedSamples, r.QueryFillSeconds, r.QueryRulesSeconds))
	// A store that has run for a day holds most of it in compacted blocks.
	o.Progress(fmt.Sprintf("query: compacting %d samples into blocks", r.QuerySamplesStored))
	t0 = time.Now()
	s.DB().EnableCompactions()
	if err := s.DB().Compact(ctx); err != nil {
		return err
	}
	r.QueryCompactSeconds = time.Since(t0).Seconds()

	ds, err := dashboards.All()
	if err != nil {
		return err
	}
	var rs dashboards.Dashboard
	for _, d := range ds {
		if d.File == "job-rightsizing.json" {
			rs = d
		}
	}
	b, err := rs.JSON()
	if err != nil {
		return err
	}
	_, qs, dvars, err := dashboards.Parse(b)
	if err != nil {
		return err
	}
	c, err := api.NewClient(api.Config{Address: base})
	if err != nil {
		return err
	}
	p := promv1.NewAPI(c)
	// Grafana's $__rate_interval: max(step + scrape interval, 4 × scrape interval).
	// The variables as the dashboard opens on the job: every node and task
	// (All), the default number of tasks drawn ($top); the hidden ranking
	// variables are resolved at each refresh (they are re-run when the time
	// range moves, and their queries are part of what a refresh costs).
	fixed := map[string][]string{"namespace": {"bench"}, "job_name": {"big"}, "node": {".*"}, "task": {".*"}}
	for _, v := range dvars {
		if v.Name == "top" {
			r.QueryTopTasks = strings.Join(v.Current, ",")
		}
		if v.Type == "query" {
			if _, ok := dashboards.QueryResultQuery(v.Query); ok {
				r.RightSizingVariableQueries++
			}
		}
	}
	type benchQuery struct {
		tmpl    string
		instant bool
		step    time.Duration
	}
	byPanel := map[string][]benchQuery{}
	var order []string
	for _, q := range qs {
		if _, ok := byPanel[q.Panel]; !ok {
			order = append(order, q.Panel)
		}
		// Grafana's step: the auto interval for the range (QueryStep) raised to
		// the panel's minimum interval; $__interval is that step.
		step := o.QueryStep
		if q.MinInterval != "" {
			mi, err := model.ParseDuration(q.MinInterval)
			if err != nil {
				return fmt.Errorf("panel %q: min interval %q: %w", q.Panel, q.MinInterval, err)
			}
			step = max(step, time.Duration(mi))
		}
		if !q.Instant {
			r.QueryPanelStepSeconds = max(r.QueryPanelStepSeconds, step.Seconds())
		}
		byPanel[q.Panel] = append(byPanel[q.Panel], benchQuery{tmpl: q.Expr, instant: q.Instant, step: step})
		r.RightSizingQueryCount++
	}
	r.QueryStepSeconds = o.QueryStep.Seconds()
	var refresh []time.Duration // whole-dashboard refreshes
	c0 := cpuTime()
	defer func() { r.QueryCPUSeconds = (cpuTime() - c0).Seconds() }()
	panelLat := map[string][]time.Duration{}
	panelSeries := map[string]int{}
	o.Progress(fmt.Sprintf("query: %d refreshes of %d panels (%d queries) over %d h, step %s (panels with a minimum interval: %s), top %s tasks, %d ranking variables", o.QueryRuns, len(order), r.RightSizingQueryCount, o.QueryHours, o.QueryStep, time.Duration(r.QueryPanelStepSeconds)*time.Second, r.QueryTopTasks, r.RightSizingVariableQueries))
	for run := 0; run < o.QueryRuns; run++ {
		t0 := time.Now()
		vars, err := dashboards.Resolve(ctx, p, dvars, fixed, start, end)
		if err != nil {
			return err
		}
		r.RightSizingVariablesMs = append(r.RightSizingVariablesMs, ms(time.Since(t0)))
		for _, title := range order {
			pt := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, len(byPanel[title]))
			series := make([]int, len(byPanel[title]))
			for i, q := range byPanel[title] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// $__rate_interval: max(step + scrape interval, 4 × scrape interval).
					rateInterval := max(q.step+o.QueryResolution, 4*o.QueryResolution)
					expr := dashboards.Substitute(q.tmpl, vars, promDuration(rateInterval), promDuration(q.step), promDuration(end.Sub(start)))
					var v model.Value
					var err error
					if q.instant { // tables: one evaluation at the range's end
						v, _, _, err = p.Query(ctx, expr, end)
					} else {
						v, _, _, err = p.QueryRange(ctx, expr, promv1.Range{Start: start, End: end, Step: q.step})
					}
					if err != nil {
						errs[i] = fmt.Errorf("%s: %w", expr, err)
						return
					}
					switch m := v.(type) {
					case model.Matrix:
						series[i] = m.Len()
					case model.Vector:
						series[i] = m.Len()
					}
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return err
			}
			panelLat[title] = append(panelLat[title], time.Since(pt))
			n := 0
			for _, x := range series {
				n += x
			}
			panelSeries[title] = n
		}
		refresh = append(refresh, time.Since(t0))
		o.Progress(fmt.Sprintf("query: refresh %d/%d took %s", run+1, o.QueryRuns, time.Since(t0).Round(time.Millisecond)))
	}
	worst := 0.0
	for _, title := range order {
		l := panelLat[title]
		pn := Panel{Title: title, Queries: len(byPanel[title]), P50Ms: ms(quantile(l, 0.5)), P99Ms: ms(quantile(l, 0.99)), Series: panelSeries[title]}
		r.Panels = append(r.Panels, pn)
		if pn.P99Ms > worst {
			worst, r.RightSizingSlowest = pn.P99Ms, title
		}
	}
	r.RightSizingP50Ms = ms(quantile(refresh, 0.5))
	r.RightSizingP99Ms = ms(quantile(refresh, 0.99))
	return nil
}

// appendParallel appends batch with one appender per CPU-sized shard.
func appendParallel(ctx context.Context, s *metrics.Store, batch []metrics.Series, count *int) error {
	const shards = 4
	var wg sync.WaitGroup
	errs := make([]error, shards)
	for i := 0; i < shards; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			app := s.Appender(ctx)
			var part []metrics.Series
			for j := i; j < len(batch); j += shards {
				part = append(part, batch[j])
			}
			if err := metrics.AppendSeries(app, part); err != nil {
				_ = app.Rollback()
				errs[i] = err
				return
			}
			errs[i] = app.Commit()
		}()
	}
	wg.Wait()
	for _, b := range batch {
		*count += len(b.Samples)
	}
	return errors.Join(errs...)
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	// Nearest rank: with 20 runs, p99 is the slowest.
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// promDuration formats d in PromQL duration syntax (e.g. 75s, 24h).
func promDuration(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
