#!/usr/bin/env bash
# make demo: starts `fathom dev` (server + embedded etcd + embedded TSDB + one
# local agent) from bin/fathom (make demo builds it first, with a progress
# line), submits examples/web.yaml and examples/burn.yaml, shows `fathom job
# list` and `fathom node list`, prints the console URL and what to try next,
# and waits for Ctrl-C, which stops the cluster and its tasks.
#   DEMO_DATA_DIR   data directory, kept afterwards (default: a temporary
#                   directory, removed when the demo stops)
#   FATHOM_ADDR     where dev listens (default http://127.0.0.1:7070); gRPC and
#                   the agent take the next two ports
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${FATHOM_BIN:-$PWD/bin/fathom}"
if [ ! -x "$BIN" ] || [ -n "$(find . -name '*.go' -newer "$BIN" -print -quit 2>/dev/null)" ] ||
   [ -n "$(find console/static -newer "$BIN" -print -quit 2>/dev/null)" ]; then
  ./scripts/build.sh
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is needed (see the README's prerequisites)" >&2; exit 1; }
done
addr="${FATHOM_ADDR:-http://127.0.0.1:7070}"
hostport="${addr#*://}"
host="${hostport%:*}"
port="${hostport##*:}"
export FATHOM_ADDR="$addr"
if [ -n "${DEMO_DATA_DIR:-}" ]; then
  data="$DEMO_DATA_DIR"
  keep=true
else
  data="$(mktemp -d "${TMPDIR:-/tmp}/fathom-demo-XXXXXX")"
  keep=false
fi

"$BIN" dev --demo --data-dir "$data" --http-addr "$hostport" --grpc-addr "$host:$((port + 1))" \
  --agent-addr "$host:$((port + 2))" &
dev=$!
cleanup() {
  kill -INT "$dev" 2>/dev/null || true
  wait "$dev" 2>/dev/null || true
  if ! $keep; then rm -rf "$data"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 600); do
  curl -fsS "$addr/readyz" >/dev/null 2>&1 && break
  kill -0 "$dev" 2>/dev/null || { echo "demo: fathom dev exited" >&2; exit 1; }
  sleep 0.1
done

echo "--- fathom job run examples/web.yaml"
web=$("$BIN" job run examples/web.yaml -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "job $web submitted"
echo "--- fathom job run examples/burn.yaml"
burn=$("$BIN" job run examples/burn.yaml -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "job $burn submitted"
for _ in $(seq 1 50); do # until both run (or 5 s)
  [ "$("$BIN" job list --state running -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("jobs", [])))')" -ge 2 ] && break
  sleep 0.1
done
echo "--- fathom job list"
"$BIN" job list
echo "--- fathom node list"
"$BIN" node list
cli="$BIN"
[ "$addr" != "http://127.0.0.1:7070" ] && cli="FATHOM_ADDR=$addr $BIN"
cat <<EOT

The demo submitted web ($web) and burn ($burn). Watch Fathom size them:
  Console:  $addr/  (the burn job's page: $addr/jobs/$burn)
  $cli job status $burn     # sizes, the recommendation and why
  $cli job logs $web -f
  $cli job stop $web
Submit your own job: a spec like examples/web.yaml with another name, no sizes needed.
Ctrl-C stops the cluster and its tasks$($keep || echo ", and removes $data").
EOT
wait "$dev"
