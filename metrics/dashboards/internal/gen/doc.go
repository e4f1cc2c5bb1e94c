// Command gen writes the committed dashboards (metrics/dashboards/*.json) and
// the copy of the recording rules for a real Prometheus
// (deploy/prometheus/fathom.rules.yml). Run by scripts/generate.d/20-dashboards.sh
// from the repository root.
package main
