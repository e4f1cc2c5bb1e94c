package dashboards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Words as in ARCHITECTURE.md: request is what the scheduler packs with, limit
// what the agent enforces, usage what was measured; slack = Σ(limit − usage)⁺ /
// Σ limit; an overloaded machine is one whose tasks together use more than its
// capacity.
//
// The Cluster and Nodes dashboards read the recording rules of
// metrics/rules/fathom.rules.yml (node:…, namespace:…) rather than summing
// every task at every step; Job right-sizing reads the per-task and per-job
// rules of the same file (see jobRightSizing).

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

// Job right-sizing reads the per-task recording rules (fathom:task_…:…5m,
// every 5 m) and their per-job totals (namespace_job_name:…), never the raw
// per-task series: over a day a raw panel of a 1,000-task job reads
// 1,000 × 8,640 samples per query and draws 1,000 lines. The job totals cover
// every task. Per-task panels and tables draw the $top worst-sized tasks of
// the selection: hidden variables (rankVar) rank the tasks once per range
// change, and the panels read only the series of the tasks they name.
// Time-series panels step at least 5 m, the rules' resolution.

const recMinInterval = "5m"

// Ranking scores over the range (instant queries at its end), %[1]s the selector.
const (
	rankCPUError = `abs(avg_over_time(fathom:task_cpu_sizing_error:ratio5m{%[1]s}[$__range]))`
	rankMemError = `abs(avg_over_time(fathom:task_memory_sizing_error:ratio5m{%[1]s}[$__range]))`
	rankMemLimit = `max_over_time(fathom:task_memory_peak_bytes:max5m{%[1]s}[$__range]) / (max_over_time(fathom:task_memory_limit_bytes:max5m{%[1]s}[$__range]) > 0)`
	rankOOM      = `sum_over_time(fathom:task_oom_kills:increase5m{%[1]s}[$__range])`
)

// Selectors of the ranked tasks.
const (
	selCPUTasks   = `namespace=~"$namespace",job_name=~"$job_name",node=~"$node",task=~"$cpu_tasks"`
	selMemTasks   = `namespace=~"$namespace",job_name=~"$job_name",node=~"$node",task=~"$memory_tasks"`
	selLimitTasks = `namespace=~"$namespace",job_name=~"$job_name",node=~"$node",task=~"$limit_tasks"`
	selOOMTasks   = `namespace=~"$namespace",job_name=~"$job_name",node=~"$node",task=~"$oom_tasks"`
)

