#!/usr/bin/env bash
# Grafana dashboards (metrics/dashboards/*.json) from the Go code in
# metrics/dashboards, and the recording rules copy for a real Prometheus
# (deploy/prometheus/fathom.rules.yml). Both are committed; metrics/dashboards'
# tests fail when they differ from what the code generates.
set -euo pipefail
cd "$(dirname "$0")/../.."
go run ./metrics/dashboards/internal/gen metrics/dashboards deploy/prometheus
