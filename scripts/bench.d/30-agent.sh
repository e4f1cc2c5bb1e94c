#!/usr/bin/env bash
# Agent overhead: CPU share and RSS of `fathom agent` running 100 tasks with
# 1 s sampling and 10 s remote-write pushes (goal: ≤ 1% of one core, ≤ 40 MiB).
# The agent reads its tasks from a local assignments file (no server needed),
# pushes usage to a throwaway remote-write receiver, and is measured from
# /proc/<pid>/stat and /proc/<pid>/status over BENCH_AGENT_SECONDS (default 60).
# Needs root and a writable cgroup hierarchy to measure the real (cgroup)
# path; without one the agent runs with enforcement "none" and says so.
set -euo pipefail
BIN="${FATHOM_BIN:-$PWD/bin/fathom}"
TASKS="${BENCH_AGENT_TASKS:-100}"
SECS="${BENCH_AGENT_SECONDS:-60}"
WARM="${BENCH_AGENT_WARMUP:-15}"
[ -x "$BIN" ] || { echo "build first: make build (looked for $BIN)" >&2; exit 1; }

dir=$(mktemp -d /tmp/fathom-bench-agent.XXXXXX)
parent="fathom-bench-$$"
agent_pid=""; rw_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  [ -n "$rw_pid" ] && kill "$rw_pid" 2>/dev/null || true
  # Remove the bench's cgroup parent in every hierarchy (empty by now).
  find /sys/fs/cgroup -depth -type d -path "*/$parent*" -exec rmdir {} \; 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rw_port=$(free_port); http_port=$(free_port)

# A remote-write receiver that accepts everything (204), like a healthy store.
python3 - "$rw_port" >/dev/null 2>&1 <<'PY' &
import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
rw_pid=$!

{
  echo "assignments:"
  for i in $(seq 0 $((TASKS - 1))); do
    echo "  - {task_id: bench-$i, job_id: bench, namespace: bench, job_name: sleeper, task_index: $i, command: [sleep, '100000'], job_type: service, priority: batch, memory_limit_bytes: 67108864, cpu_limit_cores: 0.5, generation: 1}"
  done
} > "$dir/assignments.yaml"

"$BIN" agent --assignments "$dir/assignments.yaml" --name bench --data-dir "$dir/data" \
  --metrics-addr "127.0.0.1:$http_port" --cgroup-parent "$parent" --grace-period 2s \
  --remote-write-url "http://127.0.0.1:$rw_port/api/v1/write" --stop-tasks-on-exit \
  --log-level warn 2>"$dir/agent.log" &
agent_pid=$!

metric() { curl -fsS "http://127.0.0.1:$http_port/metrics" 2>/dev/null | awk -v m="$1" '!v && $1 ~ "^"m"({|$)" {v=$2} END {print v}'; }
for _ in $(seq 1 60); do
  running=$(metric fathom_agent_tasks_running || true)
  [ "${running:-0}" = "$TASKS" ] && break
  sleep 1
done
if [ "${running:-0}" != "$TASKS" ]; then
  echo "agent did not get $TASKS tasks running (saw ${running:-none}); log:" >&2; tail -20 "$dir/agent.log" >&2; exit 1
fi
mode=$(curl -fsS "http://127.0.0.1:$http_port/metrics" | grep -o 'enforcement="[a-z0-9]*"' | head -1 | tr -d '"' || true)
sleep "$WARM"

ticks() { awk '{print $14 + $15}' "/proc/$agent_pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); s0=$(date +%s.%N)
sleep "$SECS"
t1=$(ticks); s1=$(date +%s.%N)
rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$agent_pid/status")
hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$agent_pid/status")
anon_kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$agent_pid/status")
file_kb=$(awk '/^RssFile:/ {print $2}' "/proc/$agent_pid/status")
sent=$(metric fathom_agent_remote_write_samples_total || echo 0)
dropped=$(metric fathom_agent_remote_write_dropped_samples_total || echo 0)

python3 - "$t0" "$t1" "$s0" "$s1" "$hz" "$rss_kb" "$hwm_kb" "$TASKS" "$sent" "$dropped" "${mode:-enforcement=?}" "$anon_kb" "$file_kb" <<'PY'
import sys, json
t0, t1, s0, s1, hz, rss, hwm, tasks = (float(x) for x in sys.argv[1:9])
sent, dropped, mode = sys.argv[9], sys.argv[10], sys.argv[11]
anon, filek = float(sys.argv[12]), float(sys.argv[13])
cpu = (t1 - t0) / hz / (s1 - s0) * 100
out = {"tasks": int(tasks), "seconds": round(s1 - s0, 1), "sample_interval_s": 1, "push_interval_s": 10,
       "agent_cpu_percent_of_one_core": round(cpu, 3), "agent_rss_mib": round(rss / 1024, 1),
       "agent_rss_peak_mib": round(hwm / 1024, 1),
       "agent_rss_anon_mib": round(anon / 1024, 1), "agent_rss_file_mib": round(filek / 1024, 1), "remote_write_samples_sent": float(sent or 0),
       "remote_write_samples_dropped": float(dropped or 0),
       "goal": {"cpu_percent_max": 1.0, "rss_mib_max": 40}}
print(f"agent with {int(tasks)} running tasks, 1 s sampling, {mode}:")
print(f"  CPU {cpu:.3f}% of one core over {s1-s0:.0f} s   (goal <= 1%)  {'OK' if cpu <= 1 else 'OVER'}")
print(f"  RSS {rss/1024:.1f} MiB (peak {hwm/1024:.1f} MiB)          (goal <= 40 MiB)  {'OK' if rss/1024 <= 40 else 'OVER'}")
print(f"      of which private (anon) {anon/1024:.1f} MiB, file-backed binary pages {filek/1024:.1f} MiB")
print(json.dumps(out))
PY
