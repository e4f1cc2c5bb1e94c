package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Dashboard is one generated dashboard and the file it is exported to.
type Dashboard struct {
	File  string // e.g. "cluster.json"
	Model dashboard.Dashboard
}

// All builds every Fathom dashboard, in a fixed order.
func All() ([]Dashboard, error) {
	builders := []struct {
		file string
		b    *dashboard.DashboardBuilder
	}{
		{"cluster.json", cluster()},
		{"job-rightsizing.json", jobRightSizing()},
		{"scheduler.json", scheduler()},
		{"nodes.json", nodes()},
	}
	out := make([]Dashboard, 0, len(builders))
	for _, x := range builders {
		d, err := x.b.Build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", x.file, err)
		}
		numberPanels(&d)
		out = append(out, Dashboard{File: x.file, Model: d})
	}
	return out, nil
}

// numberPanels gives every panel and row a unique id in layout order, as
// Grafana would on first save, so that links to panels (viewPanel=N) are stable.
func numberPanels(d *dashboard.Dashboard) {
	var id uint32
	for _, p := range d.Panels {
		id++
		switch {
		case p.Panel != nil:
			p.Panel.Id = ptr(id)
		case p.RowPanel != nil:
			p.RowPanel.Id = id
			for i := range p.RowPanel.Panels {
				id++
				p.RowPanel.Panels[i].Id = ptr(id)
			}
		}
	}
}

// JSON is the dashboard as committed: indented, with a final newline.
func (d Dashboard) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(d.Model, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Export writes every dashboard as DIR/<file> and returns the paths written.
func Export(dir string) ([]string, error) {
	ds, err := All()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, d := range ds {
		b, err := d.JSON()
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, d.File)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// ---- building blocks ----

const (
	// Selectors with the template variables; "=~" so that "All" (.*) works.
	selJob  = `namespace=~"$namespace",job_name=~"$job_name"`
	selNode = `node=~"$node"`
	selNS   = `namespace=~"$namespace"`
	// The Job right-sizing dashboard's per-task selection (recorded series).
	selTaskVar = `namespace=~"$namespace",job_name=~"$job_name",node=~"$node",task=~"$task"`
	refIDs     = "ABCDEFGHIJ"
	panelH     = 8
	halfWidth  = 12
)

func ptr[T any](v T) *T { return &v }

func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${datasource}")}
}

type query struct{ expr, legend string }

func targets(qs []query) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], len(qs))
	for i, q := range qs {
		out[i] = prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			Expr(q.expr).
			LegendFormat(q.legend).
			Range().
			RefId(refIDs[i : i+1])
	}
	return out
}

// column is one column of a table panel: an instant query and its header.
type column struct{ expr, header string }

// tablePanel is a table of instant queries (format table) over the dashboard's
// range, joined into one row per series by their labels; time and the
// labels Grafana shows on its own are hidden, Value #X renamed to the header.
func tablePanel(title, desc string, cols ...column) *table.PanelBuilder {
	tgts := make([]cog.Builder[variants.Dataquery], len(cols))
	rename := map[string]any{}
	for i, c := range cols {
		ref := refIDs[i : i+1]
		tgts[i] = prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			Expr(c.expr).
			Instant().
			Format(prometheus.PromQueryFormatTable).
			RefId(ref)
		rename["Value #"+ref] = c.header
	}
	return table.NewPanelBuilder().
		Title(title).
		Description(desc).
		Datasource(datasource()).
		Height(panelH).Span(halfWidth).
		Targets(tgts).
		WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
		WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
			"excludeByName": map[string]any{"Time": true, "__name__": true},
			"renameByName":  rename,
		}}).
		SortBy([]cog.Builder[common.TableSortByFieldState]{
			common.NewTableSortByFieldStateBuilder().DisplayName(cols[0].header).Desc(true),
		}).
		// Grafana expects a reducer list even with the footer off.
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"}))
}

func graph(title, unit, desc string, qs ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(desc).
		Datasource(datasource()).
		Unit(unit).
		Height(panelH).Span(halfWidth).
		FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending)).
		Targets(targets(qs))
}

