// Package metrics is where Fathom's metrics live: the names of every metric
// Fathom writes (Names), collectors for the control plane built on registries
// that are passed in, and Store, an embedded Prometheus-compatible store made of
// the real Prometheus libraries (TSDB, PromQL engine, web/api/v1 HTTP API with
// its remote-write receiver, and the recording-rule manager).
//
// The server opens one Store in its data directory and mounts Store.Handler at
// /api/v1/; agents push by remote write to /api/v1/write; the predictor, the CLI
// and Grafana read through /api/v1/query and /api/v1/query_range, exactly as
// they would from a real Prometheus (see deploy/prometheus.yml for that case).
//
// Dashboards as code live in the subpackage metrics/dashboards.
package metrics
