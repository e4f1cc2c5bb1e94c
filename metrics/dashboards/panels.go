package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Words as in ARCHITECTURE.md: request is what the scheduler packs with, limit
// what the agent enforces, usage what was measured; slack = Σ(limit − usage)⁺ /
// Σ limit; an overloaded machine is one whose tasks together use more than its
// capacity.
//
// The Cluster and Nodes dashboards read the recording rules of
// metrics/rules/fathom.rules.yml (node:…, namespace:…) rather than summing
// every task at every step; Job right-sizing reads raw per-task series of one
// job, which stays cheap.

func cluster() *dashboard.DashboardBuilder {
	return base("fathom-cluster", "Fathom / Cluster",
		"Capacity vs requested vs used per resource, slack, oversubscription and overloaded machines.").
		WithVariable(namespaceVar()).
		WithVariable(nodeVar()).
		WithPanel(single("Nodes reporting", "short", "Nodes whose agent pushed capacity recently.",
			query{sel(`count(node:fathom_node_cpu_capacity_cores:max{%s})`, selNode), "nodes"})).
		WithPanel(single("Tasks reporting", "short", "Tasks whose usage arrived recently.",
			query{sel(`count(fathom_task_memory_working_set_bytes{%s,%s})`, selNS, selNode), "tasks"})).
		WithPanel(single("CPU slack", "percentunit", "Σ(limit − usage)⁺ / Σ limit over the selected namespaces.",
			query{sel(`sum(namespace:fathom_task_cpu_slack_cores:sum{%[1]s}) / sum(namespace:fathom_task_cpu_limit_cores:sum{%[1]s})`, selNS), "cpu"})).
		WithPanel(single("Memory slack", "percentunit", "Σ(limit − usage)⁺ / Σ limit over the selected namespaces.",
			query{sel(`sum(namespace:fathom_task_memory_slack_bytes:sum{%[1]s}) / sum(namespace:fathom_task_memory_limit_bytes:sum{%[1]s})`, selNS), "memory"})).
		WithRow(dashboard.NewRowBuilder("Capacity, requested, limits and usage")).
		WithPanel(graph("CPU", "short", "Cores: node capacity, Σ requests (what the scheduler packs), Σ limits (what agents enforce) and Σ usage.",
			query{sel(`sum(node:fathom_node_cpu_capacity_cores:max{%s})`, selNode), "capacity"},
			query{sel(`sum(node:fathom_task_cpu_request_cores:sum{%s})`, selNode), "requested"},
			query{sel(`sum(node:fathom_task_cpu_limit_cores:sum{%s})`, selNode), "limits"},
			query{sel(`sum(node:fathom_task_cpu_usage_cores:rate1m{%s})`, selNode), "used"},
		)).
		WithPanel(graph("Memory", "bytes", "Bytes: node capacity, Σ requests, Σ limits and Σ working set.",
			query{sel(`sum(node:fathom_node_memory_capacity_bytes:max{%s})`, selNode), "capacity"},
			query{sel(`sum(node:fathom_task_memory_request_bytes:sum{%s})`, selNode), "requested"},
			query{sel(`sum(node:fathom_task_memory_limit_bytes:sum{%s})`, selNode), "limits"},
			query{sel(`sum(node:fathom_task_memory_working_set_bytes:sum{%s})`, selNode), "used"},
		)).
		WithRow(dashboard.NewRowBuilder("Efficiency and risk")).
		WithPanel(graph("Slack", "percentunit", "Σ(limit − usage)⁺ / Σ limit: the share of enforced limits left unused.",
			query{sel(`sum(namespace:fathom_task_cpu_slack_cores:sum{%[1]s}) / sum(namespace:fathom_task_cpu_limit_cores:sum{%[1]s})`, selNS), "cpu"},
			query{sel(`sum(namespace:fathom_task_memory_slack_bytes:sum{%[1]s}) / sum(namespace:fathom_task_memory_limit_bytes:sum{%[1]s})`, selNS), "memory"},
		)).
		WithPanel(graph("Oversubscription ratio", "percentunit", "Σ limits / capacity and Σ requests / capacity; above 100% the machines are oversubscribed on limits.",
			query{sel(`sum(node:fathom_task_cpu_limit_cores:sum{%[1]s}) / sum(node:fathom_node_cpu_capacity_cores:max{%[1]s})`, selNode), "cpu limits / capacity"},
			query{sel(`sum(node:fathom_task_memory_limit_bytes:sum{%[1]s}) / sum(node:fathom_node_memory_capacity_bytes:max{%[1]s})`, selNode), "memory limits / capacity"},
			query{sel(`sum(node:fathom_task_cpu_request_cores:sum{%[1]s}) / sum(node:fathom_node_cpu_capacity_cores:max{%[1]s})`, selNode), "cpu requests / capacity"},
			query{sel(`sum(node:fathom_task_memory_request_bytes:sum{%[1]s}) / sum(node:fathom_node_memory_capacity_bytes:max{%[1]s})`, selNode), "memory requests / capacity"},
		)).
		WithPanel(graph("Overloaded machines", "short", "Machines whose tasks together use more than the machine's capacity.",
			query{sel(`count(node:fathom_task_cpu_usage_cores:rate1m{%s} > on (node) node:fathom_node_cpu_capacity_cores:max) or vector(0)`, selNode), "cpu"},
			query{sel(`count(node:fathom_task_memory_working_set_bytes:sum{%s} > on (node) node:fathom_node_memory_capacity_bytes:max) or vector(0)`, selNode), "memory"},
		)).
		WithPanel(graph("CPU used by namespace", "short", "Cores used per namespace.",
			query{sel(`sum by (namespace) (namespace:fathom_task_cpu_usage_cores:rate1m{%s})`, selNS), "{{namespace}}"},
		))
}

