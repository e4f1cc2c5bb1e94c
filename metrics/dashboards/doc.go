// Package dashboards defines Fathom's Grafana dashboards as code with the
// Grafana Foundation SDK: Cluster, Job right-sizing, Scheduler and Nodes. Each
// takes its Prometheus data source from the "datasource" variable and filters
// by the template variables namespace, job_name and node where the series
// carry those labels. Job right-sizing reads only the per-task recording rules
// (fathom:task_…:…5m) and their per-job totals, and draws the $top tasks that
// hidden ranking variables (query_result(topk(…))) name; Resolve gives
// variables values as Grafana does, for the tests and the benchmark.
//
// The JSON under metrics/dashboards/*.json is generated from this code (make
// generate, or fathom dashboards export DIR) and committed; a test checks the
// two agree, and another runs every panel query against a live store.
package dashboards
