// Hand-drawn SVG line charts: usage against request and limit over time.
// Series are told apart by line style as well as colour, and the legend
// gives each one's latest value, so the chart reads without colour vision.

import { h } from './dom.js';
import { niceTicks, niceByteTicks } from './format.js';

const W = 640, H = 220, L = 64, R = 12, T = 12, B = 28;

// lineChart draws series [{name, kind: 'usage'|'peak'|'request'|'limit',
// points: [[ms, value], ...]}] over [start, end] (ms). fmt formats a value,
// bytes switches to power-of-two ticks. It returns a <figure>.
export function lineChart({ id, title, series, start, end, fmt, bytes = false, empty }) {
  const all = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const points = series.reduce((n, s) => n + s.points.length, 0);
  const max = all.length ? Math.max(...all) * 1.1 : 0;
  const ticks = bytes ? niceByteTicks(max) : niceTicks(max);
  const top = Math.max(ticks[ticks.length - 1] || 0, 1e-9);
  const x = (t) => L + ((t - start) / Math.max(end - start, 1)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const latest = series.map((s) => {
    const p = s.points[s.points.length - 1];
    return `${s.name} ${p ? fmt(p[1]) : 'no data'}`;
  });
  const label = `${title}, ${new Date(start).toLocaleTimeString()} to ${new Date(end).toLocaleTimeString()}. Latest: ${latest.join('; ')}.`;

  const svg = h('svg', {
    viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-labelledby': `${id}-t ${id}-d`,
    'data-points': points, 'data-series': series.filter((s) => s.points.length).length,
  },
  h('title', { id: `${id}-t` }, title),
  h('desc', { id: `${id}-d` }, label),
  ticks.map((v) => h('g', { class: 'tick' },
    h('line', { x1: L, x2: W - R, y1: y(v), y2: y(v) }),
    h('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v) === '-' ? '0' : fmt(v)))),
  timeTicks(start, end).map((t) => h('g', { class: 'tick' },
    h('line', { x1: x(t), x2: x(t), y1: T, y2: H - B }),
    // A label at either edge is anchored inside the chart, not cut off.
    h('text', { x: x(t), y: H - 8, 'text-anchor': x(t) > W - R - 30 ? 'end' : x(t) < L + 30 ? 'start' : 'middle' }, hhmm(t, end - start)))),
  h('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }),
  series.map((s) => h('path', { class: `line k-${s.kind}`, d: pathOf(s.points, x, y), 'data-name': s.name })));

  return h('figure', { class: 'chart-box' },
    h('figcaption', {}, h('h3', {}, title)),
    points === 0 ? h('p', { class: 'muted chart-empty' }, empty || 'No samples in this range yet.') : null,
    svg,
    h('ul', { class: 'legend', 'aria-label': `${title}: legend, latest values` },
      series.map((s, i) => h('li', {}, h('span', { class: `swatch k-${s.kind}`, 'aria-hidden': 'true' }), latest[i]))));
}

// pathOf joins points into a path, breaking it where samples are missing
// (a gap longer than 2.5 median steps).
function pathOf(points, x, y) {
  if (points.length === 0) return '';
  const steps = [];
  for (let i = 1; i < points.length; i++) steps.push(points[i][0] - points[i - 1][0]);
  steps.sort((a, b) => a - b);
  const gap = (steps[Math.floor(steps.length / 2)] || Infinity) * 2.5;
  let d = '';
  points.forEach(([t, v], i) => {
    const jump = i === 0 || t - points[i - 1][0] > gap;
    d += `${jump ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
    if (jump && (i === points.length - 1 || points[i + 1][0] - t > gap)) d += `h1`; // a lone sample shows as a dot
  });
  return d;
}

function timeTicks(start, end) {
  const span = end - start;
  const choices = [10e3, 15e3, 30e3, 60e3, 2 * 60e3, 5 * 60e3, 10 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 3 * 3600e3, 6 * 3600e3];
  const step = choices.find((s) => span / s <= 6) || 12 * 3600e3;
  const out = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) out.push(t);
  return out;
}

function hhmm(t, span) {
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, '0');
  let s = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (span <= 5 * 60e3) s += `:${pad(d.getSeconds())}`;
  return span > 24 * 3600e3 ? `${d.getMonth() + 1}/${d.getDate()} ${s}` : s;
}
