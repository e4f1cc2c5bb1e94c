package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"
)

// DefaultRetention is how long the embedded store keeps samples when
// StoreOptions.Retention is zero. It matches Prometheus's own default.
const DefaultRetention = 15 * 24 * time.Hour

// DefaultRuleInterval evaluates rule groups that give no interval of their own.
const DefaultRuleInterval = 30 * time.Second

// DefaultLookbackDelta is PromQL's staleness window, as in Prometheus.
const DefaultLookbackDelta = 5 * time.Minute

// StoreOptions configure OpenStore.
type StoreOptions struct {
	// Dir holds the TSDB (WAL and blocks). Required. It is created if missing.
	Dir string
	// Retention is how long samples are kept; zero means DefaultRetention.
	Retention time.Duration
	// Registerer receives the store's own metrics (prometheus_tsdb_*,
	// prometheus_engine_*, prometheus_remote_storage_*). Nil means none are
	// registered.
	Registerer prometheus.Registerer
	// Gatherer backs /api/v1/status/self_metrics. Nil means Registerer when it
	// is also a Gatherer (a *prometheus.Registry is), else an empty registry.
	Gatherer prometheus.Gatherer
	// Logger; nil discards.
	Logger *slog.Logger
	// OutOfOrderWindow accepts samples up to this far behind the newest one of
	// their series, so that an agent retrying a failed push is not rejected.
	// Zero means 10 minutes; negative disables out-of-order ingestion.
	OutOfOrderWindow time.Duration
	// QueryTimeout bounds one PromQL evaluation; zero means 2 minutes.
	QueryTimeout time.Duration
	// MaxSamples bounds the samples one query may load; zero means 50 million
	// (Prometheus's default).
	MaxSamples int
	// RuleFiles are extra Prometheus rule files (YAML) evaluated against the
	// store; recording rules write their results back into it. Fathom's own
	// RecordingRules are always loaded unless NoRecordingRules is set.
	RuleFiles        []string
	NoRecordingRules bool
	// RuleInterval, when non-zero, is the evaluation interval of every group
	// of Fathom's RecordingRules (replacing the file's: 30 s for the node and
	// namespace groups, 5 m for the per-task group) and of RuleFiles' groups
	// that give none. Zero keeps the file's intervals, and 30 s for RuleFiles.
	// Tests and demos set a few seconds so recorded series appear at once.
	RuleInterval time.Duration
}

// Store is an embedded Prometheus-compatible metrics store: a Prometheus TSDB
// on disk, the PromQL engine, the Prometheus HTTP API (web/api/v1) including
// the remote-write receiver, and optionally a recording-rule manager. It is
// safe for concurrent use.
type Store struct {
	db      *tsdb.DB
	engine  *promql.Engine
	api     *apiv1.API
	router  *route.Router
	rules   *rules.Manager
	opts    StoreOptions
	logger  *slog.Logger
	started time.Time

	closeOnce sync.Once
	closeErr  error
	cancel    context.CancelFunc
}

// ErrBadOptions is wrapped by OpenStore errors caused by its options.
var ErrBadOptions = errors.New("bad metrics store options")

