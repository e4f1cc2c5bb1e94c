package dashboards

import (
	"context"
	"fmt"
	"regexp"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Resolve gives each template variable of a dashboard a value the way
// Grafana does when the dashboard opens on [start, end], asking the data
// source through p: in order, so that later variables see earlier ones;
// values in fixed win; a custom variable takes its current value; a
// label_values(selector, label) variable the first value (as a person would
// pick one); a query_result(expr) variable runs expr as an instant query at
// end and keeps what its regex extracts — all of it, as All (its default)
// does. Variables of other types (the data source) are left out.
func Resolve(ctx context.Context, p promv1.API, vars []Variable, fixed map[string][]string, start, end time.Time) (map[string][]string, error) {
	values := map[string][]string{}
	rng := model.Duration(end.Sub(start)).String()
	for _, v := range vars {
		if f, ok := fixed[v.Name]; ok {
			values[v.Name] = f
			continue
		}
		switch v.Type {
		case "custom":
			if len(v.Current) == 0 {
				return nil, fmt.Errorf("variable %s: custom variable without a current value", v.Name)
			}
			values[v.Name] = v.Current
		case "query":
			q := Substitute(v.Query, values, "1m", "15s", rng)
			if expr, ok := QueryResultQuery(q); ok {
				vals, err := queryResult(ctx, p, expr, v.Regex, end)
				if err != nil {
					return nil, fmt.Errorf("variable %s (%s): %w", v.Name, q, err)
				}
				if len(vals) == 0 {
					return nil, fmt.Errorf("variable %s (%s): no values", v.Name, q)
				}
				values[v.Name] = vals
				continue
			}
			selector, label, ok := LabelValuesQuery(q)
			if !ok {
				return nil, fmt.Errorf("variable %s: query %q is neither label_values(…) nor query_result(…)", v.Name, v.Query)
			}
			var match []string
			if selector != "" {
				match = []string{selector}
			}
			lv, _, _, err := p.LabelValues(ctx, label, match, start, end)
			if err != nil {
				return nil, fmt.Errorf("variable %s (%s): %w", v.Name, q, err)
			}
			if len(lv) == 0 {
				return nil, fmt.Errorf("variable %s (%s): no values", v.Name, q)
			}
			values[v.Name] = []string{string(lv[0])}
		}
	}
	return values, nil
}

// queryResult runs expr at ts and extracts values from each result line
// (Grafana's form: {labels} value timestamp) with re's first group.
func queryResult(ctx context.Context, p promv1.API, expr, re string, ts time.Time) ([]string, error) {
	v, _, _, err := p.Query(ctx, expr, ts)
	if err != nil {
		return nil, err
	}
	var rx *regexp.Regexp
	if re != "" {
		if rx, err = regexp.Compile(re); err != nil {
			return nil, fmt.Errorf("regex %q: %w", re, err)
		}
	}
	var out []string
	seen := map[string]bool{}
	vec, _ := v.(model.Vector)
	for _, s := range vec {
		line := fmt.Sprintf("%s %s %d", s.Metric, s.Value, s.Timestamp)
		val := line
		if rx != nil {
			m := rx.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			val = m[len(m)-1]
		}
		if !seen[val] {
			seen[val] = true
			out = append(out, val)
		}
	}
	return out, nil
}
