/**
 * The server's HTTP API over fetch: the bearer token on every request, the API's errors as one
 * line naming the request, an unreachable server as one line naming the URL.
 */
import { ClientError } from './exit-codes';
import type { Connection } from './args';

/** plain requests give up after this long; event streams run as long as the task does */
const REQUEST_TIMEOUT_MS = 30_000;

/** The server answered with an error: `{"error": {"code", "message"}}`. */
export class ApiError extends ClientError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The server could not be reached, or the connection broke. */
export class ConnectionError extends ClientError {}

export interface Api {
  readonly url: string;
  get<T>(path: string, query?: Array<[string, string]>): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** an open event stream's body; the caller reads it until it ends or `signal` fires */
  stream(path: string, signal: AbortSignal): Promise<ReadableStream<Uint8Array>>;
}

/** `/<type>/<identifier>`, each part escaped */
export function taskPath(type: string, identifier: string, ...more: string[]): string {
  return ['', type, identifier, ...more].map((part) => encodeURIComponent(part)).join('/');
}

export function connectApi(connection: Connection): Api {
  const headers = (extra: Record<string, string> = {}): Record<string, string> => ({
    accept: 'application/json',
    ...(connection.token === null ? {} : { authorization: `Bearer ${connection.token}` }),
    ...extra,
  });
  const call = async (
    method: string,
    path: string,
    init: { body?: string; signal?: AbortSignal; accept?: string },
  ): Promise<Response> => {
    const url = connection.url + path;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: headers({
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(init.accept === undefined ? {} : { accept: init.accept }),
        }),
        body: init.body,
        signal: init.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (thrown) {
      throw new ConnectionError(`cannot reach ${connection.url}: ${networkReason(thrown)}`, {
        cause: thrown,
      });
    }
    if (res.status >= 400) throw await apiError(method, path, res, connection);
    return res;
  };
  const readJson = async <T>(res: Response, method: string, path: string): Promise<T> => {
    try {
      return (await res.json()) as T;
    } catch (thrown) {
      throw new ConnectionError(
        `${method} ${path}: the answer is not JSON (is ${connection.url} a tasker server?)`,
        { cause: thrown },
      );
    }
  };
  return {
    url: connection.url,
    get: async <T>(path: string, query: Array<[string, string]> = []): Promise<T> => {
      const search = query.length === 0 ? '' : `?${new URLSearchParams(query).toString()}`;
      return readJson<T>(await call('GET', path + search, {}), 'GET', path);
    },
    post: async <T>(path: string, body?: unknown): Promise<{ status: number; body: T }> => {
      const res = await call('POST', path, {
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: await readJson<T>(res, 'POST', path) };
    },
    stream: async (path, signal) => {
      const res = await call('GET', path, { signal, accept: 'text/event-stream' });
      if (res.body === null) throw new ConnectionError(`GET ${path}: the answer has no body`);
      return res.body;
    },
  };
}

/** ECONNREFUSED and friends, in words */
function networkReason(thrown: unknown): string {
  const error = thrown as {
    name?: string;
    message?: string;
    cause?: { code?: string; message?: string };
  };
  if (error.name === 'TimeoutError') return `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`;
  switch (error.cause?.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is the server running? --url or TASKER_URL says where)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'no such host';
    case 'ECONNRESET':
      return 'the connection was reset';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'the connection timed out';
    default:
      return error.cause?.code ?? error.cause?.message ?? error.message ?? String(thrown);
  }
}

async function apiError(
  method: string,
  path: string,
  res: Response,
  connection: Connection,
): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let code = 'http_error';
  let message = text.trim().slice(0, 200) || res.statusText;
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (parsed.error?.code !== undefined) code = parsed.error.code;
    if (parsed.error?.message !== undefined) message = parsed.error.message;
  } catch {
    // not the API's JSON: a proxy's page, or not a tasker server
  }
  const hint =
    res.status === 401
      ? connection.token === null
        ? ' (the server needs a token: --token or TASKER_TOKEN)'
        : ' (the token given by --token or TASKER_TOKEN was refused)'
      : '';
  return new ApiError(
    res.status,
    code,
    `${method} ${path}: ${res.status} ${code}: ${message}${hint}`,
  );
}
