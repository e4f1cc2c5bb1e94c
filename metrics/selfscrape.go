package metrics

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// AppendGathered gathers g once and appends every sample into the store at ts,
// the way a Prometheus scrape of g's /metrics would (histograms and summaries
// become _bucket/_sum/_count and quantile series), with target adding labels
// such as job and instance. It returns the number of samples appended.
//
// This is how the control plane's own metrics (fathom_scheduler_*, …) reach the
// embedded store, which scrapes nothing itself.
func (s *Store) AppendGathered(ctx context.Context, g prometheus.Gatherer, ts time.Time, target map[string]string) (int, error) {
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return 0, fmt.Errorf("self-scrape: gather: %w", err)
	}
	app := s.db.Appender(ctx)
	n, aerr := appendFamilies(app, mfs, ts.UnixMilli(), target)
	if aerr != nil {
		_ = app.Rollback()
		return 0, aerr
	}
	if err := app.Commit(); err != nil {
		return 0, fmt.Errorf("self-scrape: commit: %w", err)
	}
	return n, nil
}

// SelfScrape calls AppendGathered every interval until ctx is done, logging
// failures. Run it in its own goroutine.
func (s *Store) SelfScrape(ctx context.Context, g prometheus.Gatherer, interval time.Duration, target map[string]string) {
	if interval <= 0 {
		interval = 15 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.AppendGathered(ctx, g, time.Now(), target); err != nil && ctx.Err() == nil {
			s.logger.Warn("self-scrape failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func appendFamilies(app storage.Appender, mfs []*dto.MetricFamily, ts int64, target map[string]string) (int, error) {
	n := 0
	add := func(name string, m *dto.Metric, extra []string, v float64) error {
		b := labels.NewScratchBuilder(len(m.Label) + len(target) + 2)
		b.Add(labels.MetricName, name)
		for k, v := range target {
			b.Add(k, v)
		}
		for _, lp := range m.Label {
			b.Add(lp.GetName(), lp.GetValue())
		}
		for i := 0; i+1 < len(extra); i += 2 {
			b.Add(extra[i], extra[i+1])
		}
		b.Sort()
		if _, err := app.Append(0, b.Labels(), ts, v); err != nil {
			return fmt.Errorf("self-scrape: append %s: %w", name, err)
		}
		n++
		return nil
	}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.Metric {
			var err error
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				err = add(name, m, nil, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				err = add(name, m, nil, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				err = add(name, m, nil, m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				sm := m.GetSummary()
				for _, q := range sm.Quantile {
					if err = add(name, m, []string{"quantile", fmtFloat(q.GetQuantile())}, q.GetValue()); err != nil {
						break
					}
				}
				if err == nil {
					err = add(name+"_sum", m, nil, sm.GetSampleSum())
				}
				if err == nil {
					err = add(name+"_count", m, nil, float64(sm.GetSampleCount()))
				}
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, bk := range h.Bucket {
					if math.IsInf(bk.GetUpperBound(), +1) {
						inf = true
					}
					if err = add(name+"_bucket", m, []string{"le", fmtFloat(bk.GetUpperBound())}, float64(bk.GetCumulativeCount())); err != nil {
						break
					}
				}
				if err == nil && !inf {
					err = add(name+"_bucket", m, []string{"le", "+Inf"}, float64(h.GetSampleCount()))
				}
				if err == nil {
					err = add(name+"_sum", m, nil, h.GetSampleSum())
				}
				if err == nil {
					err = add(name+"_count", m, nil, float64(h.GetSampleCount()))
				}
			}
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// fmtFloat formats le and quantile values as Prometheus's text format does.
func fmtFloat(f float64) string {
	if math.IsInf(f, +1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
