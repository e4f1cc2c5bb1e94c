#!/usr/bin/env bash
# Agent overhead: CPU share and RSS of `fathom agent` (a separate process,
# which execs the slim fathom-agent beside the fathom binary, as operators run
# it) running 100 tasks with 1 s sampling and 10 s remote-write pushes to a
# local receiver, read from /proc/<pid>/stat, status and smaps_rollup over 60 s.
# Goal: <= 1% of one core and <= 40 MiB. See docs/agent.md.
# Needs root and a writable cgroup hierarchy to measure the cgroup path.
set -euo pipefail
BIN="${FATHOM_BIN:-$PWD/bin/fathom}"
[ -x "$BIN" ] || { echo "build first: make build (looked for $BIN)" >&2; exit 1; }
[ -x "$(dirname "$BIN")/fathom-agent" ] || echo "note: no fathom-agent beside $BIN (make build writes it); measuring the agent inside $BIN" >&2
"$BIN" bench agent --tasks "${BENCH_AGENT_TASKS:-100}" --duration "${BENCH_AGENT_DURATION:-60s}" --warmup "${BENCH_AGENT_WARMUP:-15s}"
