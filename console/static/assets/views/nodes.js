// Every machine: capacity, what is requested there, what Fathom's tasks
// use, state; refreshed every few seconds (nodes have no watch stream).

import { getJSON } from '../api.js';
import { badge, every, h, put, table } from '../dom.js';
import { age, bytes, cores, num, pct, stateName } from '../format.js';

export function nodeState(n) {
  let s = stateName(n.state);
  if (n.draining) s += ', draining';
  else if (!n.schedulable) s += ', cordoned';
  return s;
}

// bar is a used/requested/capacity gauge: text for everyone, the bar for
// the eye (hidden from screen readers, which read the text).
export function bar(used, requested, capacity, f) {
  const c = num(capacity);
  const w = (v) => `${Math.min(100, c > 0 ? (num(v) / c) * 100 : 0).toFixed(1)}%`;
  return h('div', { class: 'gauge' },
    h('div', { class: 'gauge-track', 'aria-hidden': 'true' },
      h('div', { class: 'gauge-req', style: { width: w(requested) } }),
      h('div', { class: 'gauge-used', style: { width: w(used) } })),
    h('span', { class: 'small' }, `used ${f(used)}, requested ${f(requested)} of ${f(capacity)} (${pct(c > 0 ? num(requested) / c : NaN)} requested)`));
}

export async function render(main, _params, ctx) {
  const { signal } = ctx;
  const body = h('div');
  const summary = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  main.append(h('h1', {}, 'Nodes'), summary, body,
    h('p', { class: 'muted small' }, '"Used" is what Fathom\'s tasks on the node use (their cgroups), not the whole machine; requests are the sums of the requests of the tasks placed there. Refreshed every 5 s.'));

  async function load() {
    let r;
    try {
      r = await getJSON('/v1/nodes', {}, { signal });
    } catch (e) {
      if (e.name !== 'AbortError' && e.status !== 401 && e.status !== 403) {
        ctx.setLive('reconnecting', e.message);
      }
      return;
    }
    ctx.setLive('live');
    const nodes = r.nodes || [];
    const up = nodes.filter((n) => stateName(n.state) === 'up').length;
    summary.textContent = `${nodes.length} node(s), ${up} up`;
    if (nodes.length === 0) {
      put(body, h('p', { class: 'card empty' }, 'No node has registered. Start an agent: fathom agent --server ADDR (fathom dev runs one).'));
      return;
    }
    put(body, table('Nodes: state, CPU and memory used by tasks and requested against capacity, tasks, heartbeat', ['Node', 'State', 'CPU (cores)', 'Memory', 'Tasks', 'Enforcement', 'Heartbeat', 'Removable'],
      nodes.map((n) => h('tr', { 'data-node': n.name },
        h('th', { scope: 'row' }, n.name, n.version ? h('div', { class: 'small muted' }, n.version) : null),
        h('td', {}, badge(nodeState(n)), n.memory_pressure ? h('span', { class: 'badge s-failed' }, 'memory pressure') : null),
        h('td', {}, bar(n.task_cpu_used_cores, n.cpu_requested_cores, n.cpu_cores, cores)),
        h('td', {}, bar(n.task_memory_used_bytes, n.memory_requested_bytes, n.memory_bytes, bytes)),
        h('td', { class: 'num' }, num(n.task_count)),
        h('td', {}, n.enforcement || '-'),
        h('td', {}, n.last_heartbeat ? `${age(n.last_heartbeat)} ago` : '-'),
        h('td', {}, n.removal ? `yes: ${n.removal}` : n.removable ? 'yes' : 'no'))), { id: 'nodes-table' }));
  }
  every(5000, signal, load);
}
