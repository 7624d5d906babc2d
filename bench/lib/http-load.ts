/**
 * The HTTP side of the load: POSTs at a fixed concurrency over keep-alive connections, and
 * timed GETs. Uses node:http directly (no new dependency); one client process.
 */
import http from 'node:http';

export interface HttpResult {
  status: number;
  body: string;
  ms: number;
}

export function keepAliveAgent(sockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
}

export function request(
  agent: http.Agent,
  url: string,
  method: 'GET' | 'POST',
  body?: string,
): Promise<HttpResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = {};
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = http.request(url, { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString(),
          ms: performance.now() - started,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface PostLoadOptions {
  baseUrl: string;
  /** several servers: each POST goes to the next in turn (instead of baseUrl) */
  baseUrls?: string[];
  type: string;
  endpoints: string[];
  concurrency: number;
  /** stop after this many tasks … */
  count?: number;
  /** … or after this long, whichever comes first */
  durationMs?: number;
  /** identifiers are `<idPrefix>-<n>` */
  idPrefix: string;
  onProgress?: (done: number) => void;
}

export interface PostLoadResult {
  /** answered 201/200 */
  accepted: number;
  sent: number;
  created: number;
  /** non-2xx answers and transport errors, by status ("ERR" for transport errors) */
  errors: Record<string, number>;
  latenciesMs: number[];
  /** first request sent → last answer received */
  elapsedMs: number;
  firstError: string | null;
}

/** Keep `concurrency` POSTs in flight until `count` were sent or `durationMs` passed. */
export async function postLoad(options: PostLoadOptions): Promise<PostLoadResult> {
  const agent = keepAliveAgent(options.concurrency);
  const urls = (options.baseUrls ?? [options.baseUrl]).map((base) => `${base}/${options.type}`);
  const limit = options.count ?? Number.POSITIVE_INFINITY;
  const result: PostLoadResult = {
    accepted: 0,
    sent: 0,
    created: 0,
    errors: {},
    latenciesMs: [],
    elapsedMs: 0,
    firstError: null,
  };
  let issued = 0;
  const started = performance.now();
  const stopAt = started + (options.durationMs ?? Number.POSITIVE_INFINITY);
  const worker = async (): Promise<void> => {
    while (issued < limit && performance.now() < stopAt) {
      const n = issued;
      issued += 1;
      const body = JSON.stringify({
        identifier: `${options.idPrefix}-${n}`,
        payload: { n, note: 'bench' },
        endpoints: options.endpoints,
      });
      try {
        const res = await request(agent, urls[n % urls.length] as string, 'POST', body);
        result.latenciesMs.push(res.ms);
        if (res.status === 201 || res.status === 200) {
          result.accepted += 1;
          const status = (JSON.parse(res.body) as { status?: string }).status;
          if (status === 'SENT') result.sent += 1;
          else if (status === 'CREATED') result.created += 1;
        } else {
          result.errors[String(res.status)] = (result.errors[String(res.status)] ?? 0) + 1;
          result.firstError ??= `${res.status} ${res.body.slice(0, 300)}`;
        }
      } catch (err) {
        result.errors.ERR = (result.errors.ERR ?? 0) + 1;
        result.firstError ??= String(err);
      }
      const done = result.latenciesMs.length + (result.errors.ERR ?? 0);
      if (done % 1000 === 0) options.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, () => worker()));
  result.elapsedMs = performance.now() - started;
  agent.destroy();
  return result;
}

/** `count` sequential GETs of one URL: their latencies and the body size (fails on a non-200). */
export async function timedGets(
  url: string,
  count: number,
): Promise<{ samples: number[]; bytes: number }> {
  const agent = keepAliveAgent(1);
  const samples: number[] = [];
  let bytes = 0;
  try {
    for (let i = 0; i < count; i += 1) {
      const res = await request(agent, url, 'GET');
      if (res.status !== 200)
        throw new Error(`GET ${url}: ${res.status} ${res.body.slice(0, 300)}`);
      samples.push(res.ms);
      bytes = Buffer.byteLength(res.body);
    }
  } finally {
    agent.destroy();
  }
  return { samples, bytes };
}

export function endpointNames(count: number, stem = 'e'): string[] {
  return Array.from({ length: count }, (_, i) => `${stem}${i + 1}`);
}
