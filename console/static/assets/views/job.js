// One job: what it is, its usage against request and limit over time, the
// sizing decisions and why, where each task runs and why, and a stop action.

import { APIError, del, getJSON, getText, rangeQuery, watch } from '../api.js';
import { lineChart } from '../chart.js';
import { badge, every, h, put, section, table, throttle } from '../dom.js';
import { age, bytes, clock, confidence, cores, jobActive, num, promRegex, stateName, sumSeries, taskSummary } from '../format.js';

const RANGES = [['15m', 15 * 60], ['1h', 3600], ['6h', 6 * 3600], ['24h', 86400]];

export async function render(main, [id], ctx) {
  const { signal } = ctx;
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  let job;
  try {
    job = await getJSON(path, {}, { signal });
  } catch (e) {
    if (e instanceof APIError && e.status === 404) {
      main.replaceChildren(h('h1', {}, 'Job not found'), h('p', {}, e.message, ' ', h('a', { href: '/' }, 'All jobs')));
      return;
    }
    throw e;
  }
  const tasks = new Map();
  let recs = null; // null = not loaded, {error} or {list}
  let range = RANGES[0][1];
  let taskPick = ''; // '' = the job's sum

  const head = h('div');
  const slots = h('div');
  const chartsBody = h('div', { class: 'charts' });
  const recsBody = h('div');
  const tasksBody = h('div');
  const status = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite' });

  const rangeSel = h('select', { id: 'chart-range', onchange: () => { range = Number(rangeSel.value); drawCharts(); } },
    RANGES.map(([name, s]) => h('option', { value: s }, `last ${name}`)));
  const taskSel = h('select', { id: 'chart-task', onchange: () => { taskPick = taskSel.value; drawCharts(); } });

  const dialog = stopDialog(job, async () => {
    try {
      job = await del(path, { signal });
      status.textContent = `Job ${job.name} stopped.`;
      ctx.notice(`Stop requested for ${job.name}: ${taskSummary(job)}.`, 'info');
      drawHead();
    } catch (e) {
      if (!(e instanceof APIError && (e.status === 401 || e.status === 403))) ctx.notice(`Could not stop ${job.name}: ${e.message}`);
    }
  });

  main.append(head, slots,
    section('usage', 'Usage against request and limit',
      h('div', { class: 'toolbar' },
        h('label', { for: 'chart-range' }, 'Time range'), rangeSel,
        h('label', { for: 'chart-task' }, 'Tasks'), taskSel),
      chartsBody,
      h('p', { class: 'muted small' }, 'From the metrics store (PromQL over /api/v1/query_range): agents push every few seconds; a limit line appears only where every task has one.')),
    section('sizing', 'Sizing decisions', recsBody),
    section('tasks', 'Tasks and placement', tasksBody),
    status, dialog);

  function drawHead() {
    const st = stateName(job.state);
    const s = job.spec || {};
    const hints = [];
    if (num(job.cpu_hint_cores)) hints.push(`cpu ${cores(job.cpu_hint_cores)}`);
    if (num(job.memory_hint_bytes)) hints.push(`memory ${bytes(job.memory_hint_bytes)}`);
    const active = jobActive(job);
    const stopBtn = h('button', {
      type: 'button', class: 'danger', id: 'stop-job', 'data-key': 'stop', disabled: !active,
      'aria-haspopup': 'dialog', onclick: () => dialog.showModal(),
    }, job.stop_requested ? 'Stop requested' : 'Stop job…');
    const fresh = h('div', { class: 'job-head' },
      h('p', { class: 'crumbs' }, h('a', { href: '/' }, 'Jobs'), ' / ', job.namespace),
      h('div', { class: 'title-row' },
        h('h1', { id: 'job-name', 'data-key': 'job-name', tabindex: '-1' }, job.name), badge(st), h('span', { class: 'grow' }), stopBtn),
      h('dl', { class: 'facts' },
        fact('ID', h('code', {}, job.id)),
        fact('Type', `${s.type || 'service'}, priority ${s.priority || 'batch'}`),
        fact('Tasks', taskSummary(job)),
        fact('Command', h('code', {}, (s.task?.command || []).join(' '))),
        fact('Hints', hints.length ? hints.join(', ') : 'none (Fathom sizes it)'),
        fact('Created', `${clock(job.created_at)} (${age(job.created_at)} ago)`),
        job.stopped_at ? fact('Stopped', clock(job.stopped_at)) : null,
        s.schedule ? fact('Schedule', `${s.schedule}; ${num(job.runs)} run(s), last ${clock(job.last_run_at)}, next ${clock(job.next_run_at)}`) : null));
    put(head, fresh);
    drawSlots();
  }

  // Rollout: the job's version and its latest deployment (service jobs;
  // docs/deployments.md), hidden when the server reports none.
  function drawSlots() {
    const d = job.deployment;
    if (!d || !num(d.version)) {
      slots.replaceChildren();
      return;
    }
    const stable = num(job.stable_version);
    slots.replaceChildren(section('job-rollout', 'Rollout',
      h('dl', { class: 'facts' },
        fact('Version', `${num(job.version)}${stable ? `, stable ${stable}` : ''}${job.version_reason ? ` (${job.version_reason})` : ''}`),
        fact('Deployment', [num(d.from_version) ? `${num(d.from_version)} → ${num(d.version)} ` : `version ${num(d.version)} `,
          h('span', { class: `badge s-${rolloutKind(d.status)}`, id: 'rollout-status' }, d.status || 'unknown'), d.revert ? ' (a rollback)' : '', d.promoted ? ' (promoted)' : '']),
        fact('Tasks', `${num(d.placed)} of ${num(d.desired)} on the new version, ${num(d.healthy)} healthy`),
        d.message ? fact('Why', d.message) : null,
        d.started_at ? fact('Started', `${clock(d.started_at)} (${age(d.started_at)} ago)`) : null)));
  }

  function drawTasks() {
    const list = [...tasks.values()].sort((a, b) => num(a.index) - num(b.index));
    const picks = ['', ...list.map((t) => t.id)];
    if (taskSel.options.length !== picks.length) {
      taskSel.replaceChildren(...picks.map((p) => h('option', { value: p, selected: p === taskPick }, p || 'all tasks (sum)')));
    }
    const rows = list.map((t) => {
      const st = stateName(t.state);
      const hist = t.history || [];
      return h('tr', { 'data-task': t.id },
        h('th', { scope: 'row' }, h('code', {}, t.id)),
        h('td', {}, badge(st), t.oom_killed ? h('span', { class: 'badge s-failed' }, 'OOM-killed') : null),
        h('td', {}, t.node || '-'),
        h('td', { class: 'num' }, `${cores(t.cpu_request_cores)} / ${cores(t.cpu_limit_cores)}`),
        h('td', { class: 'num' }, `${bytes(t.memory_request_bytes)} / ${bytes(t.memory_limit_bytes)}`),
        h('td', { class: 'num' }, num(t.restarts)),
        h('td', { class: 'reason' },
          h('p', {}, t.reason || '-'),
          health(t),
          hist.length ? h('details', { 'data-key': 'hist-' + t.id },
            h('summary', {}, `History (${hist.length})`),
            h('ol', { class: 'history' }, hist.map((x) => h('li', {},
              h('time', { datetime: x.time }, clock(x.time)), ' ', badge(stateName(x.state)), x.node ? ` on ${x.node}` : '', x.message ? `: ${x.message}` : '')))) : null,
          h('details', { 'data-key': 'logs-' + t.id, ontoggle: (ev) => ev.target.open && loadLogs(t.id, ev.target) },
            h('summary', {}, 'Logs (last 100 lines)'), h('pre', { class: 'logs' }, 'Loading…'))));
    });
    const fresh = list.length
      ? table(`Tasks of ${job.name}: state, node, request / limit, restarts, and why`,
        ['Task', 'State', 'Node', 'CPU req / limit (cores)', 'Memory req / limit', 'Restarts', 'Why (placement and history)'], rows, { id: 'tasks-table' })
      : h('p', { class: 'muted' }, 'No tasks yet.');
    put(tasksBody, fresh);
  }

  async function loadLogs(taskID, details) {
    const pre = details.querySelector('pre');
    try {
      const text = await getText(`/v1/tasks/${encodeURIComponent(taskID)}/logs`, { tail: 100 }, { signal });
      pre.textContent = text || '(no output yet)';
    } catch (e) {
      pre.textContent = `No logs: ${e.message}`;
    }
  }

  async function loadRecs() {
    try {
      const r = await getJSON('/v1/recommendations', { job: job.id }, { signal });
      recs = { list: r.recommendations || [] };
    } catch (e) {
      if (e.name === 'AbortError') return;
      recs = { error: e.status === 501 ? 'This server runs without right-sizing (no predictor), so there are no sizing decisions.' : e.message };
    }
    drawRecs();
  }

  function drawRecs() {
    let fresh;
    if (!recs) fresh = h('p', { class: 'muted' }, 'Loading…');
    else if (recs.error) fresh = h('p', { class: 'muted' }, recs.error);
    else if (recs.list.length === 0) fresh = h('p', { class: 'muted' }, 'No recommendations yet: the predictor has not seen these tasks run.');
    else {
      const f = (r, v) => (r.resource === 'memory' ? bytes(v) : cores(v));
      fresh = table(`Sizing decisions for ${job.name}: usage, request and limit now, the recommendation, and why`,
        ['Task', 'Resource', 'Usage', 'Now req / limit', 'Recommended req / limit', 'Model', 'Confidence', 'Why', 'Last decision'],
        recs.list.map((r, i) => {
          // The task and why span its resources' rows when they agree.
          const prev = recs.list[i - 1], next = recs.list[i + 1];
          const same = (a) => a && a.task === r.task && a.why === r.why;
          return h('tr', {},
          same(prev) ? null : h('th', { scope: 'row', rowspan: same(next) ? 2 : 1 }, h('code', {}, r.task || '(job)')),
          h('td', {}, r.resource),
          h('td', { class: 'num' }, f(r, r.usage)),
          h('td', { class: 'num' }, `${f(r, r.current_request)} / ${f(r, r.current_limit)}`),
          h('td', { class: 'num' }, `${f(r, r.request)} / ${f(r, r.limit)}`),
          h('td', {}, r.model || '-'),
          h('td', { class: 'num', title: 'Grows with the history behind the answer (1 − 2^−days)' }, confidence(r.confidence)),
          same(prev) ? null : h('td', { class: 'why', rowspan: same(next) ? 2 : 1 }, r.why || '-'),
          h('td', { class: 'why' }, r.explanation || '-'));
        }), { id: 'recs-table' });
    }
    put(recsBody, fresh);
  }

  let chartSeq = 0;
  async function drawCharts() {
    const seq = ++chartSeq;
    // The range, but not long before the job existed: a young job's
    // samples fill the chart instead of its last pixels.
    const end = new Date();
    const born = new Date(job.created_at).getTime() - 30e3;
    const start = new Date(Math.max(end.getTime() - range * 1000, Number.isFinite(born) ? born : 0));
    const span = (end.getTime() - start.getTime()) / 1000;
    const step = Math.max(2, Math.ceil(span / 240));
    const w = Math.max(60, 4 * step);
    const sel = `{task=~"${promRegex(job.id)}-[0-9]+"}`;
    const q = {
      cpuUse: `sum by (task) (rate(fathom_task_cpu_usage_seconds_total${sel}[${w}s]))`,
      cpuReq: `max by (task) (fathom_task_cpu_request_cores${sel})`,
      cpuLim: `max by (task) (fathom_task_cpu_limit_cores${sel})`,
      memUse: `max by (task) (fathom_task_memory_working_set_bytes${sel})`,
      memPeak: `max by (task) (fathom_task_memory_peak_bytes${sel})`,
      memReq: `max by (task) (fathom_task_memory_request_bytes${sel})`,
      memLim: `max by (task) (fathom_task_memory_limit_bytes${sel})`,
    };
    let res;
    try {
      const keys = Object.keys(q);
      const out = await Promise.all(keys.map((k) => rangeQuery(q[k], start, end, step, signal)));
      res = Object.fromEntries(keys.map((k, i) => [k, out[i]]));
    } catch (e) {
      if (e.name === 'AbortError' || seq !== chartSeq) return;
      chartsBody.replaceChildren(h('p', { class: 'error' }, `Charts unavailable: ${e.message}`));
      return;
    }
    if (seq !== chartSeq) return;
    const pick = (series, limit = false) => {
      const mine = taskPick ? series.filter((s) => s.metric.task === taskPick) : series;
      if (taskPick) return (mine[0]?.values || []).filter(([, v]) => !limit || v > 0);
      return sumSeries(mine, limit);
    };
    const t0 = start.getTime(), t1 = end.getTime();
    const who = taskPick || 'all tasks';
    chartsBody.replaceChildren(
      lineChart({
        id: 'cpu-chart', title: `CPU (cores), ${who}`, start: t0, end: t1, fmt: cores,
        series: [
          { name: 'usage', kind: 'usage', points: pick(res.cpuUse) },
          { name: 'request', kind: 'request', points: pick(res.cpuReq) },
          { name: 'limit', kind: 'limit', points: pick(res.cpuLim, true) },
        ],
      }),
      lineChart({
        id: 'mem-chart', title: `Memory, ${who}`, start: t0, end: t1, fmt: bytes, bytes: true,
        series: [
          { name: 'working set', kind: 'usage', points: pick(res.memUse) },
          { name: 'peak', kind: 'peak', points: pick(res.memPeak) },
          { name: 'request', kind: 'request', points: pick(res.memReq) },
          { name: 'limit', kind: 'limit', points: pick(res.memLim, true) },
        ],
      }));
  }

  const redrawTasks = throttle(() => { drawTasks(); }, 200);
  const loadTasks = async () => {
    const r = await getJSON(`${path}/tasks`, {}, { signal });
    tasks.clear();
    for (const t of r.tasks || []) tasks.set(t.id, t);
    drawTasks();
  };

  drawHead();
  drawRecs();
  await loadTasks();
  ctx.setLive('live');
  watch('/v1/watch/tasks', { job_id: job.id }, {
    signal,
    onEvent: (ev) => {
      if (!ev.task) return;
      if (ev.type === 'EVENT_TYPE_DELETED') tasks.delete(ev.task.id);
      else tasks.set(ev.task.id, ev.task);
      redrawTasks();
    },
    onReset: () => loadTasks().then(() => ctx.setLive('live')).catch(() => {}),
    onState: (s, e) => ctx.setLive(s, e?.message),
  });
  watch('/v1/watch/jobs', { namespace: job.namespace }, {
    signal,
    onEvent: (ev) => {
      if (ev.job?.id !== job.id) return;
      job = ev.job;
      drawHead();
    },
    onState: (s, e) => ctx.setLive(s, e?.message),
  });
  every(15000, signal, () => { loadRecs(); drawCharts(); drawHead(); });
}