func jobRightSizing() *dashboard.DashboardBuilder {
	return base("fathom-job-rightsizing", "Fathom / Job right-sizing",
		"Per task: usage, request, limit and the predictor's recommendation over time; prediction error; OOMs and evictions.").
		WithVariable(namespaceVar()).
		WithVariable(jobVar()).
		WithVariable(nodeVar()).
		WithRow(dashboard.NewRowBuilder("Usage vs. sizing per task")).
		WithPanel(graph("CPU per task", "short", "Cores used (rate of CPU seconds), the request the scheduler packs with, the limit the agent enforces, and the predictor's current recommendation.",
			query{sel(`sum by (task) (rate(fathom_task_cpu_usage_seconds_total{%s}[$__rate_interval]))`, selTask), "{{task}} used"},
			query{sel(`max by (task) (fathom_task_cpu_request_cores{%s})`, selTask), "{{task}} request"},
			query{sel(`max by (task) (fathom_task_cpu_limit_cores{%s})`, selTask), "{{task}} limit"},
			query{sel(`max by (task) (fathom_predictor_recommended_cpu_cores{%s})`, selTask), "{{task}} recommended"},
		)).
		WithPanel(graph("Memory per task", "bytes", "Working set, peak, request, limit and the predictor's recommendation.",
			query{sel(`max by (task) (fathom_task_memory_working_set_bytes{%s})`, selTask), "{{task}} working set"},
			query{sel(`max by (task) (fathom_task_memory_peak_bytes{%s})`, selTask), "{{task}} peak"},
			query{sel(`max by (task) (fathom_task_memory_request_bytes{%s})`, selTask), "{{task}} request"},
			query{sel(`max by (task) (fathom_task_memory_limit_bytes{%s})`, selTask), "{{task}} limit"},
			query{sel(`max by (task) (fathom_predictor_recommended_memory_bytes{%s})`, selTask), "{{task}} recommended"},
		)).
		WithRow(dashboard.NewRowBuilder("Prediction quality")).
		WithPanel(graph("Prediction error (request vs. usage)", "percentunit", "(request − usage) / usage per task: above 0 the task is over-provisioned, below 0 it uses more than it asked for.",
			query{sel(`(max by (task) (fathom_task_cpu_request_cores{%[1]s}) - sum by (task) (rate(fathom_task_cpu_usage_seconds_total{%[1]s}[$__rate_interval]))) / sum by (task) (rate(fathom_task_cpu_usage_seconds_total{%[1]s}[$__rate_interval]))`, selTask), "{{task}} cpu"},
			query{sel(`(max by (task) (fathom_task_memory_request_bytes{%[1]s}) - max by (task) (fathom_task_memory_working_set_bytes{%[1]s})) / max by (task) (fathom_task_memory_working_set_bytes{%[1]s})`, selTask), "{{task}} memory"},
		)).
		WithPanel(graph("Limit headroom used", "percentunit", "Peak memory / limit and CPU usage / limit per task; near 100% means OOM or throttling risk. Tasks without a limit (0 = unlimited) are left out.",
			query{sel(`max by (task) (fathom_task_memory_peak_bytes{%[1]s}) / (max by (task) (fathom_task_memory_limit_bytes{%[1]s}) > 0)`, selTask), "{{task}} memory"},
			query{sel(`sum by (task) (rate(fathom_task_cpu_usage_seconds_total{%[1]s}[$__rate_interval])) / (max by (task) (fathom_task_cpu_limit_cores{%[1]s}) > 0)`, selTask), "{{task}} cpu"},
		)).
		WithRow(dashboard.NewRowBuilder("Failures")).
		WithPanel(graph("OOM kills", "short", "OOM kills per task in each interval.",
			query{sel(`sum by (task) (increase(fathom_task_oom_kills_total{%s}[$__rate_interval]))`, selTask), "{{task}}"},
		)).
		WithPanel(graph("Evictions", "short", "Tasks of the job evicted by agents (memory pressure, OOM) in each interval.",
			query{sel(`sum by (reason) (increase(fathom_scheduler_evictions_total{%s}[$__rate_interval])) or vector(0)`, selJob), "{{reason}}"},
		))
}

