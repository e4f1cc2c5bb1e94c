// Every task of every job, live from the tasks watch stream.

import { getJSON, watch } from '../api.js';
import { badge, h, put, table, throttle } from '../dom.js';
import { bytes, cores, num, stateName } from '../format.js';

const ENDED = new Set(['succeeded', 'failed', 'stopped', 'rejected']);

export async function render(main, _params, ctx) {
  const { signal } = ctx;
  const tasks = new Map();
  let text = '';
  let which = 'active';
  let jobsKnown = null;

  const search = h('input', { id: 'task-filter', type: 'search', autocomplete: 'off', oninput: () => { text = search.value.trim().toLowerCase(); draw(); } });
  const stateSel = h('select', { id: 'task-state', onchange: () => { which = stateSel.value; draw(); } },
    [['active', 'not finished'], ['all', 'all'], ['pending', 'pending'], ['running', 'running'], ['lost', 'lost'], ['ended', 'finished']]
      .map(([v, l]) => h('option', { value: v }, l)));
  const count = h('p', { class: 'muted small', role: 'status', 'aria-live': 'polite' });
  const body = h('div');
  main.append(h('h1', {}, 'Tasks'),
    h('div', { class: 'toolbar' },
      h('label', { for: 'task-filter' }, 'Filter by task, job or node'), search,
      h('label', { for: 'task-state' }, 'Show'), stateSel),
    count, body);

  function draw() {
    const list = [...tasks.values()].filter((t) => {
      const st = stateName(t.state);
      if (which === 'active' && ENDED.has(st)) return false;
      if (which === 'ended' && !ENDED.has(st)) return false;
      if (!['all', 'active', 'ended'].includes(which) && st !== which) return false;
      return !text || [t.id, t.job_name, t.namespace, t.node || ''].some((x) => x.toLowerCase().includes(text));
    }).sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
    count.textContent = `${list.length} of ${tasks.size} task(s)`;
    if (tasks.size === 0) {
      put(body, h('p', { class: 'muted' }, jobsKnown === 0 ? 'No tasks: no job has been submitted yet.' : 'Waiting for the first tasks…'));
      return;
    }
    put(body, table('Tasks: state, node, request / limit and why', ['Task', 'Job', 'State', 'Node', 'CPU req / limit', 'Memory req / limit', 'Restarts', 'Why'],
      list.map((t) => h('tr', { 'data-task': t.id },
        h('th', { scope: 'row' }, h('code', {}, t.id)),
        h('td', {}, h('a', { href: `/jobs/${encodeURIComponent(t.job_id)}` }, `${t.namespace}/${t.job_name}`)),
        h('td', {}, badge(stateName(t.state))),
        h('td', {}, t.node || '-'),
        h('td', { class: 'num' }, `${cores(t.cpu_request_cores)} / ${cores(t.cpu_limit_cores)}`),
        h('td', { class: 'num' }, `${bytes(t.memory_request_bytes)} / ${bytes(t.memory_limit_bytes)}`),
        h('td', { class: 'num' }, num(t.restarts)),
        h('td', { class: 'reason' }, t.reason || '-'))), { id: 'tasks-table' }));
  }

  // The watch starts with every existing task; it says nothing at all on
  // an empty cluster, so the jobs list tells "none" from "not yet".
  getJSON('/v1/jobs', {}, { signal }).then((r) => { jobsKnown = (r.jobs || []).length; draw(); }).catch(() => {});
  draw();
  ctx.setLive('live');
  const redraw = throttle(draw, 250);
  watch('/v1/watch/tasks', {}, {
    signal,
    onEvent: (ev) => {
      if (!ev.task) return;
      if (ev.type === 'EVENT_TYPE_DELETED') tasks.delete(ev.task.id);
      else tasks.set(ev.task.id, ev.task);
      redraw();
    },
    onReset: () => { tasks.clear(); ctx.setLive('live'); redraw(); },
    onState: (s, e) => ctx.setLive(s, e?.message),
  });
}
