/**
 * The tasker API as the dashboard calls it: fetch() with the token in the Authorization header
 * (never in a URL, so it stays out of logs and history), and the Server-Sent Events streams read
 * through fetch() too, since EventSource cannot send a header. The token is kept in
 * sessionStorage: it lasts while the tab is open and is not shared with other tabs.
 */

const TOKEN_KEY = 'tasker.token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** The server answered with an error: `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** `/<type>/<identifier>/…`, each part escaped */
export function taskPath(type, identifier, ...more) {
  return [type, identifier, ...more].map((part) => encodeURIComponent(part)).join('/');
}

/**
 * An API at `base` (the server's root, relative to the page so that a proxy's path prefix
 * works). `onRefused` is told of every 401, before the call fails.
 */
export function createApi(base, onRefused) {
  const call = async (method, path, { body, signal, accept = 'application/json' } = {}) => {
    const headers = { accept };
    const presented = token.get();
    if (presented !== null) headers.authorization = `Bearer ${presented}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(new URL(path, base), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
    if (res.ok) return res;
    const error = await apiError(res);
    if (res.status === 401) onRefused(presented !== null);
    throw error;
  };
  return {
    get: async (path, signal) => (await call('GET', path, { signal })).json(),
    post: async (path, body) => (await call('POST', path, { body: body ?? {} })).json(),
    /** `open` once connected, then the stream's events as they come, until it ends */
    events: async function* (path, signal) {
      const res = await call('GET', path, { signal, accept: 'text/event-stream' });
      yield { event: 'open', data: null };
      yield* readEvents(res.body);
    },
  };
}

async function apiError(res) {
  const text = await res.text().catch(() => '');
  try {
    const { error } = JSON.parse(text);
    return new ApiError(res.status, error.code, error.message);
  } catch {
    return new ApiError(res.status, 'http_error', `${res.status} ${res.statusText}`);
  }
}

/** Server-Sent Events from a response body: `{event, data}` with `data` parsed as JSON. */
async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseEvent(block);
      if (event !== null) yield event;
    }
  }
}

function parseEvent(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue; // a comment: the server's keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return data.length === 0 ? null : { event, data: JSON.parse(data.join('\n')) };
}
