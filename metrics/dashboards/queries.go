package dashboards

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// PanelQuery is one query of one panel of a dashboard JSON.
type PanelQuery struct {
	Dashboard, Panel, RefID, Expr string
	// Instant is set for instant queries (tables); others are range queries.
	Instant bool
	// MinInterval is the panel's minimum step ("5m"), empty when it has none:
	// Grafana's $__interval and step are never below it.
	MinInterval string
}

// Variable is a template variable of a dashboard JSON.
type Variable struct {
	Name, Type string
	// Query is the variable's query, e.g. label_values(metric{…}, label), or
	// a custom variable's comma-separated values.
	Query string
	// Current is the value the dashboard opens with ("$__all" for All).
	Current []string
	// Regex extracts each value from the query's results (Grafana's
	// /…/ syntax, slashes removed); empty means none.
	Regex string
	// IncludeAll: All, the default here, stands for every value.
	IncludeAll bool
}

// Parse reads the panel queries and template variables of a dashboard JSON
// (the committed files, or any Grafana dashboard), including panels nested in
// collapsed rows.
func Parse(b []byte) (title string, qs []PanelQuery, vars []Variable, err error) {
	type panel struct {
		Title    string `json:"title"`
		Interval string `json:"interval"`
		Targets  []struct {
			Expr    string `json:"expr"`
			RefID   string `json:"refId"`
			Instant bool   `json:"instant"`
			Range   bool   `json:"range"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Title      string            `json:"title"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name       string          `json:"name"`
				Type       string          `json:"type"`
				Query      json.RawMessage `json:"query"`
				Definition string          `json:"definition"`
				Regex      string          `json:"regex"`
				IncludeAll bool            `json:"includeAll"`
				Current    struct {
					Value json.RawMessage `json:"value"`
				} `json:"current"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return "", nil, nil, fmt.Errorf("dashboard JSON: %w", err)
	}
	var walk func([]json.RawMessage) error
	walk = func(ps []json.RawMessage) error {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				return err
			}
			for _, t := range p.Targets {
				if t.Expr != "" {
					qs = append(qs, PanelQuery{Dashboard: d.Title, Panel: p.Title, RefID: t.RefID, Expr: t.Expr,
						Instant: t.Instant && !t.Range, MinInterval: p.Interval})
				}
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return "", nil, nil, fmt.Errorf("dashboard %q: %w", d.Title, err)
	}
	for _, v := range d.Templating.List {
		q := v.Definition
		var m struct {
			Query string `json:"query"`
		}
		if q == "" && json.Unmarshal(v.Query, &m) == nil {
			q = m.Query
		}
		if q == "" {
			_ = json.Unmarshal(v.Query, &q)
		}
		var cur []string
		var one string
		if json.Unmarshal(v.Current.Value, &one) == nil {
			cur = []string{one}
		} else {
			_ = json.Unmarshal(v.Current.Value, &cur)
		}
		re := strings.TrimSuffix(strings.TrimPrefix(v.Regex, "/"), "/")
		vars = append(vars, Variable{Name: v.Name, Type: v.Type, Query: q, Current: cur, Regex: re, IncludeAll: v.IncludeAll})
	}
	return d.Title, qs, vars, nil
}

var labelValuesRe = regexp.MustCompile(`^label_values\((?:(.*),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// LabelValuesQuery splits a Grafana label_values(selector, label) variable
// query into its series selector (may be empty) and label name.
func LabelValuesQuery(q string) (selector, label string, ok bool) {
	m := labelValuesRe.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

var queryResultRe = regexp.MustCompile(`^query_result\((.*)\)$`)

// QueryResultQuery is the PromQL expression of a Grafana
// query_result(expr) variable query.
func QueryResultQuery(q string) (expr string, ok bool) {
	m := queryResultRe.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Substitute replaces Grafana's template variables in expr: each $name and
// ${name} from values (a multi-value is joined as a regex alternation, as
// Grafana does for =~ matchers), and the built-ins $__rate_interval,
// $__interval and $__range with the given durations in PromQL syntax.
func Substitute(expr string, values map[string][]string, rateInterval, interval, rng string) string {
	r := []string{"$__rate_interval", rateInterval, "${__rate_interval}", rateInterval,
		"$__interval", interval, "${__interval}", interval, "$__range", rng, "${__range}", rng}
	// Longest names first, so that $node does not eat the start of $node_pool.
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if len(names[j]) > len(names[i]) {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	for _, n := range names {
		v := values[n]
		val := strings.Join(quoteMeta(v), "|")
		if len(v) > 1 {
			val = "(" + val + ")"
		}
		r = append(r, "${"+n+"}", val, "$"+n, val)
	}
	return strings.NewReplacer(r...).Replace(expr)
}

func quoteMeta(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		if v == ".*" { // the All value stays a regex
			out[i] = v
			continue
		}
		out[i] = regexp.QuoteMeta(v)
	}
	return out
}