function fact(term, value) {
  return [h('dt', {}, term), h('dd', {}, value)];
}

// rolloutKind is the badge colour of a deployment's status: running and
// paused wait, successful is done, failed and cancelled are not.
function rolloutKind(status) {
  return { running: 'pending', paused: 'pending', successful: 'succeeded', failed: 'failed', cancelled: 'failed' }[status] || 'unknown';
}

// health is a task's health check line (none for a task without a check):
// its state, since when it is healthy, its version and the check's output.
function health(t) {
  const st = stateName(t.health);
  if (!t.health || st === 'unspecified') return null;
  const kind = { healthy: 'running', unhealthy: 'failed', unknown: 'pending' }[st] || st;
  return h('p', { class: 'health' }, h('span', { class: `badge s-${kind}` }, st),
    t.healthy_since ? ` since ${clock(t.healthy_since)}` : '',
    num(t.version) ? `, version ${num(t.version)}` : '',
    t.health_message ? h('span', { class: 'small muted' }, `: ${t.health_message}`) : '');
}

function stopDialog(job, onConfirm) {
  const d = h('dialog', { id: 'stop-dialog', 'aria-labelledby': 'stop-title', 'aria-describedby': 'stop-desc' });
  const cancel = h('button', { type: 'button', onclick: () => d.close() }, 'Cancel');
  const confirm = h('button', { type: 'button', class: 'danger', id: 'stop-confirm', onclick: async () => { d.close(); await onConfirm(); } }, 'Stop job');
  d.append(
    h('h2', { id: 'stop-title' }, `Stop ${job.name}?`),
    h('p', { id: 'stop-desc' }, `Every task of ${job.namespace}/${job.name} (${job.id}) is stopped. The job stays listed as stopped; run it again to restart it.`),
    h('div', { class: 'actions' }, cancel, confirm));
  d.addEventListener('close', () => document.getElementById('stop-job')?.focus());
  return d;
}
