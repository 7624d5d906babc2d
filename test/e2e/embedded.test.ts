/**
 * The embedded mode end to end: `tasker up --mode development` (what `npm start` runs) with no
 * MariaDB and no RabbitMQ involved, a SQLite file and the in-process broker, driven with the
 * seed README's curl commands, unchanged but for the port. Runs in an empty working directory,
 * as a fresh checkout would, and starts the stack twice on the same file.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/ports';
import { assertBuilt, childEnv, runCli, startCli, type Child } from '../support/child-processes';
import { SEED_IDENTIFIER, curlApi } from '../support/curl';

jest.setTimeout(60_000);

let workDir: string;
let port: number;
let stack: Child | null = null;

const { postTestdata, post: curlPost, get: getTask, terminal } = curlApi(() => port);

async function up(): Promise<Child> {
  const child = startCli(
    [
      'up',
      '--mode',
      'development',
      '--port',
      String(port),
      '--set',
      'task_types.worker.wait_for_endpoints_timeout=3s',
      '--set',
      'server.sweep_interval=250ms',
    ],
    childEnv({ WORKER_SECONDS: '1' }),
    workDir,
  );
  // the start-up summary on stdout; the JSON log line on stderr says "tasker is up" first
  await child.waitForOutput('tasker is up: API', 30_000);
  return child;
}

beforeAll(async () => {
  assertBuilt();
  workDir = mkdtempSync(join(tmpdir(), 'tasker-embedded-'));
  port = await freePort();
  stack = await up();
});

afterAll(async () => {
  await stack?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

it('says at start which storage and broker it uses, and creates the SQLite file', () => {
  const output = stack?.output() ?? '';
  const file = join(workDir, 'var', 'tasker.sqlite3');
  expect(output).toContain(`storage: SQLite file ${file}`);
  expect(output).toContain(
    'broker:  in-process (embedded single-machine mode, not for production)',
  );
  expect(output).toContain('agents:  console1, console2 (task types worker, backup)');
  expect(existsSync(file)).toBe(true);
});

it('answers the seed curl POST with status SENT and the GET with DONE per endpoint', async () => {
  const created = await postTestdata('worker');
  expect(created).toMatchObject({
    status: 'SENT',
    identifier: SEED_IDENTIFIER,
    endpoints: ['console1', 'console2'],
  });
  const done = await terminal('worker', SEED_IDENTIFIER);
  expect(done.task.status).toBe('DONE');
  expect(done.taskResponseList.map((r) => [r.endpoint, r.status, r.payload])).toEqual([
    ['console1', 'DONE', { yiya: 'yippie', yeah: 1234123 }],
    ['console2', 'DONE', { yiya: 'yippie', yeah: 1234123 }],
  ]);
});

it('reports the backup failure per endpoint and the task FAILED', async () => {
  await curlPost('backup', { identifier: 'b1', endpoints: ['console1', 'console2'] });
  const done = await terminal('backup', 'b1');
  expect(done.task.status).toBe('FAILED');
  expect(done.taskResponseList.map((r) => [r.status, r.errnr, r.errmsg])).toEqual([
    ['FAILED', 32, 'could not backup!'],
    ['FAILED', 32, 'could not backup!'],
  ]);
});

it('marks an endpoint without an agent UNDELIVERED and the task INCOMPLETE', async () => {
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

it('stops on SIGTERM and keeps every task in the SQLite file for the next start', async () => {
  expect(await stack?.stop('SIGTERM')).toBe(0);
  stack = await up();
  expect(stack.output()).toContain('schema is up to date');
  const again = await getTask('worker', SEED_IDENTIFIER);
  expect(again.task.status).toBe('DONE');
  expect(again.taskResponseList).toHaveLength(2);
  await curlPost('worker', { identifier: 'after-restart', payload: { seconds: 0 } });
  const broadcast = await terminal('worker', 'after-restart');
  expect(broadcast.task.status).toBe('DONE');
  expect(broadcast.taskResponseList.map((r) => r.endpoint).sort()).toEqual([
    'console1',
    'console2',
  ]);
});

it('refuses to run a separate server or agent on the in-process broker', async () => {
  const server = await runCli(['server', '--mode', 'development'], childEnv(), workDir);
  expect(server.code).toBe(1);
  expect(server.output).toContain('a separate server needs RabbitMQ');
  const agent = await runCli(
    ['agent', '--mode', 'development', '--endpoint', 'web1'],
    childEnv(),
    workDir,
  );
  expect(agent.code).toBe(1);
  expect(agent.output).toContain('a separate agent needs RabbitMQ');
});
