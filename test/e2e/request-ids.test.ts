/**
 * Request ids and the server's log, from a real `tasker server` process on MariaDB and
 * RabbitMQ: every answer echoes its request's id (the client's when sane, else a new UUID),
 * every error body carries it, and the lines logged for the request (JSON, as stderr is no
 * terminal here) have it too.
 */
import { freePort } from '../support/ports';
import { assertBuilt, runCli, startCli, waitForHttp, type Child } from '../support/child-processes';
import { createTestStack, type TestStack } from '../support/stack';

let stack: TestStack;
let server: Child;
let url: string;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

beforeAll(async () => {
  assertBuilt();
  stack = await createTestStack();
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  server = startCli(['server', ...stack.cliFlags, '--port', String(port), '--log-level', 'debug']);
  await waitForHttp(`${url}/readyz`, server);
});

afterAll(async () => {
  await server?.stop();
  await stack?.cleanup();
});

async function call(
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; id: string | null; body: { error: Record<string, unknown> } }> {
  const res = await fetch(`${url}${path}`, init);
  return {
    status: res.status,
    id: res.headers.get('x-request-id'),
    body: (await res.json()) as { error: Record<string, unknown> },
  };
}

/** The server's JSON log records that carry `requestId`, once one of them was written. */
async function recordsOf(requestId: string): Promise<Array<Record<string, unknown>>> {
  await server.waitForOutput(`"request_id":"${requestId}"`);
  return server
    .output()
    .split('\n')
    .filter((line) => line.includes(`"request_id":"${requestId}"`))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

it('echoes a sane X-Request-Id and puts it in a 400 body and the request log line', async () => {
  const res = await call('/worker', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'client-42.a:b_c' },
    body: JSON.stringify({ identifier: 'x', endpoints: [] }),
  });
  expect(res.status).toBe(400);
  expect(res.id).toBe('client-42.a:b_c');
  expect(res.body.error).toMatchObject({ code: 'bad_request', request_id: 'client-42.a:b_c' });
  const [record] = await recordsOf('client-42.a:b_c');
  expect(record).toMatchObject({
    level: 'debug',
    msg: 'request',
    process: 'server',
    method: 'POST',
    path: '/worker',
    status: 400,
    request_id: 'client-42.a:b_c',
  });
  expect(new Date(record?.time as string).toISOString()).toBe(record?.time);
});

it('makes a UUID for a request without an id, or with one too long or unsafe, as in a 404', async () => {
  const unsafe = ['a b', 'x'.repeat(129), 'id\u00e9', 'semi;colon'];
  const answers = await Promise.all([
    call('/worker/no-such-task'),
    ...unsafe.map((id) => call('/worker/no-such-task', { headers: { 'x-request-id': id } })),
  ]);
  for (const res of answers) {
    expect(res.status).toBe(404);
    expect(res.id).toMatch(UUID);
    expect(res.body.error).toMatchObject({ code: 'task_not_found', request_id: res.id });
  }
  expect(new Set(answers.map((res) => res.id)).size).toBe(answers.length);
});

it('puts the id in a 500 body and in the logged failure with its error', async () => {
  // a table gone from under the server: GET /endpoints fails in a way no code maps
  await stack.db.schema.dropTable('endpoints');
  const res = await call('/endpoints', { headers: { 'x-request-id': 'broken-1' } });
  expect(res.status).toBe(500);
  expect(res.id).toBe('broken-1');
  expect(res.body.error).toEqual({
    code: 'internal',
    message: 'internal error; see the server log',
    request_id: 'broken-1',
  });
  const records = await recordsOf('broken-1');
  const failure = records.find((record) => record.msg === 'request failed');
  expect(failure).toMatchObject({
    level: 'error',
    method: 'GET',
    path: '/endpoints',
    request_id: 'broken-1',
    err: { message: expect.stringContaining('endpoints') },
  });
});

it('writes readable lines instead of JSON with --log-format pretty', async () => {
  const { code, output } = await runCli([
    'agent',
    ...stack.cliFlags,
    '--endpoint',
    'pretty1',
    '--burst',
    '--log-level',
    'info',
    '--log-format',
    'pretty',
  ]);
  expect(code).toBe(0);
  expect(output).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} INFO {2}agent consuming .*endpoint=pretty1/m);
  expect(output).not.toMatch(/^\{/m);
});