// OpenStore opens (or creates) the TSDB in opts.Dir and returns a Store ready
// to ingest and answer queries. Close it when done.
func OpenStore(opts StoreOptions) (*Store, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("%w: Dir is empty; give a directory for the TSDB (e.g. <data-dir>/metrics)", ErrBadOptions)
	}
	if opts.Retention < 0 {
		return nil, fmt.Errorf("%w: Retention %s is negative; use 0 for the default %s", ErrBadOptions, opts.Retention, DefaultRetention)
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.OutOfOrderWindow == 0 {
		opts.OutOfOrderWindow = 10 * time.Minute
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 2 * time.Minute
	}
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 50_000_000
	}
	if opts.RuleInterval < 0 {
		return nil, fmt.Errorf("%w: RuleInterval %s is negative; use 0 for the rule file's intervals", ErrBadOptions, opts.RuleInterval)
	}
	defaultRuleInterval := opts.RuleInterval
	if defaultRuleInterval == 0 {
		defaultRuleInterval = DefaultRuleInterval
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("metrics store: create %s: %w", opts.Dir, err)
	}

	to := tsdb.DefaultOptions()
	to.RetentionDuration = opts.Retention.Milliseconds()
	if opts.OutOfOrderWindow > 0 {
		to.OutOfOrderTimeWindow = opts.OutOfOrderWindow.Milliseconds()
	}
	to.EnableExemplarStorage = true
	to.MaxExemplars = 10000
	// Blocks no longer than a tenth of the retention, as Prometheus does.
	if max := opts.Retention / 10; max > 2*time.Hour {
		to.MaxBlockDuration = max.Milliseconds()
		if to.MaxBlockDuration > (31 * 24 * time.Hour).Milliseconds() {
			to.MaxBlockDuration = (31 * 24 * time.Hour).Milliseconds()
		}
	}
	db, err := tsdb.Open(opts.Dir, logger.With("component", "tsdb"), opts.Registerer, to, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics store: open TSDB in %s: %w", opts.Dir, err)
	}

	engine := promql.NewEngine(promql.EngineOpts{
		Logger:               logger.With("component", "promql"),
		Reg:                  opts.Registerer,
		MaxSamples:           opts.MaxSamples,
		Timeout:              opts.QueryTimeout,
		LookbackDelta:        DefaultLookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})

	s := &Store{db: db, engine: engine, opts: opts, logger: logger, started: time.Now()}

	gatherer := opts.Gatherer
	if gatherer == nil {
		if g, ok := opts.Registerer.(prometheus.Gatherer); ok {
			gatherer = g
		} else {
			gatherer = prometheus.NewRegistry()
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	ruleFiles := opts.RuleFiles
	if !opts.NoRecordingRules {
		// Written outside the TSDB directory's own files, so that the TSDB does
		// not mistake it for a block.
		p, err := writeRules(filepath.Join(opts.Dir, "rules"), opts.RuleInterval)
		if err != nil {
			cancel()
			db.Close()
			return nil, err
		}
		ruleFiles = append([]string{p}, ruleFiles...)
	}
	if len(ruleFiles) > 0 {
		s.rules = rules.NewManager(&rules.ManagerOptions{
			AppendableV2: db,
			Queryable:    db,
			QueryFunc:    rules.EngineQueryFunc(engine, db),
			Context:      ctx,
			Logger:       logger.With("component", "rules"),
			Registerer:   opts.Registerer,
			NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		})
		if err := s.rules.Update(defaultRuleInterval, ruleFiles, labels.EmptyLabels(), "", nil); err != nil {
			cancel()
			db.Close()
			return nil, fmt.Errorf("%w: rule files %v: %w", ErrBadOptions, ruleFiles, err)
		}
		go s.rules.Run()
	}

	flags := map[string]string{
		"storage.tsdb.path":                opts.Dir,
		"storage.tsdb.retention.time":      opts.Retention.String(),
		"web.enable-remote-write-receiver": "true",
		"query.timeout":                    opts.QueryTimeout.String(),
		"query.max-samples":                fmt.Sprint(opts.MaxSamples),
		"query.lookback-delta":             DefaultLookbackDelta.String(),
	}
	host, _ := os.Hostname()
	s.api = apiv1.NewAPI(
		engine,
		db,
		db, // remote-write appender (AppendableV2)
		db, // exemplars
		func(context.Context) apiv1.ScrapePoolsRetriever { return noScrape{} },
		func(context.Context) apiv1.TargetRetriever { return noScrape{} },
		func(context.Context) apiv1.AlertmanagerRetriever { return noScrape{} },
		func() config.Config { return config.DefaultConfig },
		flags,
		apiv1.GlobalURLOptions{},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		adminStats{db},
		opts.Dir,
		false, // admin APIs (delete series, snapshot) stay off
		false, // search API
		0,
		logger.With("component", "api"),
		func(context.Context) apiv1.RulesRetriever { return s.rulesRetriever() },
		0, 0, 0, // remote read: defaults
		false, // not an agent
		nil,   // CORS: same origin only
		func() (apiv1.RuntimeInfo, error) {
			cwd, _ := os.Getwd()
			return apiv1.RuntimeInfo{
				StartTime:           s.started,
				CWD:                 cwd,
				Hostname:            host,
				ServerTime:          time.Now().UTC(),
				ReloadConfigSuccess: true,
				LastConfigTime:      s.started,
				GoroutineCount:      runtime.NumGoroutine(),
				GOMAXPROCS:          runtime.GOMAXPROCS(0),
				GOGC:                os.Getenv("GOGC"),
				GODEBUG:             os.Getenv("GODEBUG"),
				StorageRetention:    opts.Retention.String(),
			}, nil
		},
		BuildInfo(),
		nil, nil, // notifications
		gatherer,
		opts.Registerer,
		nil,  // default stats renderer
		true, // remote-write receiver on
		remoteapi.MessageTypes{remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType},
		false, false, false, // OTLP off
		DefaultLookbackDelta,
		false, // type and unit labels
		false, // append metadata
		nil,   // error codes as Prometheus
		nil,   // feature registry
		apiv1.OpenAPIOptions{},
		parser.NewParser(parser.Options{}),
		false, // query cost
		opts.QueryTimeout,
	)
	s.router = route.New()
	s.api.Register(s.router.WithPrefix("/api/v1"))
	return s, nil
}

// Handler serves the Prometheus HTTP API at paths starting with /api/v1/
// (query, query_range, series, labels, label/NAME/values, metadata,
// status/buildinfo, format_query, parse_query, query_exemplars, write, read,
// rules, …). Mount it as mux.Handle("/api/v1/", store.Handler()).
func (s *Store) Handler() http.Handler { return s.router }

// Queryable is the store for in-process reads (e.g. a storage.Querier).
func (s *Store) Queryable() storage.SampleAndChunkQueryable { return s.db }

// Appender returns an appender for in-process writes; Commit or Rollback it.
func (s *Store) Appender(ctx context.Context) storage.Appender { return s.db.Appender(ctx) }

// Engine is the PromQL engine the HTTP API uses.
func (s *Store) Engine() *promql.Engine { return s.engine }

// Query evaluates expr at ts in-process, as /api/v1/query would.
func (s *Store) Query(ctx context.Context, expr string, ts time.Time) (parser.Value, error) {
	q, err := s.engine.NewInstantQuery(ctx, s.db, nil, expr, ts)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Value, nil
}

// QueryRange evaluates expr over [start, end] every step in-process.
func (s *Store) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (parser.Value, error) {
	q, err := s.engine.NewRangeQuery(ctx, s.db, nil, expr, start, end, step)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Value, nil
}

// DB exposes the underlying TSDB (for compaction in benchmarks and tests).
func (s *Store) DB() *tsdb.DB { return s.db }

// Close stops rule evaluation and closes the TSDB. It is safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.rules != nil {
			s.rules.Stop()
		}
		s.cancel()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

