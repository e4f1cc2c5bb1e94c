// Package synth makes realistic Fathom metric series for tests, benchmarks and
// demos of the metrics store and dashboards: per-task usage with a daily cycle
// and noise, requests and limits that a predictor would set, OOM counters, and
// node capacities, all labelled as agents label them. It is deterministic for a
// given seed and start time, and does no I/O.
package synth
