/**
 * The OpenAPI document against the server it describes, on the real database and broker: the
 * routes express serves and the document's paths are the same set, every operation is called,
 * and every answer (status, X-Request-Id, JSON body) is one the document describes. Bodies are
 * checked strictly: an object may hold no key its schema does not name.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { Express } from 'express';
import { createApp } from '../../src/api';
import type { AmqpBroker } from '../../src/broker';
import { ServerMetrics } from '../../src/metrics';
import { ChangeFeed, Intake, outboxPublishers } from '../../src/server';
import { recordHeartbeats } from '../../src/store';
import { newBroker, testLog } from '../support/in-process';
import { heartbeat } from '../support/messages';
import { createTestStack, type TestStack } from '../support/stack';

const TOKEN = 'openapi-test-token-0123456789';

type Json = Record<string, unknown>;
interface OpenApi {
  paths: Record<string, Record<string, { responses: Record<string, Json> }>>;
  components: { schemas: Record<string, Json> };
}

let stack: TestStack;
let broker: AmqpBroker;
let changes: ChangeFeed;
let app: Express;
let server: Server;
let base: string;
let doc: OpenApi;
const called = new Set<string>();

beforeAll(async () => {
  stack = await createTestStack({ set: [`api.tokens=${TOKEN}`] });
  broker = newBroker(stack.config, 'openapi-test');
  await broker.start();
  await broker.session.waitUntilConnected(5000);
  const { config, db } = stack;
  changes = new ChangeFeed(broker, testLog);
  await changes.start();
  const publish = outboxPublishers(broker, config.taskTypes);
  const metrics = new ServerMetrics({ defaultMetrics: false });
  app = createApp({
    db,
    broker,
    config,
    intake: new Intake({ db, broker, config, publish, log: testLog }),
    changes,
    log: testLog,
    metrics,
    scrapeMetrics: () => metrics.render(),
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const res = await fetch(`${base}/openapi.json`, { headers: auth });
  doc = (await res.json()) as OpenApi;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await changes?.close();
  await broker?.close();
  await stack?.cleanup();
});

const auth = { authorization: `Bearer ${TOKEN}` };

/** Every object that names its properties takes no others: the document must name each key. */
function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Json = Object.fromEntries(
    Object.entries(schema).map(([key, value]) => [key, strict(value)]),
  );
  if (out.properties !== undefined && out.additionalProperties === undefined) {
    out.additionalProperties = false;
  }
  return out;
}

const ajv = addFormats(new Ajv2020({ allErrors: true, strict: true }));
const validators = new Map<string, ValidateFunction>();

function validatorFor(schema: Json): ValidateFunction {
  const key = JSON.stringify(schema);
  let validate = validators.get(key);
  if (validate === undefined) {
    const local = (value: unknown): unknown =>
      JSON.parse(JSON.stringify(value).replaceAll('#/components/schemas/', '#/$defs/'));
    validate = ajv.compile({
      ...(strict(local(schema)) as Json),
      $defs: strict(local(doc.components.schemas)) as Json,
    });
    validators.set(key, validate);
  }
  return validate;
}

/** The document's path a request path falls under: a literal one before a templated one. */
function templateOf(path: string): string {
  const templates = Object.keys(doc.paths).sort(
    (a, b) => a.split('{').length - b.split('{').length,
  );
  const found = templates.find((template) =>
    new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path),
  );
  if (found === undefined) throw new Error(`no path of the document takes ${path}`);
  return found;
}

interface Answer {
  status: number;
  body: unknown;
  res: Response;
}

/**
 * Call the server and check the answer against the document: its status is one the operation
 * lists, it carries X-Request-Id, and its JSON is valid against the status's schema.
 */
async function call(
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string>; token?: boolean } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {
    ...(options.token === false ? {} : auth),
    ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
    ...options.headers,
  };
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const template = templateOf(new URL(path, base).pathname);
  const operation = doc.paths[template]?.[method.toLowerCase()];
  if (operation === undefined) throw new Error(`the document has no ${method} ${template}`);
  called.add(`${method.toLowerCase()} ${template}`);
  const described = operation.responses[String(res.status)];
  if (described === undefined) {
    throw new Error(`${method} ${path} answered ${res.status}, not in the document`);
  }
  expect(res.headers.get('x-request-id')).toEqual(expect.any(String));
  const type = res.headers.get('content-type') ?? '';
  const content = described.content as Record<string, { schema: Json }> | undefined;
  if (type.startsWith('text/event-stream')) {
    expect(content?.['text/event-stream']).toBeDefined();
    return { status: res.status, body: res.body, res };
  }
  const text = await res.text();
  if (content === undefined) {
    expect(text).toBe('');
    return { status: res.status, body: null, res };
  }
  const media = type.split(';')[0] as string;
  expect(Object.keys(content)).toContain(media);
  if (media !== 'application/json') return { status: res.status, body: text, res };
  const body: unknown = JSON.parse(text);
  const validate = validatorFor((content[media] as { schema: Json }).schema);
  if (!validate(body)) {
    throw new Error(
      `${method} ${path} ${res.status} does not match the document: ` +
        `${ajv.errorsText(validate.errors)}\n${JSON.stringify(body, null, 2)}`,
    );
  }
  return { status: res.status, body, res };
}

