// A small DOM builder: h('a', {href: '/x', class: 'y'}, 'text', child...).
// Text always goes in as text nodes, never as HTML, so nothing the API
// returns can inject markup.

export function h(tag, attrs, ...children) {
  const el = document.createElementNS(tag === 'svg' || svgTags.has(tag) ? SVG : HTML, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v); // CSSOM: allowed by the CSP, unlike style=
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const HTML = 'http://www.w3.org/1999/xhtml';
const SVG = 'http://www.w3.org/2000/svg';
const svgTags = new Set(['g', 'path', 'line', 'text', 'rect', 'circle', 'title', 'desc', 'polyline']);

// swap replaces old with fresh, keeping which <details> were open and which
// control had the focus (matched by data-key), so live updates do not undo
// what the person was doing.
export function swap(old, fresh) {
  if (!old || !old.parentNode) return fresh;
  const open = new Set([...old.querySelectorAll('details[open][data-key]')].map((d) => d.dataset.key));
  const active = document.activeElement;
  const focusKey = active && old.contains(active) ? active.dataset.key : undefined;
  for (const d of fresh.querySelectorAll('details[data-key]')) if (open.has(d.dataset.key)) d.open = true;
  old.replaceWith(fresh);
  if (focusKey) fresh.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
  return fresh;
}

// put shows fresh as container's content, through swap when there is one.
export function put(container, fresh) {
  if (container.firstChild) swap(container.firstChild, fresh);
  else container.append(fresh);
}

export function badge(state) {
  const kind = String(state).split(/[\s,]+/)[0]; // "up, cordoned" is an up node
  return h('span', { class: `badge s-${kind}` }, state);
}

// section is a titled region: h2 with an id the region is labelled by.
export function section(id, title, ...children) {
  return h('section', { class: 'card', 'aria-labelledby': id + '-h' }, h('h2', { id: id + '-h' }, title), ...children);
}

export function table(caption, headers, rows, attrs = {}) {
  return h('table', attrs,
    h('caption', { class: 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows));
}

// throttle runs f at most once per ms, with the latest call's effect.
export function throttle(f, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; f(); }, ms);
  };
}

// every calls f now and then every ms until signal aborts.
export function every(ms, signal, f) {
  f();
  const t = setInterval(f, ms);
  signal.addEventListener('abort', () => clearInterval(t), { once: true });
}
