// The console's only way to the control plane: the public REST API, the
// watch streams and PromQL, each call carrying the signed-in token.

const KEY = 'fathom.token';

// APIError is a failed call: status is the HTTP status (0 = no reply).
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'APIError';
    this.status = status;
  }
}

export function token() {
  try { return sessionStorage.getItem(KEY) || ''; } catch { return ''; }
}

export function setToken(t) {
  try { sessionStorage.setItem(KEY, t); } catch { /* storage off: the token lasts this page only */ }
  memo = t;
}

export function clearToken() {
  try { sessionStorage.removeItem(KEY); } catch { /* nothing stored */ }
  memo = '';
}

let memo = '';
function currentToken() { return token() || memo; }

// takeTokenFromFragment stores a token given as #token=SECRET and removes it
// from the address bar (and from history), keeping any other fragment.
// It returns whether the fragment carried one.
export function takeTokenFromFragment(loc = window.location, hist = window.history) {
  const raw = loc.hash.replace(/^#/, '');
  if (!raw) return false;
  const params = new URLSearchParams(raw);
  if (!params.has('token')) return false;
  const t = params.get('token');
  params.delete('token');
  if (t) setToken(t);
  const rest = params.toString();
  hist.replaceState(hist.state, '', loc.pathname + loc.search + (rest ? '#' + rest : ''));
  return Boolean(t);
}

// Every 401 and 403 goes to one handler (the app shows the login form or a
// "not allowed" notice).
let authHandler = () => {};
export function onAuthError(f) { authHandler = f; }

function urlOf(path, query) {
  const u = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

// grpc-gateway error codes (google.rpc.Code) to HTTP, for errors that arrive
// inside a stream after its 200.
const grpcToHTTP = { 3: 400, 5: 404, 6: 409, 7: 403, 9: 400, 12: 501, 14: 503, 16: 401 };

async function errorOf(resp) {
  let msg = resp.statusText || `HTTP ${resp.status}`;
  let text = '';
  try {
    text = await resp.text();
    const j = JSON.parse(text);
    msg = j.message || (j.error && (j.error.message || j.error)) || msg;
  } catch {
    if (text.trim()) msg = text.trim();
  }
  return new APIError(resp.status, String(msg));
}

// request sends one call and returns the Response of a 2xx; anything else
// throws an APIError (401 and 403 also reach the auth handler).
export async function request(path, { method = 'GET', query, body, signal, accept = 'application/json' } = {}) {
  const headers = { Accept: accept };
  const t = currentToken();
  if (t) headers.Authorization = 'Bearer ' + t;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(urlOf(path, query), { method, headers, body: payload, signal, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new APIError(0, `cannot reach the control plane: ${e.message}`);
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (err.status === 401 || err.status === 403) authHandler(err);
    throw err;
  }
  return resp;
}

export async function getJSON(path, query, opts = {}) {
  const resp = await request(path, { ...opts, query });
  return resp.json();
}

export async function del(path, opts = {}) {
  const resp = await request(path, { ...opts, method: 'DELETE' });
  return resp.json();
}

export async function getText(path, query, opts = {}) {
  const resp = await request(path, { ...opts, query, accept: 'text/plain' });
  return resp.text();
}

// splitLines feeds complete lines of a growing text to f and returns the
// unfinished rest.
export function splitLines(buf, f) {
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (line) f(line);
  }
  return buf;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// watch reads a grpc-gateway server stream (newline-delimited JSON, one
// {"result": {...}} per message, {"error": {...}} when it fails) and calls
// onEvent with each result. It reconnects with backoff until signal aborts;
// before each reconnect it calls onReset (the stream starts again with every
// existing object). onState gets 'reconnecting' or 'error' with the error;
// a 401, 403 or 404 ends the watch.
export function watch(path, query, { onEvent, onReset, onState, signal }) {
  (async () => {
    let delay = 500;
    while (!signal.aborted) {
      try {
        const resp = await request(path, { query, signal });
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true });
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf = splitLines(buf + value, (line) => {
            const msg = JSON.parse(line);
            if (msg.error) throw new APIError(grpcToHTTP[msg.error.code] || 500, msg.error.message || 'stream failed');
            if (msg.result) onEvent(msg.result);
          });
          delay = 500;
        }
      } catch (e) {
        if (signal.aborted || e.name === 'AbortError') return;
        if (e instanceof APIError && [401, 403, 404].includes(e.status)) {
          onState?.('error', e);
          return;
        }
        onState?.('reconnecting', e);
      }
      if (signal.aborted) return;
      onState?.('reconnecting');
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 10000);
      if (!signal.aborted) onReset?.();
    }
  })();
}

// rangeQuery runs PromQL over [start, end] (Date) with a step in seconds
// and returns the matrix: [{metric: {...}, values: [[t, v], ...]}] with t
// in ms and v a number.
export async function rangeQuery(query, start, end, step, signal) {
  const j = await getJSON('/api/v1/query_range', {
    query, start: (start.getTime() / 1000).toFixed(3), end: (end.getTime() / 1000).toFixed(3), step: String(step),
  }, { signal });
  return (j.data?.result || []).map((s) => ({ metric: s.metric, values: s.values.map(([t, v]) => [t * 1000, Number(v)]) }));
}

// instantQuery runs PromQL at now: [{metric, value}] with value a number.
export async function instantQuery(query, signal) {
  const j = await getJSON('/api/v1/query', { query }, { signal });
  return (j.data?.result || []).map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
}