func jobRightSizing() *dashboard.DashboardBuilder {
	return base("fathom-job-rightsizing", "Fathom / Job right-sizing",
		"Per job and per task: usage, request, limit and the predictor's recommendation over time; sizing error; OOMs and evictions. Reads the 5-minute recording rules of fathom.rules.yml.").
		WithVariable(namespaceVar()).
		WithVariable(jobVar()).
		WithVariable(nodeVar()).
		WithVariable(taskVar()).
		WithVariable(topVar()).
		WithVariable(rankVar("cpu_tasks", "CPU sizing error", rankCPUError)).
		WithVariable(rankVar("memory_tasks", "memory sizing error", rankMemError)).
		WithVariable(rankVar("limit_tasks", "memory peak / limit", rankMemLimit)).
		WithVariable(rankVar("oom_tasks", "OOM kills", rankOOM)).
		WithRow(dashboard.NewRowBuilder("The job: totals over all its tasks")).
		WithPanel(graph("Job CPU", "short", "Σ over every task of the job (the node and task filters do not apply): cores used (mean of each 5-minute rate over the step), requested, limit and the predictor's recommendation.",
			query{sel(`avg_over_time(namespace_job_name:fathom_task_cpu_usage_cores:sum{%s}[$__interval])`, selJob), "{{job_name}} used"},
			query{sel(`max_over_time(namespace_job_name:fathom_task_cpu_request_cores:sum{%s}[$__interval])`, selJob), "{{job_name}} request"},
			query{sel(`max_over_time(namespace_job_name:fathom_task_cpu_limit_cores:sum{%s}[$__interval])`, selJob), "{{job_name}} limit"},
			query{sel(`max_over_time(namespace_job_name:fathom_predictor_recommended_cpu_cores:sum{%s}[$__interval])`, selJob), "{{job_name}} recommended"},
		).Interval(recMinInterval)).
		WithPanel(graph("Job memory", "bytes", "Σ over every task of the job: each task's 5-minute maximum working set, request, limit and the predictor's recommendation (the largest Σ in each step).",
			query{sel(`max_over_time(namespace_job_name:fathom_task_memory_working_set_bytes:sum{%s}[$__interval])`, selJob), "{{job_name}} working set"},
			query{sel(`max_over_time(namespace_job_name:fathom_task_memory_request_bytes:sum{%s}[$__interval])`, selJob), "{{job_name}} request"},
			query{sel(`max_over_time(namespace_job_name:fathom_task_memory_limit_bytes:sum{%s}[$__interval])`, selJob), "{{job_name}} limit"},
			query{sel(`max_over_time(namespace_job_name:fathom_predictor_recommended_memory_bytes:sum{%s}[$__interval])`, selJob), "{{job_name}} recommended"},
		).Interval(recMinInterval)).
		WithPanel(graph("Sizing error across the job's tasks", "percentunit", "(request − usage) / usage of every task, summarised across the job's tasks: 10th, 50th and 90th percentile. Above 0 tasks are over-provisioned, below 0 they use more than they asked for.",
			query{sel(`avg_over_time(namespace_job_name:fathom_task_cpu_sizing_error:quantile{%s}[$__interval])`, selJob), "{{job_name}} cpu q{{quantile}}"},
			query{sel(`avg_over_time(namespace_job_name:fathom_task_memory_sizing_error:quantile{%s}[$__interval])`, selJob), "{{job_name}} memory q{{quantile}}"},
		).Interval(recMinInterval)).
		WithPanel(graph("Tasks, OOM kills and evictions", "short", "Tasks reporting; OOM kills of the job's tasks in each step (from 5-minute increases); tasks of the job evicted by agents (memory pressure, OOM).",
			query{sel(`max_over_time(namespace_job_name:fathom_tasks:count{%s}[$__interval])`, selJob), "{{job_name}} tasks"},
			query{sel(`sum_over_time(namespace_job_name:fathom_task_oom_kills:increase5m{%s}[$__interval])`, selJob), "{{job_name}} OOM kills"},
			query{sel(`sum by (reason) (increase(fathom_scheduler_evictions_total{%s}[$__rate_interval])) or vector(0)`, selJob), "evicted: {{reason}}"},
		).Interval(recMinInterval)).
		WithRow(dashboard.NewRowBuilder("Worst-sized tasks of the selection over the range")).
		WithPanel(tablePanel("CPU: worst-sized tasks", "The $top tasks whose CPU request is furthest from their usage on average over the dashboard's range, either way (sorted by the signed error: over-provisioned first).",
			column{sel(`avg_over_time(fathom:task_cpu_sizing_error:ratio5m{%s}[$__range])`, selCPUTasks), "mean sizing error"},
			column{sel(`avg_over_time(fathom:task_cpu_usage_cores:rate5m{%s}[$__range])`, selCPUTasks), "mean cores used"},
			column{sel(`max_over_time(fathom:task_cpu_usage_cores:rate5m{%s}[$__range])`, selCPUTasks), "peak cores (5 m)"},
			column{sel(`avg_over_time(fathom:task_cpu_request_cores:max5m{%s}[$__range])`, selCPUTasks), "mean request"},
			column{sel(`last_over_time(fathom:task_predictor_recommended_cpu_cores:max5m{%s}[$__range])`, selCPUTasks), "recommended now"},
		)).
		WithPanel(tablePanel("Memory: worst-sized tasks", "The $top tasks whose memory request is furthest from their working set on average over the range, with their peak, limit, the predictor's recommendation and OOM kills.",
			column{sel(`avg_over_time(fathom:task_memory_sizing_error:ratio5m{%s}[$__range])`, selMemTasks), "mean sizing error"},
			column{sel(`max_over_time(fathom:task_memory_working_set_bytes:max5m{%s}[$__range])`, selMemTasks), "peak working set"},
			column{sel(`avg_over_time(fathom:task_memory_request_bytes:max5m{%s}[$__range])`, selMemTasks), "mean request"},
			column{sel(`max_over_time(fathom:task_memory_limit_bytes:max5m{%s}[$__range])`, selMemTasks), "limit"},
			column{sel(`last_over_time(fathom:task_predictor_recommended_memory_bytes:max5m{%s}[$__range])`, selMemTasks), "recommended now"},
			column{sel(`sum_over_time(fathom:task_oom_kills:increase5m{%s}[$__range])`, selMemTasks), "OOM kills"},
		)).
		WithRow(dashboard.NewRowBuilder("Per task: the $top worst-sized of the selection")).
		WithPanel(graph("CPU per task", "short", "Cores used, request, limit and the predictor's recommendation of the $top tasks (of the namespace/job/node/task selection) whose request is furthest from usage over the range.",
			query{sel(`avg_over_time(fathom:task_cpu_usage_cores:rate5m{%s}[$__interval])`, selCPUTasks), "{{task}} used"},
			query{sel(`max_over_time(fathom:task_cpu_request_cores:max5m{%s}[$__interval])`, selCPUTasks), "{{task}} request"},
			query{sel(`max_over_time(fathom:task_cpu_limit_cores:max5m{%s}[$__interval])`, selCPUTasks), "{{task}} limit"},
			query{sel(`max_over_time(fathom:task_predictor_recommended_cpu_cores:max5m{%s}[$__interval])`, selCPUTasks), "{{task}} recommended"},
		).Interval(recMinInterval)).
		WithPanel(graph("Memory per task", "bytes", "Working set (5-minute maximum), peak, request, limit and the predictor's recommendation of the $top tasks whose memory request is furthest from their working set over the range.",
			query{sel(`max_over_time(fathom:task_memory_working_set_bytes:max5m{%s}[$__interval])`, selMemTasks), "{{task}} working set"},
			query{sel(`max_over_time(fathom:task_memory_peak_bytes:max5m{%s}[$__interval])`, selMemTasks), "{{task}} peak"},
			query{sel(`max_over_time(fathom:task_memory_request_bytes:max5m{%s}[$__interval])`, selMemTasks), "{{task}} request"},
			query{sel(`max_over_time(fathom:task_memory_limit_bytes:max5m{%s}[$__interval])`, selMemTasks), "{{task}} limit"},
			query{sel(`max_over_time(fathom:task_predictor_recommended_memory_bytes:max5m{%s}[$__interval])`, selMemTasks), "{{task}} recommended"},
		).Interval(recMinInterval)).
		WithPanel(graph("Sizing error per task", "percentunit", "(request − usage) / usage of the $top tasks with the largest mean error per resource: above 0 over-provisioned, below 0 using more than asked for.",
			query{sel(`avg_over_time(fathom:task_cpu_sizing_error:ratio5m{%s}[$__interval])`, selCPUTasks), "{{task}} cpu"},
			query{sel(`avg_over_time(fathom:task_memory_sizing_error:ratio5m{%s}[$__interval])`, selMemTasks), "{{task}} memory"},
		).Interval(recMinInterval)).
		WithPanel(graph("Limit headroom used", "percentunit", "Peak memory / limit and CPU usage / limit of the $top tasks whose memory peak came nearest their limit over the range; near 100% means OOM or throttling risk. Tasks without a limit (0 = unlimited) are left out.",
			query{sel(`max_over_time(fathom:task_memory_peak_bytes:max5m{%[1]s}[$__interval]) / (max_over_time(fathom:task_memory_limit_bytes:max5m{%[1]s}[$__interval]) > 0)`, selLimitTasks), "{{task}} memory"},
			query{sel(`avg_over_time(fathom:task_cpu_usage_cores:rate5m{%[1]s}[$__interval]) / (max_over_time(fathom:task_cpu_limit_cores:max5m{%[1]s}[$__interval]) > 0)`, selLimitTasks), "{{task}} cpu"},
		).Interval(recMinInterval)).
		WithPanel(graph("OOM kills per task", "short", "OOM kills in each step of the $top tasks with the most OOM kills over the range.",
			query{sel(`sum_over_time(fathom:task_oom_kills:increase5m{%s}[$__interval])`, selOOMTasks), "{{task}}"},
		).Interval(recMinInterval))
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
