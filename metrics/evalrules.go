package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// EvaluateRecordingRules writes into the store what the rule manager records
// for the named groups of RecordingRules (all groups when none are named) at
// every evaluation time in (after, upTo]: each group at its own interval from
// the file (DefaultRuleInterval when it has none), at multiples of it, its
// rules in order so that later rules read earlier results, as the manager
// evaluates them. Each rule is one range query over the span, as
// `promtool tsdb create-blocks-from rules` evaluates rules.
//
// It fills recorded series for history that arrived before the rules ran
// (benchmarks, backfill). Samples must still be appendable: within the head's
// window (the last hour or so before its newest sample) or the store's
// out-of-order window. Unlike the manager it writes no staleness markers. It
// returns the number of samples written.
func (s *Store) EvaluateRecordingRules(ctx context.Context, after, upTo time.Time, groups ...string) (int, error) {
	rgs, errs := rulefmt.Parse(RecordingRules, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return 0, fmt.Errorf("recording rules: %v", errs)
	}
	want := map[string]bool{}
	for _, g := range groups {
		want[g] = true
	}
	written := 0
	for _, g := range rgs.Groups {
		if len(want) > 0 && !want[g.Name] {
			continue
		}
		delete(want, g.Name)
		every := time.Duration(g.Interval)
		if every == 0 {
			every = DefaultRuleInterval
		}
		first := after.Truncate(every).Add(every)
		last := upTo.Truncate(every)
		if last.Before(first) {
			continue
		}
		for _, r := range g.Rules {
			if r.Record == "" {
				continue
			}
			v, err := s.QueryRange(ctx, r.Expr, first, last, every)
			if err != nil {
				return written, fmt.Errorf("group %s, rule %s: %w", g.Name, r.Record, err)
			}
			m, ok := v.(promql.Matrix)
			if !ok {
				return written, fmt.Errorf("group %s, rule %s: result is %s, not a range vector", g.Name, r.Record, v.Type())
			}
			app := s.Appender(ctx)
			for _, series := range m {
				b := labels.NewBuilder(series.Metric)
				b.Set(labels.MetricName, r.Record)
				for k, v := range r.Labels {
					b.Set(k, v)
				}
				lset := b.Labels()
				for _, p := range series.Floats {
					if _, err := app.Append(0, lset, p.T, p.F); err != nil {
						_ = app.Rollback()
						return written, fmt.Errorf("group %s, rule %s: append %s at %d: %w", g.Name, r.Record, lset, p.T, err)
					}
					written++
				}
			}
			if err := app.Commit(); err != nil {
				return written, err
			}
		}
	}
	for g := range want {
		return written, fmt.Errorf("%w: no recording-rule group %q in %s", ErrBadOptions, g, RecordingRulesFile)
	}
	return written, nil
}