func (s *Store) rulesRetriever() apiv1.RulesRetriever {
	if s.rules == nil {
		return noScrape{}
	}
	return s.rules
}

// BuildInfo is what /api/v1/status/buildinfo reports: the Prometheus version
// whose libraries this binary embeds (module v0.3XX.Y is Prometheus 3.XX.Y), so
// that Grafana enables the features that version has.
func BuildInfo() *apiv1.PrometheusVersion {
	v := &apiv1.PrometheusVersion{Version: "3.0.0", Revision: "fathom-embedded", Branch: "fathom", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	for _, d := range bi.Deps {
		if d.Path != "github.com/prometheus/prometheus" {
			continue
		}
		// v0.316.0 -> 3.16.0
		var minor, patch int
		if _, err := fmt.Sscanf(strings.TrimPrefix(d.Version, "v0."), "3%d.%d", &minor, &patch); err == nil {
			v.Version = fmt.Sprintf("3.%d.%d", minor, patch)
		}
	}
	return v
}

// noScrape stands in for the parts of a Prometheus server the store does not
// have: it scrapes no targets, and talks to no Alertmanager.
type noScrape struct{}

func (noScrape) ScrapePools() []string                       { return nil }
func (noScrape) TargetsActive() map[string][]*scrape.Target  { return nil }
func (noScrape) TargetsDropped() map[string][]*scrape.Target { return nil }
func (noScrape) TargetsDroppedCounts() map[string]int        { return nil }
func (noScrape) Alertmanagers() []*url.URL                   { return nil }
func (noScrape) DroppedAlertmanagers() []*url.URL            { return nil }
func (noScrape) RuleGroups() []*rules.Group                  { return nil }
func (noScrape) AlertingRules() []*rules.AlertingRule        { return nil }
func (noScrape) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("the embedded Fathom store scrapes nothing; agents push by remote write")
}

// adminStats adapts *tsdb.DB to the API's TSDBAdminStats (status/tsdb).
type adminStats struct{ db *tsdb.DB }

func (a adminStats) CleanTombstones() error { return a.db.CleanTombstones() }
func (a adminStats) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	return a.db.Delete(ctx, mint, maxt, ms...)
}
func (a adminStats) Snapshot(dir string, withHead bool) error { return a.db.Snapshot(dir, withHead) }
func (a adminStats) Stats(name string, limit int) (*tsdb.Stats, error) {
	return a.db.Head().Stats(name, limit), nil
}
func (a adminStats) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, nil
}
func (a adminStats) BlockMetas() ([]tsdb.BlockMeta, error) { return a.db.BlockMetas(), nil }