/** The first event of a stream, parsed, and the stream closed. */
async function firstEvent(answer: Answer): Promise<{ event: string; data: unknown }> {
  const reader = (answer.res.body as ReadableStream<Uint8Array>).getReader();
  let text = '';
  while (!text.includes('\n\n')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
  }
  await reader.cancel();
  const lines = text.split('\n');
  const field = (name: string): string =>
    (lines.find((line) => line.startsWith(`${name}: `)) ?? '').slice(name.length + 2);
  return { event: field('event'), data: JSON.parse(field('data') || 'null') };
}

/**
 * The web dashboard's routes (ui.ts: /ui's redirect to /ui/, and /ui/states.js, as express lists
 * a route of a router mounted at /ui): pages and files for a browser, not operations of the API
 * (docs/dashboard.md), so the document leaves them out.
 */
const DASHBOARD = ['get /ui', 'get /states.js'];

/** The routes express serves, as `method /openapi/{style}`. */
function routesOf(target: Express): string[] {
  interface Layer {
    route?: { path: string; methods: Record<string, boolean> };
    handle?: { stack?: Layer[] };
  }
  const walk = (stack: Layer[]): string[] =>
    stack.flatMap((layer) => {
      if (layer.route !== undefined) {
        const { path, methods } = layer.route;
        return Object.keys(methods).map((method) => `${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
      }
      return layer.handle?.stack === undefined ? [] : walk(layer.handle.stack);
    });
  return walk((target as unknown as { router: { stack: Layer[] } }).router.stack);
}

const operationsOf = (document: OpenApi): string[] =>
  Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.keys(methods).map((method) => `${method} ${path}`),
  );

it('describes exactly the routes the server serves', () => {
  const all = routesOf(app);
  expect(all).toEqual(expect.arrayContaining(DASHBOARD));
  const routes = all.filter((route) => !DASHBOARD.includes(route));
  expect(routes.length).toBeGreaterThan(20);
  expect([...operationsOf(doc)].sort()).toEqual([...new Set(routes)].sort());
});

it('is an OpenAPI 3.1 document whose schemas compile, naming the configured types', () => {
  expect(doc).toMatchObject({ openapi: '3.1.0', info: { title: 'tasker' } });
  for (const schema of Object.values(doc.components.schemas)) {
    expect(() => validatorFor(schema)).not.toThrow();
  }
  const post = doc.paths['/{type}']?.post as unknown as { parameters: Json[] };
  expect(post.parameters).toContainEqual(
    expect.objectContaining({ name: 'type', schema: { enum: ['worker', 'backup'] } }),
  );
});

it('answers health, readiness, metrics, the document and types as described', async () => {
  expect((await call('GET', '/healthz', { token: false })).status).toBe(200);
  expect((await call('GET', '/readyz', { token: false })).status).toBe(200);
  expect((await call('GET', '/openapi.json')).status).toBe(200);
  expect((await call('GET', '/openapi.json', { token: false })).status).toBe(401);
  expect((await call('GET', '/metrics')).body).toContain('# HELP');
  expect((await call('GET', '/types')).status).toBe(200);
  expect((await call('GET', '/types/worker')).status).toBe(200);
  expect((await call('GET', '/types/nope')).status).toBe(404);
});

it('answers the routes of a task as described', async () => {
  const task = { identifier: 'oa-1', payload: { n: 1 }, endpoints: ['oa-e1', 'oa-e2'] };
  expect((await call('POST', '/worker', { body: task })).status).toBe(201);
  expect((await call('POST', '/worker', { body: task })).status).toBe(200);
  expect((await call('POST', '/worker', { body: { ...task, payload: 2 } })).status).toBe(409);
  expect(
    (await call('POST', '/worker', { body: { identifier: 'oa-2', endpoints: [] } })).status,
  ).toBe(400);
  const selector = { identifier: 'oa-3', endpoints: { labels: { role: 'none' } } };
  expect((await call('POST', '/worker', { body: selector })).status).toBe(422);
  const notJson = await call('POST', '/worker', { headers: { 'content-type': 'text/plain' } });
  expect(notJson.status).toBe(415);

  const got = await call('GET', '/worker/oa-1');
  expect(got.status).toBe(200);
  const etag = got.res.headers.get('etag') as string;
  expect((await call('GET', '/worker/oa-1', { headers: { 'if-none-match': etag } })).status).toBe(
    304,
  );
  expect((await call('GET', '/worker/oa-1?wait=soon')).status).toBe(400);
  expect((await call('GET', '/worker/oa-404')).status).toBe(404);

  const watched = await firstEvent(await call('GET', '/worker/oa-1/events'));
  expect(watched.event).toBe('snapshot');
  expect(validatorFor({ $ref: '#/components/schemas/TaskWithResponses' })(watched.data)).toBe(true);

  expect((await call('GET', '/worker/oa-1/responses/oa-e1')).status).toBe(200);
  expect((await call('GET', '/worker/oa-1/responses/oa-e9')).status).toBe(404);

  const one = { endpoints: ['oa-e1'], reason: 'not needed' };
  expect((await call('POST', '/worker/oa-1/cancel', { body: one })).status).toBe(200);
  expect((await call('POST', '/worker/oa-1/retry')).status).toBe(409);
  expect((await call('POST', '/worker/oa-1/cancel')).status).toBe(200);
  const retried = await call('POST', '/worker/oa-1/retry', { body: { round: 1 } });
  expect(retried.body).toMatchObject({ round: 2 });

  const page = await call('GET', '/worker?limit=1');
  expect(page.body).toMatchObject({ tasks: [{ identifier: 'oa-1' }] });
  expect((await call('GET', '/tasks?type=worker&status=created,sent')).status).toBe(200);
  expect((await call('GET', '/tasks?status=BOGUS')).status).toBe(400);
  expect((await call('GET', '/tasks?type=nope')).status).toBe(404);

  const stream = await call('GET', '/events?type=worker');
  expect(stream.status).toBe(200);
  await (stream.res.body as ReadableStream).cancel();
  expect((await call('GET', '/events?colour=red')).status).toBe(400);
});

it('answers the routes of the fleet as described', async () => {
  await recordHeartbeats(stack.db, [
    heartbeat('oa-online', { interval_ms: 60_000 }),
    heartbeat('oa-gone', { phase: 'goodbye' }),
  ]);
  const list = await call('GET', '/endpoints?label=role=web');
  expect(list.body).toMatchObject({ summary: { total: 2 } });
  expect((await call('GET', '/endpoints?status=asleep')).status).toBe(400);
  expect((await call('GET', '/endpoints/oa-gone')).status).toBe(200);
  expect((await call('GET', '/endpoints/oa-e1')).body).toMatchObject({ registration: null });
  expect((await call('GET', '/endpoints/oa-nobody')).status).toBe(404);
  expect((await call('DELETE', '/endpoints/oa-online')).status).toBe(409);
  expect((await call('DELETE', '/endpoints/oa-gone')).status).toBe(204);
  expect((await call('DELETE', '/endpoints/oa-gone')).status).toBe(404);
});

it('answers the routes of schedules as described', async () => {
  const schedule = {
    name: 'oa-s',
    type: 'worker',
    every: '1h',
    endpoints: ['oa-e1'],
    backoff: { factor: 2, max: '4h' },
  };
  expect((await call('POST', '/schedules', { body: schedule })).status).toBe(201);
  expect((await call('POST', '/schedules', { body: schedule })).status).toBe(200);
  expect((await call('POST', '/schedules', { body: { ...schedule, every: '2h' } })).status).toBe(
    409,
  );
  expect((await call('POST', '/schedules', { body: { ...schedule, cron: 'x' } })).status).toBe(400);
  expect((await call('GET', '/schedules')).body).toMatchObject({ schedules: [{ name: 'oa-s' }] });
  expect((await call('GET', '/schedules/oa-s')).status).toBe(200);
  expect((await call('PATCH', '/schedules/oa-s', { body: { every: '2h' } })).body).toMatchObject({
    every_ms: 7_200_000,
  });
  expect((await call('POST', '/schedules/oa-s/pause')).body).toMatchObject({ paused: true });
  expect((await call('POST', '/schedules/oa-s/resume')).body).toMatchObject({ paused: false });
  expect((await call('DELETE', '/schedules/oa-s')).status).toBe(204);
  expect((await call('GET', '/schedules/oa-s')).status).toBe(404);
});

it('has called every operation of the document', () => {
  expect([...called].sort()).toEqual(operationsOf(doc).sort());
});
