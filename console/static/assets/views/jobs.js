// Every job, newest first, live from the jobs watch stream.

import { getJSON, watch } from '../api.js';
import { badge, every, h, put, table, throttle } from '../dom.js';
import { age, jobActive, stateName, taskSummary } from '../format.js';

export async function render(main, _params, ctx) {
  const { signal } = ctx;
  const jobs = new Map();
  let text = '';
  let which = 'all';

  const search = h('input', { id: 'job-filter', type: 'search', autocomplete: 'off', oninput: () => { text = search.value.trim().toLowerCase(); draw(); } });
  const stateSel = h('select', { id: 'job-state', onchange: () => { which = stateSel.value; draw(); } },
    [['all', 'all'], ['active', 'active (pending or running)'], ['finished', 'finished']].map(([v, l]) => h('option', { value: v }, l)));
  const count = h('p', { class: 'muted small', role: 'status', 'aria-live': 'polite' });
  const body = h('div');
  main.append(h('h1', {}, 'Jobs'),
    h('div', { class: 'toolbar' },
      h('label', { for: 'job-filter' }, 'Filter by name or namespace'), search,
      h('label', { for: 'job-state' }, 'Show'), stateSel),
    count, body);

  function draw() {
    const now = Date.now();
    const list = [...jobs.values()]
      .filter((j) => !text || j.name.toLowerCase().includes(text) || j.namespace.toLowerCase().includes(text) || j.id.includes(text))
      .filter((j) => which === 'all' || (which === 'active') === jobActive(j))
      .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    count.textContent = `${list.length} of ${jobs.size} job(s)`;
    if (jobs.size === 0) {
      put(body, h('div', { class: 'card empty' },
        h('p', {}, 'No jobs yet. Submit one without sizing it:'),
        h('pre', {}, 'fathom job run examples/web.yaml'),
        h('p', { class: 'muted' }, 'It appears here as soon as the server stores it.')));
      return;
    }
    put(body, table('Jobs: name, namespace, type, state, tasks and age', ['Name', 'Namespace', 'Type', 'Priority', 'State', 'Tasks', 'Age'],
      list.map((j) => h('tr', { 'data-job': j.id },
        h('th', { scope: 'row' }, h('a', { href: `/jobs/${encodeURIComponent(j.id)}`, 'data-key': 'job-' + j.id }, j.name), h('br'), h('code', { class: 'small muted' }, j.id)),
        h('td', {}, j.namespace),
        h('td', {}, j.spec?.type || 'service'),
        h('td', {}, j.spec?.priority || 'batch'),
        h('td', {}, badge(stateName(j.state)), j.stop_requested && jobActive(j) ? ' stopping' : ''),
        h('td', {}, taskSummary(j)),
        h('td', { class: 'num' }, age(j.created_at, now)))), { id: 'jobs-table' }));
  }

  const load = async () => {
    const r = await getJSON('/v1/jobs', {}, { signal });
    jobs.clear();
    for (const j of r.jobs || []) jobs.set(j.id, j);
    draw();
  };
  await load();
  ctx.setLive('live');
  const redraw = throttle(draw, 200);
  watch('/v1/watch/jobs', {}, {
    signal,
    onEvent: (ev) => {
      if (!ev.job) return;
      if (ev.type === 'EVENT_TYPE_DELETED') jobs.delete(ev.job.id);
      else jobs.set(ev.job.id, ev.job);
      redraw();
    },
    onReset: () => load().then(() => ctx.setLive('live')).catch(() => {}),
    onState: (s, e) => ctx.setLive(s, e?.message),
  });
  every(10000, signal, redraw); // ages
}
