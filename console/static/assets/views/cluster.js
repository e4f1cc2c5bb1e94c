// The cluster: machines in use against the lower bound, slack, what
// right-sizing saved, and overload risk. Figures come from the API
// (GET /v1/nodes and its autoscaling report, GET /v1/jobs) and from PromQL
// over the metrics the agents push.

import { getJSON, instantQuery, rangeQuery } from '../api.js';
import { lineChart } from '../chart.js';
import { every, h, put, section, table } from '../dom.js';
import { age, bytes, cores, num, pct, signed, stateName } from '../format.js';
import { bar } from './nodes.js';

const HOUR = 3600;

export async function render(main, _params, ctx) {
  const { signal } = ctx;
  const machines = h('div');
  const machinesChart = h('div', { class: 'charts' });
  const slack = h('div');
  const slackCharts = h('div', { class: 'charts' });
  const saved = h('div');
  const risk = h('div');
  main.append(h('h1', {}, 'Cluster'),
    section('machines', 'Machines in use and the lower bound', machines, machinesChart),
    section('slack', 'Slack: capacity, requests and use', slack, slackCharts),
    section('saved', 'What right-sizing saved', saved),
    section('risk', 'Overload risk', risk));

  let nodes = [];
  let report = null;

  async function loadNodes() {
    try {
      const r = await getJSON('/v1/nodes', {}, { signal });
      nodes = r.nodes || [];
      report = r.autoscale || null;
      ctx.setLive('live');
    } catch (e) {
      if (e.name !== 'AbortError') ctx.setLive('reconnecting', e.message);
      return;
    }
    drawMachines();
    drawSlack();
  }

  function drawMachines() {
    if (!report) {
      put(machines, h('p', { class: 'muted' }, 'No autoscaling report yet: the scheduler has not finished a reconcile round.'));
      return;
    }
    const a = report;
    const big = (label, value, note, id) => h('div', { class: 'stat', id },
      h('span', { class: 'stat-value' }, String(value)), h('span', { class: 'stat-label' }, label), note ? h('span', { class: 'small muted' }, note) : null);
    const shape = num(a.node_cpu_cores) ? `machines of ${cores(a.node_cpu_cores)} cores and ${bytes(a.node_memory_bytes)}` : 'machines of the common shape';
    const removable = a.could_remove || [];
    const p = a.node_provider || {};
    put(machines, h('div', {},
      h('div', { class: 'stats' },
        big('in use', num(a.machines_used), 'nodes with at least one task', 'stat-used'),
        big('lower bound', num(a.lower_bound), 'fewest machines the requests fit on', 'stat-lower'),
        big('needed', num(a.machines_needed), 'in use plus room for waiting tasks', 'stat-needed'),
        big('up', num(a.nodes_up), 'registered and heartbeating', 'stat-up')),
      h('p', {},
        `Counted in ${shape}. The lower bound is, over CPU and memory, the sum of the tasks' requests divided by one machine's capacity, rounded up: `,
        num(a.machines_used) > num(a.lower_bound)
          ? `${num(a.machines_used) - num(a.lower_bound)} machine(s) above it (fragmentation, spreading, or the spare).`
          : 'the work is packed as tightly as its requests allow.'),
      h('ul', {},
        h('li', {}, removable.length ? `Could be removed: ${removable.join(', ')}.` : 'No machine could be removed now.'),
        num(a.add) ? h('li', {}, `Add ${num(a.add)} machine(s) for the tasks waiting for room.`) : null,
        num(a.unfittable) ? h('li', {}, `${num(a.unfittable)} waiting task(s) fit no machine of that shape.`) : null,
        h('li', {}, p.configured ? `Node provider: configured${p.last_call ? `, last call ${p.last_call.action} ${(p.last_call.args || []).join(' ')}: ${p.last_call.outcome}` : ', not called yet'}.`
          : 'Node provider: none (fathom server --node-provider-cmd); the report is advice only.'),
        h('li', { class: 'muted' }, `Report computed ${age(a.computed_at)} ago.`))));
  }

  function totals() {
    const up = nodes.filter((n) => stateName(n.state) === 'up');
    const sum = (f) => up.reduce((s, n) => s + num(n[f]), 0);
    return {
      up: up.length,
      cpu: { cap: sum('cpu_cores'), req: sum('cpu_requested_cores'), used: sum('task_cpu_used_cores') },
      mem: { cap: sum('memory_bytes'), req: sum('memory_requested_bytes'), used: sum('task_memory_used_bytes') },
    };
  }

  function drawSlack() {
    const t = totals();
    const row = (name, x, f) => h('tr', {},
      h('th', { scope: 'row' }, name),
      h('td', { class: 'num' }, f(x.cap)),
      h('td', { class: 'num' }, f(x.req)),
      h('td', { class: 'num' }, f(x.used)),
      h('td', { class: 'num' }, `${f(Math.max(0, x.cap - x.req))} (${pct(x.cap > 0 ? (x.cap - x.req) / x.cap : NaN)})`),
      h('td', { class: 'num' }, x.used > x.req
        ? `none: tasks use ${f(x.used - x.req)} more than they request`
        : `${f(x.req - x.used)} (${pct(x.req > 0 ? (x.req - x.used) / x.req : NaN)})`));
    put(slack, h('div', {},
      table('Slack over the nodes that are up', ['Resource', 'Capacity', 'Requested', 'Used by tasks', 'Room to place (capacity − requested)', 'Reserved but idle (requested − used)'],
        [row('CPU (cores)', t.cpu, cores), row('Memory', t.mem, bytes)], { id: 'slack-table' }),
      h('div', { class: 'gauges' },
        h('p', {}, h('strong', {}, 'CPU '), bar(t.cpu.used, t.cpu.req, t.cpu.cap, cores)),
        h('p', {}, h('strong', {}, 'Memory '), bar(t.mem.used, t.mem.req, t.mem.cap, bytes)))));
  }

  async function drawCharts() {
    const end = new Date();
    const start = new Date(end.getTime() - HOUR * 1000);
    const step = 15;
    const q = {
      used: 'max(fathom_scheduler_machines_used)',
      lower: 'max(fathom_scheduler_machines_lower_bound)',
      needed: 'max(fathom_scheduler_machines_needed)',
      cpuCap: 'sum(fathom_node_cpu_capacity_cores)',
      cpuReq: 'sum(max by (task) (fathom_task_cpu_request_cores))',
      cpuUse: 'sum(rate(fathom_task_cpu_usage_seconds_total[1m]))',
      memCap: 'sum(fathom_node_memory_capacity_bytes)',
      memReq: 'sum(max by (task) (fathom_task_memory_request_bytes))',
      memUse: 'sum(max by (task) (fathom_task_memory_working_set_bytes))',
    };
    let r;
    try {
      const keys = Object.keys(q);
      const out = await Promise.all(keys.map((k) => rangeQuery(q[k], start, end, step, signal)));
      r = Object.fromEntries(keys.map((k, i) => [k, out[i][0]?.values || []]));
    } catch (e) {
      if (e.name === 'AbortError') return;
      machinesChart.replaceChildren(h('p', { class: 'error' }, `Charts unavailable: ${e.message}`));
      return;
    }
    // A young cluster's samples fill the charts, not their last pixels.
    const first = Math.min(...Object.values(r).map((v) => (v.length ? v[0][0] : Infinity)));
    const t0 = Math.max(start.getTime(), Number.isFinite(first) ? first - 60e3 : 0), t1 = end.getTime();
    const count = (v) => String(Math.round(v * 10) / 10);
    machinesChart.replaceChildren(lineChart({
      id: 'machines-chart', title: 'Machines, last hour', start: t0, end: t1, fmt: count,
      series: [
        { name: 'in use', kind: 'usage', points: r.used },
        { name: 'needed', kind: 'peak', points: r.needed },
        { name: 'lower bound', kind: 'request', points: r.lower },
      ],
    }));
    slackCharts.replaceChildren(
      lineChart({
        id: 'cluster-cpu', title: 'Cluster CPU (cores), last hour', start: t0, end: t1, fmt: cores,
        series: [
          { name: 'used by tasks', kind: 'usage', points: r.cpuUse },
          { name: 'requested', kind: 'request', points: r.cpuReq },
          { name: 'capacity', kind: 'limit', points: r.cpuCap },
        ],
      }),
      lineChart({
        id: 'cluster-mem', title: 'Cluster memory, last hour', start: t0, end: t1, fmt: bytes, bytes: true,
        series: [
          { name: 'used by tasks', kind: 'usage', points: r.memUse },
          { name: 'requested', kind: 'request', points: r.memReq },
          { name: 'capacity', kind: 'limit', points: r.memCap },
        ],
      }));
  }

  // What each running job was first given (its hint, or the cold-start
  // size when it had none: the oldest request sample of each task still
  // running, within 24 h) against what it has learned now, and its use.
  async function drawSaved() {
    const live = 'and on (task) max by (task) (fathom_task_cpu_request_cores)';
    const perTask = (m) => `max by (namespace, job_name, task) (${m})`;
    const q = {
      cpuFirst: `sum by (namespace, job_name) (${perTask('first_over_time(fathom_task_cpu_request_cores[24h])')} ${live})`,
      cpuNow: `sum by (namespace, job_name) (${perTask('fathom_task_cpu_request_cores')})`,
      cpuUse: `sum by (namespace, job_name) (${perTask('rate(fathom_task_cpu_usage_seconds_total[1m])')})`,
      memFirst: `sum by (namespace, job_name) (${perTask('first_over_time(fathom_task_memory_request_bytes[24h])')} ${live})`,
      memNow: `sum by (namespace, job_name) (${perTask('fathom_task_memory_request_bytes')})`,
      memUse: `sum by (namespace, job_name) (${perTask('fathom_task_memory_working_set_bytes')})`,
      tasks: `count by (namespace, job_name) (${perTask('fathom_task_cpu_request_cores')})`,
    };
    let res, jobs;
    try {
      const keys = Object.keys(q);
      const [out, j] = await Promise.all([Promise.all(keys.map((k) => instantQuery(q[k], signal))), getJSON('/v1/jobs', { state: 'active' }, { signal })]);
      res = Object.fromEntries(keys.map((k, i) => [k, out[i]]));
      jobs = j.jobs || [];
    } catch (e) {
      if (e.name === 'AbortError') return;
      put(saved, h('p', { class: 'error' }, `Right-sizing figures unavailable: ${e.message}`));
      return;
    }
    const key = (m) => `${m.namespace}/${m.job_name}`;
    const rows = new Map();
    for (const [k, list] of Object.entries(res)) {
      for (const s of list) {
        const r = rows.get(key(s.metric)) || { ns: s.metric.namespace, name: s.metric.job_name };
        r[k] = s.value;
        rows.set(key(s.metric), r);
      }
    }
    const byName = new Map(jobs.map((j) => [`${j.namespace}/${j.name}`, j]));
    const list = [...rows.values()].filter((r) => r.tasks > 0).sort((a, b) => (num(b.memFirst) - num(b.memNow)) - (num(a.memFirst) - num(a.memNow)));
    if (list.length === 0) {
      put(saved, h('p', { class: 'muted' }, 'No running task has pushed usage yet.'));
      return;
    }
    const tot = (k) => list.reduce((s, r) => s + num(r[k]), 0);
    const T = { cpuFirst: tot('cpuFirst'), cpuNow: tot('cpuNow'), memFirst: tot('memFirst'), memNow: tot('memNow'), cpuUse: tot('cpuUse'), memUse: tot('memUse') };
    const frac = (a, b) => (a > 0 ? pct((a - b) / a) : '-');
    const shape = report && num(report.node_memory_bytes) ? { cpu: num(report.node_cpu_cores), mem: num(report.node_memory_bytes) } : null;
    const machinesFreed = shape ? Math.max((T.cpuFirst - T.cpuNow) / shape.cpu, (T.memFirst - T.memNow) / shape.mem) : NaN;
    put(saved, h('div', {},
      h('p', { id: 'saved-summary' },
        `Running tasks were first given ${cores(T.cpuFirst)} cores and ${bytes(T.memFirst)}; they now request `,
        h('strong', {}, `${cores(T.cpuNow)} cores and ${bytes(T.memNow)}`),
        ` (${frac(T.cpuFirst, T.cpuNow)} less CPU, ${frac(T.memFirst, T.memNow)} less memory) and use ${cores(T.cpuUse)} cores and ${bytes(T.memUse)}.`,
        Number.isFinite(machinesFreed) && machinesFreed > 0 ? ` That is about ${machinesFreed.toFixed(2)} machine(s) of the common shape.` : ''),
      table('What right-sizing saved per job: first size (hint or cold start) against the learned request now, and use',
        ['Job', 'Tasks', 'First given', 'CPU first → now (cores)', 'CPU saved', 'CPU used', 'Memory first → now', 'Memory saved', 'Memory used'],
        list.map((r) => {
          const j = byName.get(`${r.ns}/${r.name}`);
          const hinted = j && (num(j.cpu_hint_cores) || num(j.memory_hint_bytes));
          return h('tr', {},
            h('th', { scope: 'row' }, j ? h('a', { href: `/jobs/${encodeURIComponent(j.id)}` }, `${r.ns}/${r.name}`) : `${r.ns}/${r.name}`),
            h('td', { class: 'num' }, num(r.tasks)),
            h('td', {}, hinted ? 'hint' : 'cold start'),
            h('td', { class: 'num' }, `${cores(r.cpuFirst)} → ${cores(r.cpuNow)}`),
            h('td', { class: 'num' }, signed(num(r.cpuFirst) - num(r.cpuNow), cores)),
            h('td', { class: 'num' }, cores(r.cpuUse)),
            h('td', { class: 'num' }, `${bytes(r.memFirst)} → ${bytes(r.memNow)}`),
            h('td', { class: 'num' }, signed(num(r.memFirst) - num(r.memNow), bytes)),
            h('td', { class: 'num' }, bytes(r.memUse)));
        }), { id: 'saved-table' }),
      h('p', { class: 'muted small' }, '"First given" is each running task\'s oldest request sample within 24 h: its hint when the job gave sizes, else the cold-start size. A negative saving means right-sizing raised the request because the task used more.')));
  }

  async function drawRisk() {
    const q = {
      cpuPeak: 'max_over_time((sum by (node) (rate(fathom_task_cpu_usage_seconds_total[1m])))[1h:30s])',
      memPeak: 'max_over_time((sum by (node) (max by (node, task) (fathom_task_memory_working_set_bytes)))[1h:30s])',
      ooms: 'sum by (namespace, job_name) (increase(fathom_task_oom_kills_total[1h])) > 0',
    };
    let res;
    try {
      const keys = Object.keys(q);
      const out = await Promise.all(keys.map((k) => instantQuery(q[k], signal)));
      res = Object.fromEntries(keys.map((k, i) => [k, out[i]]));
    } catch (e) {
      if (e.name === 'AbortError') return;
      put(risk, h('p', { class: 'error' }, `Overload figures unavailable: ${e.message}`));
      return;
    }
    const peak = (list, node) => list.find((s) => s.metric.node === node)?.value || 0;
    const up = nodes.filter((n) => stateName(n.state) === 'up');
    put(risk, h('div', {},
      h('p', {}, 'The scheduler packs tasks on their predicted sizes so that the chance a node\'s summed usage exceeds its capacity stays under the overload risk ε it runs with (fathom server --overload-risk, 0.001 by default); prod tasks\' limits always fit. What happened:'),
      table('Overload risk per node: requested share of capacity, and the peak use of its tasks in the last hour', ['Node', 'CPU requested / capacity', 'CPU peak use, 1 h', 'Memory requested / capacity', 'Memory peak use, 1 h', 'Memory pressure'],
        up.map((n) => {
          const cp = peak(res.cpuPeak, n.name), mp = peak(res.memPeak, n.name);
          const hot = (x) => (x >= 0.9 ? 'hot' : '');
          return h('tr', {},
            h('th', { scope: 'row' }, n.name),
            h('td', { class: 'num' }, pct(num(n.cpu_cores) ? num(n.cpu_requested_cores) / num(n.cpu_cores) : NaN)),
            h('td', { class: `num ${hot(cp / num(n.cpu_cores))}` }, `${cores(cp)} (${pct(num(n.cpu_cores) ? cp / num(n.cpu_cores) : NaN)})`),
            h('td', { class: 'num' }, pct(num(n.memory_bytes) ? num(n.memory_requested_bytes) / num(n.memory_bytes) : NaN)),
            h('td', { class: `num ${hot(mp / num(n.memory_bytes))}` }, `${bytes(mp)} (${pct(num(n.memory_bytes) ? mp / num(n.memory_bytes) : NaN)})`),
            h('td', {}, n.memory_pressure ? 'yes' : 'no'));
        }), { id: 'risk-table' }),
      res.ooms.length
        ? h('p', { class: 'error' }, 'OOM kills in the last hour: ', res.ooms.map((s) => `${s.metric.namespace}/${s.metric.job_name} ${Math.round(s.value)}`).join(', '), '.')
        : h('p', {}, 'No OOM kill in the last hour.')));
  }

  await loadNodes();
  const t = setInterval(loadNodes, 10000);
  signal.addEventListener('abort', () => clearInterval(t), { once: true });
  every(30000, signal, () => { drawCharts(); drawSaved(); drawRisk(); });
}
