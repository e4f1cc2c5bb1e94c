// Formatting and small pure helpers, shared by every view. Sizes follow the
// CLI: cores as plain numbers, memory in Ki/Mi/Gi (never raw bytes).

// num reads a protojson number: int64 fields arrive as strings, zero
// values are left out.
export function num(v) {
  if (v === undefined || v === null || v === '') return 0;
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

export function cores(v) {
  v = num(v);
  if (v === 0) return '-';
  if (Math.abs(v) < 0.001) return v < 0 ? '>-0.001' : '<0.001';
  return String(Number(v.toPrecision(3)));
}

export function bytes(v) {
  v = num(v);
  if (v === 0) return '-';
  const abs = Math.abs(v);
  const sign = v < 0 ? '-' : '';
  const unit = (div, name) => {
    const x = abs / div;
    const s = Number.isInteger(x) ? String(x) : x >= 100 ? String(Math.round(x)) : x.toFixed(1);
    return sign + s + name;
  };
  if (abs >= 2 ** 30) return unit(2 ** 30, 'Gi');
  if (abs >= 2 ** 20) return unit(2 ** 20, 'Mi');
  if (abs >= 2 ** 10) return unit(2 ** 10, 'Ki');
  return sign + Math.round(abs) + 'B';
}

// signed prints a saving: "+1.2Gi" (saved) or "-200Mi" (raised).
export function signed(v, f) {
  v = num(v);
  if (v === 0) return '0';
  return (v > 0 ? '+' : '') + f(v);
}

export function pct(x, digits = 0) {
  if (!Number.isFinite(x)) return '-';
  if (x > 0 && x < 0.01 && digits === 0) return '<1%';
  return (x * 100).toFixed(digits) + '%';
}

// confidence as the CLI prints it: none without history, "<0.01" in the
// first minutes, else two decimals.
export function confidence(c) {
  c = num(c);
  if (!(c > 0)) return '-';
  if (c < 0.01) return '<0.01';
  return c.toFixed(2);
}

export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 48 * 3600) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

export function age(ts, now = Date.now()) {
  if (!ts) return '-';
  return duration(now - new Date(ts).getTime());
}

export function clock(ts) {
  if (!ts) return '-';
  return new Date(ts).toLocaleString();
}

// stateName turns "JOB_STATE_RUNNING" or "TASK_STATE_LOST" into "running".
export function stateName(s) {
  if (!s) return 'unknown';
  return String(s).replace(/^[A-Z]+_STATE_|^EVENT_TYPE_/, '').toLowerCase();
}

export function jobActive(job) {
  const s = stateName(job.state);
  return (s === 'pending' || s === 'running' || s === 'unknown' || s === 'unspecified') && !job.stop_requested;
}

export function taskSummary(job) {
  const counts = job.task_counts || {};
  const keys = Object.keys(counts).sort();
  if (keys.length === 0) return '0';
  return keys.map((k) => `${counts[k]} ${k}`).join(', ');
}

// promRegex escapes s for a PromQL regular-expression matcher.
export function promRegex(s) {
  return String(s).replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/"/g, '\\"');
}

// niceTicks returns about n round values from 0 to at least max.
export function niceTicks(max, n = 4) {
  if (!(max > 0)) return [0];
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = 0; out.length < 20; v += step) {
    out.push(Number(v.toPrecision(12)));
    if (v >= max * 0.9999) break; // the top tick covers max
  }
  return out;
}

// niceByteTicks is niceTicks on a power-of-two scale (Mi, Gi steps).
export function niceByteTicks(max, n = 4) {
  if (!(max > 0)) return [0];
  const raw = max / n;
  let step = 1;
  while (step * 2 <= raw) step *= 2;
  if (step < raw) step *= 2;
  const out = [];
  for (let v = 0; out.length < 20; v += step) {
    out.push(v);
    if (v >= max * 0.9999) break;
  }
  return out;
}

// sumSeries adds per-task series that share their timestamps (a range
// query's steps). A step where some task has no value is skipped for the
// usage and request sums; for limits, allOrNothing drops a step where any
// task has none or 0 (unlimited), since a sum would then be meaningless.
export function sumSeries(series, allOrNothing = false) {
  const byT = new Map();
  for (const s of series) {
    for (const [t, v] of s.values) {
      const e = byT.get(t) || { sum: 0, n: 0, zero: false };
      e.sum += v;
      e.n++;
      if (!(v > 0)) e.zero = true;
      byT.set(t, e);
    }
  }
  const out = [];
  for (const [t, e] of [...byT.entries()].sort((a, b) => a[0] - b[0])) {
    if (allOrNothing && (e.zero || e.n < series.length)) continue;
    out.push([t, e.sum]);
  }
  return out;
}
