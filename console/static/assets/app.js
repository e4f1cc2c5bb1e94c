// The console's shell: routes, sign-in, the live-updates indicator and the
// notice line. Each page is a module under views/ exporting
// render(main, params, ctx), which builds the page into main and keeps it
// live until ctx.signal aborts (the next navigation).

import { APIError, clearToken, onAuthError, setToken, takeTokenFromFragment, token } from './api.js';
import { h } from './dom.js';

const routes = [
  [/^\/(?:jobs\/?)?$/, 'jobs', () => import('./views/jobs.js')],
  [/^\/jobs\/([^/]+)\/?$/, 'jobs', () => import('./views/job.js')],
  [/^\/tasks\/?$/, 'tasks', () => import('./views/tasks.js')],
  [/^\/nodes\/?$/, 'nodes', () => import('./views/nodes.js')],
  [/^\/cluster\/?$/, 'cluster', () => import('./views/cluster.js')],
];

const main = document.getElementById('main');
const notice = document.getElementById('notice');
const live = document.getElementById('live');
const signout = document.getElementById('signout');
let current = null; // AbortController of the page on screen
let loginShown = false;

function showNotice(text, kind = 'error') {
  notice.textContent = text;
  notice.className = `notice ${kind}`;
  notice.hidden = !text;
}

function setLive(state, detail) {
  const text = { live: 'Live', reconnecting: 'Reconnecting…', error: 'Updates stopped', off: '' }[state] ?? state;
  live.textContent = text;
  live.className = `live ${state}`;
  live.title = detail ? String(detail) : '';
}

export function navigate(path) {
  if (path !== location.pathname + location.search) history.pushState({}, '', path);
  route();
}

async function route() {
  current?.abort();
  current = new AbortController();
  const signal = current.signal;
  loginShown = false;
  showNotice('');
  setLive('off');
  signout.hidden = !token();
  const path = location.pathname;
  let match = null;
  for (const [re, nav, load] of routes) {
    const m = re.exec(path);
    if (m) { match = { nav, load, params: m.slice(1).map(decodeURIComponent) }; break; }
  }
  for (const a of document.querySelectorAll('nav a[data-nav]')) {
    if (match && a.dataset.nav === match.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!match) {
    main.replaceChildren(h('h1', { tabindex: '-1' }, 'Page not found'),
      h('p', {}, `Nothing lives at ${path}. `, h('a', { href: '/' }, 'Go to the jobs')));
    focusHeading();
    return;
  }
  try {
    const view = await match.load();
    if (signal.aborted) return;
    main.replaceChildren();
    await view.render(main, match.params, { signal, setLive, navigate, notice: showNotice });
    if (!signal.aborted && !loginShown) focusHeading();
  } catch (e) {
    if (signal.aborted || e.name === 'AbortError' || loginShown) return;
    if (e instanceof APIError && e.status === 403) return; // the auth handler said so
    main.replaceChildren(h('h1', { tabindex: '-1' }, 'Something went wrong'), h('p', { class: 'error' }, e.message));
    focusHeading();
  }
}

let focusedPath = '';
function focusHeading() {
  // Move the focus to the new page's heading on navigation (not on every
  // live update), so keyboard and screen-reader users land on it.
  if (focusedPath === location.pathname) return;
  focusedPath = location.pathname;
  const h1 = main.querySelector('h1');
  if (h1) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({ preventScroll: true });
  }
  document.title = (h1 ? h1.textContent + ' · ' : '') + 'Fathom';
}

function showLogin(message) {
  if (loginShown) return;
  loginShown = true;
  current?.abort();
  setLive('off');
  signout.hidden = true;
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false', 'aria-describedby': 'token-help' });
  const form = h('form', {
    class: 'login card', onsubmit: (ev) => {
      ev.preventDefault();
      setToken(input.value.trim());
      focusedPath = '';
      route();
    },
  },
  h('h1', { tabindex: '-1' }, 'Sign in'),
  message ? h('p', { class: 'error', role: 'alert' }, message) : null,
  h('label', { for: 'token' }, 'Access token'),
  input,
  h('p', { id: 'token-help', class: 'muted' },
    'A Fathom API token, e.g. the bootstrap token in <data-dir>/tokens/bootstrap or one from ',
    h('code', {}, 'fathom token create'), '. It is kept in this tab only (sessionStorage).'),
  h('button', { type: 'submit' }, 'Sign in'));
  main.replaceChildren(form);
  document.title = 'Sign in · Fathom';
  input.focus();
}

onAuthError((err) => {
  if (err.status === 401) {
    const had = token();
    clearToken();
    showLogin(had ? `The server refused that token: ${err.message}` : '');
  } else {
    showNotice(`Not allowed: ${err.message}`);
  }
});

signout.addEventListener('click', () => {
  clearToken();
  focusedPath = '';
  showLogin('Signed out.');
});

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[href]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || a.target || a.hasAttribute('download')) return;
  if (url.pathname.startsWith('/v1/') || url.pathname.startsWith('/api/') || url.pathname === '/metrics') return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', route);

takeTokenFromFragment();
route();
