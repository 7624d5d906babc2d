/**
 * End to end with real processes: the built `tasker server` and two `tasker agent`s, driven
 * with the seed README's curl commands, unchanged but for the port.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uniqueName, MYSQL_ROOT } from '../support/services';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';
import { freePort } from '../support/ports';
import {
  ROOT,
  assertBuilt,
  childEnv,
  runCli,
  startCli,
  waitForHttp,
  type Child,
} from '../support/child-processes';
import { SEED_IDENTIFIER, curlApi } from '../support/curl';

jest.setTimeout(60_000);

let stack: TestStack;
let port: number;
let server: Child;
const agents: Child[] = [];
let handlersDir: string;

const { postTestdata, post: curlPost, get: getTask, terminal } = curlApi(() => port);

beforeAll(async () => {
  assertBuilt();
  stack = await createTestStack({
    set: ['task_types.worker.wait_for_endpoints_timeout=4s', 'server.sweep_interval=250ms'],
  });
  port = await freePort();
  handlersDir = mkdtempSync(join(tmpdir(), 'tasker-handlers-'));
  // An operator's handler: plain JavaScript, dropped in a directory, no build.
  writeFileSync(
    join(handlersDir, 'hello.js'),
    `exports.handle_task = async function (task, response, ctx) {
  response.payload = { greeting: 'hello ' + task.payload.name, endpoint: ctx.endpoint };
  return response;
};
`,
  );
  const types = ['--types', 'worker,backup,hello'];
  server = startCli(['server', ...stack.cliFlags, ...types, '--port', String(port)]);
  await waitForHttp(`http://127.0.0.1:${port}/readyz`, server);
  for (const endpoint of ['console1', 'console2']) {
    const agent = startCli(
      [
        'agent',
        ...stack.cliFlags,
        ...types,
        '--endpoint',
        endpoint,
        '--handlers',
        `${handlersDir},${join(ROOT, 'dist', 'handlers')}`,
        '--log-level',
        'info',
      ],
      childEnv({ WORKER_SECONDS: '1' }),
    );
    agents.push(agent);
    await agent.waitForOutput('agent consuming');
  }
});

afterAll(async () => {
  for (const agent of agents) await agent.stop();
  await server?.stop();
  await stack?.cleanup();
  rmSync(handlersDir, { recursive: true, force: true });
});

it('answers the seed curl POST with the task, status SENT', async () => {
  const created = await postTestdata('worker');
  expect(created).toMatchObject({
    status: 'SENT',
    endpoints: ['console1', 'console2'],
    identifier: SEED_IDENTIFIER,
    type: 'worker',
    payload: { foo: 'bar' },
  });
  expect(typeof created.id).toBe('number');
  expect(typeof created.start_time).toBe('string');
});

it('answers the seed curl GET with DONE and both endpoints responses once they finished', async () => {
  const done = await terminal('worker', SEED_IDENTIFIER);
  expect(done.task.status).toBe('DONE');
  expect(done.taskResponseList.map((r) => r.endpoint).sort()).toEqual(['console1', 'console2']);
  for (const r of done.taskResponseList) {
    expect(r).toMatchObject({
      status: 'DONE',
      errnr: 0,
      errmsg: null,
      payload: { yiya: 'yippie', yeah: 1234123 },
    });
    expect(r.agent?.pid).toEqual(expect.any(Number));
  }
});

it('reports the backup handler failure per endpoint and the task FAILED', async () => {
  await curlPost('backup', { identifier: 'b1', endpoints: ['console1', 'console2'] });
  const done = await terminal('backup', 'b1');
  expect(done.task.status).toBe('FAILED');
  expect(done.taskResponseList.map((r) => [r.status, r.errnr, r.errmsg])).toEqual([
    ['FAILED', 32, 'could not backup!'],
    ['FAILED', 32, 'could not backup!'],
  ]);
});

it('marks the task INCOMPLETE when a listed endpoint has no agent', async () => {
  await curlPost('worker', {
    identifier: 'i1',
    payload: { seconds: 0 },
    endpoints: ['console1', 'console3'],
  });
  const done = await terminal('worker', 'i1');
  expect(done.task.status).toBe('INCOMPLETE');
  expect(Object.fromEntries(done.taskResponseList.map((r) => [r.endpoint, r.status]))).toEqual({
    console1: 'DONE',
    console3: 'UNDELIVERED',
  });
});

it('runs a plain .js handler dropped into the handlers directory', async () => {
  await curlPost('hello', {
    identifier: 'h1',
    payload: { name: 'world' },
    endpoints: ['console2'],
  });
  const done = await terminal('hello', 'h1');
  expect(done.task.status).toBe('DONE');
  expect(done.taskResponseList[0]?.payload).toEqual({
    greeting: 'hello world',
    endpoint: 'console2',
  });
});

it('lets an agent finish its running task on SIGTERM before it exits', async () => {
  await curlPost('worker', {
    identifier: 'drain-1',
    payload: { seconds: 5 },
    endpoints: ['console1'],
  });
  const agent = agents[0] as Child;
  await waitFor(
    () => getTask('worker', 'drain-1'),
    (t) => t.taskResponseList[0]?.status === 'RUNNING',
    5000,
    'drain-1 running',
  );
  expect(await agent.stop('SIGTERM')).toBe(0);
  const done = await terminal('worker', 'drain-1');
  expect(done.taskResponseList[0]).toMatchObject({ status: 'DONE', attempt: 1 });
});

it('installs, lists and rolls back the schema with tasker migrate', async () => {
  const dbName = uniqueName('tasker_m_');
  const flags = ['--mode', 'test', '--database-url', `${MYSQL_ROOT}/${dbName}`];
  try {
    const install = await runCli(['migrate', ...flags]);
    expect(install.code).toBe(0);
    expect(install.output).toMatch(/applied: .*create_tasks/);
    const status = await runCli(['migrate', '--status', ...flags]);
    expect(JSON.parse(status.output)).toMatchObject({ pending: [] });
    const rollback = await runCli(['migrate', '--rollback', '--all', ...flags]);
    expect(rollback.output).toMatch(/rolled back: .*create_outbox/);
    const after = await runCli(['migrate', '--status', ...flags]);
    expect(JSON.parse(after.output)).toMatchObject({ applied: [] });
  } finally {
    await stack.db.raw(`DROP DATABASE IF EXISTS \`${dbName}\``);
  }
});

it('refuses to start with a bad config value and names the key', async () => {
  const result = await runCli(['server', '--mode', 'test', '--port', 'eighty']);
  expect(result.code).toBe(1);
  expect(result.output).toMatch(/api\.port/);
});

it('refuses a second agent process for an endpoint on the same state directory', async () => {
  // console2's agent is running with this stack's agent.state_dir
  const second = await runCli([
    'agent',
    ...stack.cliFlags,
    '--types',
    'worker,backup,hello',
    '--endpoint',
    'console2',
    '--handlers',
    `${handlersDir},${join(ROOT, 'dist', 'handlers')}`,
  ]);
  expect(second.code).not.toBe(0);
  expect(second.output).toMatch(/another agent process is using the state directory .*console2/);
  expect(second.output).not.toMatch(/^\s+at /m);
});

it('runs 12 handlers at once in one agent without a listener-leak warning', async () => {
  // every running handler listens to the agent's shutdown signal; Node warns past 10
  const wide = 12;
  const agent = startCli([
    'agent',
    ...stack.cliFlags,
    '--types',
    'worker,backup,hello',
    '--endpoint',
    'wide',
    '--handlers',
    `${handlersDir},${join(ROOT, 'dist', 'handlers')}`,
    '--concurrency',
    String(wide),
    '--log-level',
    'info',
  ]);
  agents.push(agent);
  await agent.waitForOutput('agent consuming');
  // posted together, each running long enough for the rest to start on a busy machine
  await Promise.all(
    Array.from({ length: wide }, (_, i) =>
      curlPost('worker', {
        identifier: `wide-${i + 1}`,
        payload: { seconds: 6 },
        endpoints: ['wide'],
      }),
    ),
  );
  const rows = [];
  for (let i = 1; i <= wide; i += 1) {
    const [row] = (await terminal('worker', `wide-${i}`)).taskResponseList;
    rows.push(row);
  }
  expect(rows.map((row) => row?.status)).toEqual(Array.from({ length: wide }, () => 'DONE'));
  // all twelve ran at once: the last one started before the first one finished
  const lastStart = Math.max(...rows.map((row) => Date.parse(String(row?.start_time))));
  const firstFinish = Math.min(...rows.map((row) => Date.parse(String(row?.finished_at))));
  expect(lastStart).toBeLessThan(firstFinish);
  expect(agent.output()).not.toMatch(/MaxListenersExceededWarning/);
});

it('drains and exits 0 on SIGTERM, and a second server picks up where it left off', async () => {
  const started = Date.now();
  expect(await server.stop('SIGTERM')).toBe(0);
  expect(Date.now() - started).toBeLessThan(10_000);
  const types = ['--types', 'worker,backup,hello'];
  server = startCli(['server', ...stack.cliFlags, ...types, '--port', String(port)]);
  await waitForHttp(`http://127.0.0.1:${port}/readyz`, server);
  const again = await getTask('worker', SEED_IDENTIFIER);
  expect(again.task.status).toBe('DONE');
  await curlPost('worker', {
    identifier: 'after-restart',
    payload: { seconds: 0 },
    endpoints: ['console2'],
  });
  expect((await terminal('worker', 'after-restart')).task.status).toBe('DONE');
});
