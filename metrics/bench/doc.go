// Package bench measures the embedded metrics store as a server runs it:
// remote-write ingest over HTTP (samples/s) and the latency of a full refresh
// of the Job right-sizing dashboard (ranking variables, then panel queries) over
// 24 h of 1,000 tasks with the per-task recording rules evaluated over that day,
// issued over the Prometheus HTTP API as Grafana issues them. `fathom bench metrics` prints
// the figures; scripts/bench.d/50-metrics.sh runs it.
package bench