func scheduler() *dashboard.DashboardBuilder {
	return base("fathom-scheduler", "Fathom / Scheduler",
		"Placement latency, pending tasks, placements, preemptions and reschedules; the predictor and the API.").
		WithRow(dashboard.NewRowBuilder("Scheduler")).
		WithPanel(graph("Placement latency", "s", "Wall time of one scheduler pass, quantiles over the interval.",
			query{`histogram_quantile(0.5, sum by (le) (rate(fathom_scheduler_placement_duration_seconds_bucket[$__rate_interval])))`, "p50"},
			query{`histogram_quantile(0.99, sum by (le) (rate(fathom_scheduler_placement_duration_seconds_bucket[$__rate_interval])))`, "p99"},
		)).
		WithPanel(graph("Pending tasks", "short", "Tasks waiting for a placement, by priority.",
			query{`sum by (priority) (fathom_scheduler_pending_tasks)`, "{{priority}}"},
		)).
		WithPanel(graph("Placements", "ops", "Placement decisions per second by result.",
			query{`sum by (result) (rate(fathom_scheduler_placements_total[$__rate_interval]))`, "{{result}}"},
		)).
		WithPanel(graph("Tasks by state", "short", "Tasks the control plane knows, by state.",
			query{`sum by (state) (fathom_scheduler_tasks)`, "{{state}}"},
		)).
		WithPanel(graph("Preemptions", "short", "Tasks preempted in each interval, by the victim's priority.",
			query{`sum by (priority) (increase(fathom_scheduler_preemptions_total[$__rate_interval])) or vector(0)`, "{{priority}}"},
		)).
		WithPanel(graph("Reschedules and evictions", "short", "Tasks moved (by reason) and evicted (by reason) in each interval.",
			query{`sum by (reason) (increase(fathom_scheduler_reschedules_total[$__rate_interval])) or vector(0)`, "moved: {{reason}}"},
			query{`sum by (reason) (increase(fathom_scheduler_evictions_total[$__rate_interval])) or vector(0)`, "evicted: {{reason}}"},
		)).
		WithPanel(graph("In-place resizes", "short", "Request/limit changes applied in each interval, by resource.",
			query{`sum by (resource) (increase(fathom_scheduler_resizes_total[$__rate_interval]))`, "{{resource}}"},
		)).
		WithRow(dashboard.NewRowBuilder("Predictor")).
		WithPanel(graph("Recommendations", "ops", "Recommendations made per second, by resource.",
			query{`sum by (resource) (rate(fathom_predictor_recommendations_total[$__rate_interval]))`, "{{resource}}"},
		)).
		WithPanel(graph("Since last training", "s", "Seconds since the predictor last finished retraining.",
			query{`time() - max(fathom_predictor_last_training_timestamp_seconds)`, "age"},
		)).
		WithPanel(graph("Prediction error of matured recommendations", "percentunit", "Median and p90 of |predicted − observed| / observed, by resource.",
			query{`histogram_quantile(0.5, sum by (le, resource) (rate(fathom_predictor_error_ratio_bucket[$__rate_interval])))`, "p50 {{resource}}"},
			query{`histogram_quantile(0.9, sum by (le, resource) (rate(fathom_predictor_error_ratio_bucket[$__rate_interval])))`, "p90 {{resource}}"},
		)).
		WithRow(dashboard.NewRowBuilder("API")).
		WithPanel(graph("API requests", "reqps", "Requests per second by route and status code.",
			query{`sum by (route, code) (rate(fathom_api_requests_total[$__rate_interval]))`, "{{route}} {{code}}"},
		)).
		WithPanel(graph("API latency p99", "s", "p99 latency by route.",
			query{`histogram_quantile(0.99, sum by (le, route) (rate(fathom_api_request_duration_seconds_bucket[$__rate_interval])))`, "{{route}}"},
		))
}

