// Package promhistory is the predictor's one history reader over PromQL:
// it reads a task's raw usage samples with range-selector queries, from the
// embedded store the server runs (Store, in process) or from any
// Prometheus HTTP API (API), and aggregates them into windows with the
// pure predictor.AggregateSeries. It is the I/O half of the predictor; the
// predictor itself stays pure.
//
// One query per day of history reads every series of the task:
//
//	{__name__=~"fathom_task_cpu_usage_seconds_total|fathom_task_memory_working_set_bytes|fathom_task_memory_peak_bytes",
//	 namespace="…", job_name="…", task=~"(.+-)?<index>"}[…]
//
// The agents label a task with its id (<job id>-<index>), so a job
// submitted again under the same name continues its predecessors' history.
// Per window: CPU is the counter increase over the time samples cover (the
// mean rate), CPUPeak the highest rate between two samples, Memory the
// highest working set (and, with Options.UsePeak, the agents' peak since
// their previous push). Each window says how much of it samples cover:
// Windows (predictor.History) returns only full windows; Aggregated returns
// every window, the one still filling too, for predictor.Feed.
package promhistory