func single(title, unit, desc string, q query) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(desc).
		Datasource(datasource()).
		Unit(unit).
		Height(4).Span(6).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeValue).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		Targets(targets([]query{q}))
}

func datasourceVar() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder("datasource").
		Label("Data source").
		Type("prometheus").
		Description("The Prometheus-compatible store: the Fathom server (http://SERVER:7070) or your Prometheus.")
}

// labelVar is a query variable over label values, multi-select with All = .*.
func labelVar(name, label, metric string) *dashboard.QueryVariableBuilder {
	q := fmt.Sprintf("label_values(%s, %s)", metric, name)
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{Map: map[string]any{
			"query": q, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1,
		}}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".*").
		Current(dashboard.VariableOption{Selected: ptr(true), Text: dashboard.StringOrArrayOfString{String: ptr("All")}, Value: dashboard.StringOrArrayOfString{String: ptr("$__all")}})
}

func base(uid, title, desc string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(desc).
		Tags([]string{"fathom"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-6h", "now").
		Timezone(common.TimeZoneBrowser).
		WithVariable(datasourceVar()).
		Link(dashboard.NewDashboardLinkBuilder("Fathom").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"fathom"}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true))
}

// topVar is how many tasks the per-task panels of Job right-sizing draw.
func topVar() *dashboard.CustomVariableBuilder {
	opts := []string{"5", "10", "20", "50", "100", "1000"}
	var options []dashboard.VariableOption
	for _, o := range opts {
		options = append(options, dashboard.VariableOption{Selected: ptr(o == "10"), Text: dashboard.StringOrArrayOfString{String: ptr(o)}, Value: dashboard.StringOrArrayOfString{String: ptr(o)}})
	}
	return dashboard.NewCustomVariableBuilder("top").
		Label("Tasks drawn").
		Description("Per-task panels and tables show this many tasks of the selection: the worst-sized over the dashboard's range. The job totals above them cover every task.").
		Values(dashboard.StringOrMap{String: ptr(strings.Join(opts, ","))}).
		Options(options).
		Current(dashboard.VariableOption{Selected: ptr(true), Text: dashboard.StringOrArrayOfString{String: ptr("10")}, Value: dashboard.StringOrArrayOfString{String: ptr("10")}})
}

// rankVar is a hidden variable holding the $top tasks of the selection with
// the highest score over the dashboard's range (an instant query at its end,
// re-run when the range changes): per-task panels select task=~"$name", so
// they read the series of those tasks only, and the same tasks stay on screen
// at every step. With All (Grafana's default here) it is every value joined.
func rankVar(name, label, score string) *dashboard.QueryVariableBuilder {
	q := "query_result(topk($top, " + sel(score, selTaskVar) + "))"
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Description("The $top tasks of the selection with the highest " + label + " over the range (hidden; per-task panels read it).").
		Hide(dashboard.VariableHideHideVariable).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{Map: map[string]any{
			"query": q, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 3,
		}}).
		Definition(q).
		Regex(`/task="([^"]+)"/`).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Multi(true).
		IncludeAll(true).
		Current(dashboard.VariableOption{Selected: ptr(true), Text: dashboard.StringOrArrayOfString{String: ptr("All")}, Value: dashboard.StringOrArrayOfString{String: ptr("$__all")}})
}

// Variables in dependency order: job_name depends on namespace.
func namespaceVar() *dashboard.QueryVariableBuilder {
	return labelVar("namespace", "Namespace", "fathom_task_memory_working_set_bytes")
}
func jobVar() *dashboard.QueryVariableBuilder {
	return labelVar("job_name", "Job", `fathom_task_memory_working_set_bytes{namespace=~"$namespace"}`)
}
func taskVar() *dashboard.QueryVariableBuilder {
	return labelVar("task", "Task", `fathom_task_memory_working_set_bytes{namespace=~"$namespace",job_name=~"$job_name"}`)
}
func nodeVar() *dashboard.QueryVariableBuilder {
	return labelVar("node", "Node", "fathom_node_cpu_capacity_cores")
}

// sel substitutes a selector into a query template at %s.
func sel(tmpl string, args ...any) string { return strings.TrimSpace(fmt.Sprintf(tmpl, args...)) }
