package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/spf13/pflag"

	fathomv1 "github.com/fathom-scheduler/fathom/api/gen/fathom/v1"
	"github.com/fathom-scheduler/fathom/internal/cli"
	"github.com/fathom-scheduler/fathom/metrics"
	"github.com/fathom-scheduler/fathom/models"
	"github.com/fathom-scheduler/fathom/predictor"
	"github.com/fathom-scheduler/fathom/predictor/promhistory"
	"github.com/fathom-scheduler/fathom/server"
)

// sizingConfig holds the scheduling and right-sizing flags of `fathom
// server` and `fathom dev`.
type sizingConfig struct {
	OverloadRisk     float64
	NoRightSizing    bool
	Interval         time.Duration
	Window           time.Duration
	Deadband         float64
	MinResizeInteval time.Duration
	Kind             string
	Budget           models.ViolationBudget
	bound            bool // bind was called (bench submit does not)
}

func (c *sizingConfig) bind(f *pflag.FlagSet) {
	c.bound = true
	f.Float64Var(&c.OverloadRisk, "overload-risk", 0.001, "ε: the largest accepted probability that a node's summed usage exceeds its capacity when packing on predicted sizes")
	f.BoolVar(&c.NoRightSizing, "no-rightsizing", false, "turn off the right-sizing loop (tasks keep their hints or cold-start sizes)")
	f.DurationVar(&c.Interval, "rightsizing-interval", 30*time.Second, "how often running tasks' usage is learned and their limits reconsidered")
	f.DurationVar(&c.Window, "usage-window", models.WindowSeconds*time.Second, "width of the usage windows the predictor learns from (shorter only for tests and demos; at least 3s; agents are told to push every third of it)")
	f.Float64Var(&c.Deadband, "resize-deadband", 0.10, "relative change of a recommendation below which a task's request and limit are left as they are (growth beyond half of it is applied at once)")
	f.DurationVar(&c.MinResizeInteval, "resize-min-interval", 15*time.Minute, "least time after a task was placed or resized before its request or limit is lowered (increases go through at once)")
	f.StringVar(&c.Kind, "recommender", "fathom", "recommender every task gets: "+joinKinds())
	bindViolationBudget(f, &c.Budget)
}

// minUsageWindow is the shortest usage window: three of the agents' default
// 1-s samples. The server tells every agent to push at least every third of
// the window (RegisterNodeResponse.max_push_interval_seconds), so a window
// always spans several pushes whatever the agent's --push-interval.
const minUsageWindow = 3 * time.Second

func joinKinds() string {
	s := ""
	for i, k := range models.Kinds {
		if i > 0 {
			s += ", "
		}
		s += k
	}
	return s
}

func (c *sizingConfig) validate() error {
	if !(c.OverloadRisk > 0 && c.OverloadRisk < 0.5) {
		return cli.UsageErrorf("--overload-risk %v must be in (0, 0.5), e.g. 0.001", c.OverloadRisk)
	}
	if c.Interval < 100*time.Millisecond {
		return cli.UsageErrorf("--rightsizing-interval %s is too short; use at least 100ms", c.Interval)
	}
	if c.Window < minUsageWindow {
		return cli.UsageErrorf("--usage-window %s is too short: agents sample usage every second and push every third of the window, so a window under %s holds too few samples to fill; use at least %s (production: 5m)", c.Window, minUsageWindow, minUsageWindow)
	}
	if c.Deadband < 0 || c.Deadband >= 1 {
		return cli.UsageErrorf("--resize-deadband %v must be in [0, 1)", c.Deadband)
	}
	if c.MinResizeInteval < 0 {
		return cli.UsageErrorf("--resize-min-interval must not be negative")
	}
	if _, err := models.New(c.Kind); err != nil {
		return cli.UsageErrorf("--recommender: %v", err)
	}
	return nil
}

// apply sets the server options: the scheduler's ε and, unless turned off,
// a RightSizer reading history from the embedded store (ms) or from the
// Prometheus at promURL.
func (c *sizingConfig) apply(o *server.Options, ms *metrics.Store, promURL string, log *slog.Logger) error {
	if !c.bound {
		return nil // defaults: scheduler.Place with ε = 0.001, no right-sizing
	}
	if err := c.validate(); err != nil {
		return err
	}
	o.Controller.Placement.OverloadRisk = c.OverloadRisk
	o.Controller.Sizing.Deadband, o.Controller.Sizing.ShrinkDelay = c.Deadband, c.MinResizeInteval
	if c.NoRightSizing {
		return nil
	}
	var q promhistory.Querier
	switch {
	case promURL != "":
		client, err := api.NewClient(api.Config{Address: promURL})
		if err != nil {
			return cli.UsageErrorf("--prometheus-url %q: %v", promURL, err)
		}
		q = promhistory.API{API: promv1.NewAPI(client)}
	case ms != nil:
		q = promhistory.Store{Store: ms}
	default:
		return nil // no metrics store: nothing to learn from
	}
	rs, err := server.NewRightSizer(server.RightSizingOptions{
		History:  promhistory.NewQuerier(q, promhistory.Options{UsePeak: true, Window: c.Window}),
		Interval: c.Interval, Kind: c.Kind, Logger: log,
		Predictor: predictor.Config{Budget: c.Budget},
	})
	if err != nil {
		return err
	}
	o.RightSizer = rs
	return nil
}

// jobRecommendations fetches GET /v1/recommendations?job=ID for `fathom job
// status` and adds them to out["recommendations"]. A server without the
// predictor (or any error) yields none: status still prints.
func jobRecommendations(ctx context.Context, c *apiClient, jobID string, out map[string]any) *fathomv1.ListRecommendationsResponse {
	recs := &fathomv1.ListRecommendationsResponse{}
	if err := c.call(ctx, "GET", "/v1/recommendations", url.Values{"job": {jobID}}, "", nil, recs); err != nil {
		return nil
	}
	if v, err := marshalOut(recs); err == nil {
		out["recommendations"] = v.(map[string]any)["recommendations"]
	}
	return recs
}

// printRecommendations prints usage, current sizes, the recommendation and
// why, one line per task and resource.
func printRecommendations(w io.Writer, recs *fathomv1.ListRecommendationsResponse) {
	if recs == nil || len(recs.GetRecommendations()) == 0 {
		return
	}
	fmt.Fprintln(w, "\nTASK\tRESOURCE\tUSAGE\tREQUEST/LIMIT\tRECOMMENDED REQ/LIM\tMODEL\tCONFIDENCE\tWHY\tLAST DECISION")
	for _, r := range recs.GetRecommendations() {
		f := func(v float64) string {
			if r.GetResource() == "memory" {
				return bytesStr(int64(v))
			}
			if v == 0 {
				return "-"
			}
			return strconv.FormatFloat(v, 'g', 3, 64)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s/%s\t%s/%s\t%s\t%s\t%s\t%s\n", r.GetTask(), r.GetResource(), f(r.GetUsage()),
			f(r.GetCurrentRequest()), f(r.GetCurrentLimit()), f(r.GetRequest()), f(r.GetLimit()), r.GetModel(), confidenceStr(r.GetConfidence()),
			orDash(r.GetWhy()), orDash(r.GetExplanation()))
	}
}

// confidenceStr is a recommendation's confidence for a table: "-" when
// there is none (no history: a cold-start or default size), "<0.01" for the
// first minutes of history (it grows as 1-2^-days), else two decimals.
func confidenceStr(c float64) string {
	switch {
	case !(c > 0):
		return "-"
	case c < 0.01:
		return "<0.01"
	}
	return strconv.FormatFloat(c, 'f', 2, 64)
}
