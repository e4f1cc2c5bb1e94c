#!/usr/bin/env bash
# make demo: builds fathom, starts `fathom dev` (server + embedded etcd + embedded
# TSDB + one local agent), submits examples/web.yaml and examples/burn.yaml, shows
# `fathom job list`, and waits for Ctrl-C, which stops everything.
#   DEMO_DATA_DIR   data directory (default: a fresh temporary directory)
#   FATHOM_ADDR     where dev listens (default http://127.0.0.1:7070)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${FATHOM_BIN:-$PWD/bin/fathom}"
if [ ! -x "$BIN" ] || [ -n "$(find . -name '*.go' -newer "$BIN" -print -quit 2>/dev/null)" ]; then
  echo "demo: building $BIN" >&2
  go build -o "$BIN" ./cmd/fathom
fi
addr="${FATHOM_ADDR:-http://127.0.0.1:7070}"
hostport="${addr#*://}"
host="${hostport%:*}"
port="${hostport##*:}"
export FATHOM_ADDR="$addr"
data="${DEMO_DATA_DIR:-$(mktemp -d /tmp/fathom-demo-XXXXXX)}"

"$BIN" dev --data-dir "$data" --http-addr "$hostport" --grpc-addr "$host:$((port + 1))" \
  --agent-addr "$host:$((port + 2))" &
dev=$!
trap 'kill -INT $dev 2>/dev/null; wait $dev 2>/dev/null || true' INT TERM
trap 'kill -INT $dev 2>/dev/null || true' EXIT

for _ in $(seq 1 600); do
  curl -fsS "$addr/readyz" >/dev/null 2>&1 && break
  kill -0 $dev 2>/dev/null || { echo "demo: fathom dev exited" >&2; exit 1; }
  sleep 0.1
done

echo "--- submitting examples/web.yaml"
"$BIN" job run examples/web.yaml
echo "--- submitting examples/burn.yaml (fathom -> $BIN)"
sed "s|\"fathom\", \"burn\"|\"$BIN\", \"burn\"|" examples/burn.yaml | "$BIN" job run -
sleep 3
echo "--- fathom job list"
"$BIN" job list
echo "--- fathom node list"
"$BIN" node list
echo
echo "Try: $BIN job status <id>   |   $BIN job logs <id> -f   |   curl -s '$addr/api/v1/query?query=fathom_task_memory_working_set_bytes'"
echo "Ctrl-C stops the cluster and its tasks."
wait $dev