func nodes() *dashboard.DashboardBuilder {
	return base("fathom-nodes", "Fathom / Nodes",
		"Node health, pressure, requested vs. capacity and agent push lag.").
		WithVariable(nodeVar()).
		WithRow(dashboard.NewRowBuilder("Health")).
		WithPanel(graph("Node up", "short", "1 while the node's agent heartbeats; schedulable is 0 when cordoned or draining.",
			query{sel(`max by (node) (fathom_node_up{%s})`, selNode), "{{node}} up"},
			query{sel(`max by (node) (fathom_node_schedulable{%s})`, selNode), "{{node}} schedulable"},
		)).
		WithPanel(graph("Heartbeat age", "s", "Seconds since the control plane last heard from each agent.",
			query{sel(`time() - max by (node) (fathom_node_last_heartbeat_timestamp_seconds{%s})`, selNode), "{{node}}"},
		)).
		WithPanel(graph("Agent push lag", "s", "Age of the newest sample each agent pushed (remote write every 10 s; above ~30 s pushes are failing).",
			query{sel(`time() - max by (node) (timestamp(fathom_node_memory_capacity_bytes{%s}))`, selNode), "{{node}}"},
		)).
		WithPanel(graph("Tasks per node", "short", "Tasks whose usage each agent reports.",
			query{sel(`count by (node) (fathom_task_memory_working_set_bytes{%s})`, selNode), "{{node}}"},
		)).
		WithRow(dashboard.NewRowBuilder("Pressure")).
		WithPanel(graph("Machine usage", "percentunit", "Whole-machine CPU and memory in use (tasks and everything else) / capacity, as the agent measures it.",
			query{sel(`max by (node) (fathom_node_cpu_usage_cores{%[1]s}) / max by (node) (fathom_node_cpu_capacity_cores{%[1]s})`, selNode), "{{node}} cpu"},
			query{sel(`max by (node) (fathom_node_memory_used_bytes{%[1]s}) / max by (node) (fathom_node_memory_capacity_bytes{%[1]s})`, selNode), "{{node}} memory"},
		)).
		WithPanel(graph("Memory pressure signal", "short", "1 while the agent sees memory above its eviction threshold (it evicts best-effort, then batch tasks). Agents serve this signal on /metrics; where it is not stored (the embedded store gets only what agents push), it is derived from pushed machine memory against the agents' default threshold of 95%.",
			query{sel(`max by (node) (fathom_node_memory_pressure{%[1]s}) or (max by (node) (fathom_node_memory_used_bytes{%[1]s}) / max by (node) (fathom_node_memory_capacity_bytes{%[1]s}) > bool 0.95)`, selNode), "{{node}}"},
		)).
		WithPanel(graph("Task CPU / capacity", "percentunit", "Σ task CPU usage / capacity per node; above 100% the node is overloaded.",
			query{sel(`node:fathom_task_cpu_usage_cores:rate1m{%s} / on (node) node:fathom_node_cpu_capacity_cores:max`, selNode), "{{node}}"},
		)).
		WithPanel(graph("Task memory / capacity", "percentunit", "Σ task working set / capacity per node.",
			query{sel(`node:fathom_task_memory_working_set_bytes:sum{%s} / on (node) node:fathom_node_memory_capacity_bytes:max`, selNode), "{{node}}"},
		)).
		WithPanel(graph("CPU requested / capacity", "percentunit", "What the scheduler has packed on each node, relative to its capacity.",
			query{sel(`node:fathom_task_cpu_request_cores:sum{%s} / on (node) node:fathom_node_cpu_capacity_cores:max`, selNode), "{{node}}"},
		)).
		WithPanel(graph("Memory requested / capacity", "percentunit", "What the scheduler has packed on each node, relative to its capacity.",
			query{sel(`node:fathom_task_memory_request_bytes:sum{%s} / on (node) node:fathom_node_memory_capacity_bytes:max`, selNode), "{{node}}"},
		))
}
