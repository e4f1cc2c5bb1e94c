// Package promhistory is a predictor.History over the Prometheus HTTP API:
// it reads a task's usage windows with PromQL range queries, from the
// embedded store the server runs (metrics.OpenStore) or from an external
// Prometheus. It is the I/O half of the predictor; the predictor itself
// stays pure.
//
// Per 5-minute window ending at t (query_range steps aligned to 5 minutes):
//
//	CPU      sum(rate(fathom_task_cpu_usage_seconds_total{sel}[5m]))
//	CPUPeak  max_over_time(sum(rate(fathom_task_cpu_usage_seconds_total{sel}[30s]))[5m:15s])
//	Memory   max(max_over_time(fathom_task_memory_working_set_bytes{sel}[5m]))
//
// where sel is namespace, job_name and task. The sum merges the series of a
// task that moved between nodes. fathom_task_memory_peak_bytes is used too
// when Options.UsePeak is set (it must then be a per-window peak, not a
// high-water mark since the task started).
package promhistory
