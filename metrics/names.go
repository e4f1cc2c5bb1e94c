package metrics

// Names of the metrics Fathom writes, as fixed by ARCHITECTURE.md. Every
// per-task series carries at least the labels LabelNamespace, LabelJobName,
// LabelTask and LabelNode; never "job", which is Prometheus's own target label
// and is rewritten on scrape.
const (
	// Per task (pushed by agents by remote write, also served on their /metrics).
	TaskCPUUsageSecondsTotal     = "fathom_task_cpu_usage_seconds_total"
	TaskMemoryWorkingSetBytes    = "fathom_task_memory_working_set_bytes"
	TaskMemoryPeakBytes          = "fathom_task_memory_peak_bytes"
	TaskCPURequestCores          = "fathom_task_cpu_request_cores"
	TaskCPULimitCores            = "fathom_task_cpu_limit_cores"
	TaskMemoryRequestBytes       = "fathom_task_memory_request_bytes"
	TaskMemoryLimitBytes         = "fathom_task_memory_limit_bytes"
	TaskOOMKillsTotal            = "fathom_task_oom_kills_total"
	TaskCPUThrottledSecondsTotal = "fathom_task_cpu_throttled_seconds_total"

	// Per node (agents).
	NodeCPUCapacityCores    = "fathom_node_cpu_capacity_cores"
	NodeMemoryCapacityBytes = "fathom_node_memory_capacity_bytes"
	// Whole-machine usage and the agent's pressure signal (1 above the
	// eviction threshold).
	NodeCPUUsageCores   = "fathom_node_cpu_usage_cores"
	NodeMemoryUsedBytes = "fathom_node_memory_used_bytes"
	NodeMemoryPressure  = "fathom_node_memory_pressure"

	// Prefixes of the control plane's own metrics.
	SchedulerPrefix = "fathom_scheduler_"
	PredictorPrefix = "fathom_predictor_"
	APIPrefix       = "fathom_api_"
	NodePrefix      = "fathom_node_"
	TaskPrefix      = "fathom_task_"
)

// Label names on Fathom's series.
const (
	LabelNamespace = "namespace"
	LabelJobName   = "job_name"
	LabelTask      = "task"
	LabelNode      = "node"
	LabelResource  = "resource" // "cpu" | "memory"
	LabelPriority  = "priority" // "prod" | "batch" | "best-effort"
	LabelReason    = "reason"
)

// Per-task label sets in the order agents should emit them.
var TaskLabels = []string{LabelNamespace, LabelJobName, LabelTask, LabelNode}

// TaskMetrics lists every per-task metric name.
var TaskMetrics = []string{
	TaskCPUUsageSecondsTotal, TaskMemoryWorkingSetBytes, TaskMemoryPeakBytes,
	TaskCPURequestCores, TaskCPULimitCores, TaskMemoryRequestBytes,
	TaskMemoryLimitBytes, TaskOOMKillsTotal,
}
