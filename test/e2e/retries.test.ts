/**
 * Retries end to end: the built `tasker server` and `tasker agent` on MariaDB and RabbitMQ. A
 * command exits 75 (try again) or 76 (blocked), a module throws RetryableError: the row shows
 * RETRYING with when the next run starts, each run is kept in the response's history with its
 * output, attempts are bounded by the type's retry.max_attempts (blocked runs are not counted,
 * but end at the execution deadline), a cancel ends the wait, and an agent killed with SIGKILL
 * during the wait loses nothing: the delivery was never acked, and the next agent continues the
 * count of runs from the journal in its state directory.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callJson, getTask, postTask, waitForTerminal } from '../support/api-client';
import {
  ROOT,
  assertBuilt,
  childEnv,
  startCli,
  startServerCli,
  type Child,
} from '../support/child-processes';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';

// fails (exit 75) until its attempt reaches $1; blocked (exit 76) while the file $2 is missing
const FLAKY = `#!/bin/sh
if [ -n "$2" ] && [ ! -e "$2" ]; then echo "waiting for $2" >&2; exit 76; fi
if [ "$TASKER_ATTEMPT" -lt "$1" ]; then echo "not yet at attempt $TASKER_ATTEMPT" >&2; exit 75; fi
echo "done at attempt $TASKER_ATTEMPT"
`;

// a module handler: RetryableError from the package until its second run
const MODULE = (entry: string) => `
const { RetryableError } = require(${JSON.stringify(entry)});
exports.handle_task = (task, response, ctx) => {
  if (ctx.attempt < 2) throw new RetryableError('the mirror is busy');
  response.payload = { attempt: ctx.attempt };
};
`;

let stack: TestStack;
let dir: string;
let url: string;
let server: Child;
let agent: Child;
let config: string;

interface HistoryEntry {
  attempt: number;
  status: string;
  errnr: number | null;
  errmsg: string | null;
  output: string | null;
}
interface Detail {
  status: string;
  attempt: number;
  errmsg: string | null;
  history: HistoryEntry[];
}

const detail = async (type: string, id: string) =>
  (await callJson<Detail>(`${url}/${type}/${id}/responses/web1`, 'GET')).body;

const startAgent = async (): Promise<Child> => {
  const child = startCli(
    ['agent', ...stack.cliFlags, '--config', config, '--endpoint', 'web1'],
    childEnv(),
  );
  await child.waitForOutput('agent consuming', 30_000);
  return child;
};

beforeAll(async () => {
  assertBuilt();
  stack = await createTestStack();
  dir = mkdtempSync(join(tmpdir(), 'tasker-e2e-retries-'));
  const flaky = join(dir, 'flaky');
  writeFileSync(flaky, FLAKY);
  chmodSync(flaky, 0o755);
  const modules = join(dir, 'handlers');
  mkdirSync(modules);
  writeFileSync(join(modules, 'mirror.js'), MODULE(join(ROOT, 'dist', 'src', 'index.js')));
  config = join(dir, 'tasker.yaml');
  writeFileSync(
    config,
    [
      'task_types:',
      '  flaky:',
      '    retry: { max_attempts: 3, delay: 300ms, backoff: 1 }',
      '  slowretry:',
      '    retry: { max_attempts: 3, delay: 4s }',
      '  deadline:',
      '    wait_for_endpoints_timeout: 2s',
      '    execution_timeout: 3s',
      '    retry: { max_attempts: 1, delay: 500ms, backoff: 1 }',
      '  mirror:',
      '    retry: { max_attempts: 2, delay: 200ms }',
      '  noretry:',
      'agent:',
      '  report_delay: 100ms',
      `  handlers_dir: ${JSON.stringify(modules)}`,
      '  handlers:',
      ...['flaky', 'slowretry', 'deadline', 'noretry'].flatMap((type) => [
        `    ${type}:`,
        `      command: ${JSON.stringify([flaky, '{payload.until}', '{payload.file}'])}`,
      ]),
      'log:',
      '  level: info',
      '',
    ].join('\n'),
  );
  ({ server, url } = await startServerCli([...stack.cliFlags, '--config', config]));
  agent = await startAgent();
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await server?.stop();
  await stack?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const post = async (type: string, identifier: string, payload: Record<string, unknown>) => {
  const posted = await postTask(url, type, { identifier, endpoints: ['web1'], payload });
  expect(posted.status).toBe(201);
};

it('runs a command that exits 75 again until it succeeds, keeping each failed run', async () => {
  await post('flaky', 'f-3', { until: 3, file: '' });
  const task = await waitForTerminal(url, 'flaky', 'f-3');
  expect(task.task.status).toBe('DONE');
  expect(task.taskResponseList[0]).toMatchObject({ status: 'DONE', attempt: 3, errnr: 0 });
  const runs = await detail('flaky', 'f-3');
  expect(
    runs.history.map(({ attempt, status, errnr, errmsg }) => [attempt, status, errnr, errmsg]),
  ).toEqual([
    [1, 'FAILED', 75, 'not yet at attempt 1'],
    [2, 'FAILED', 75, 'not yet at attempt 2'],
  ]);
  expect(runs.history[1]?.output).toContain('stderr not yet at attempt 2');
});

it('gives up after max_attempts, saying so', async () => {
  await post('flaky', 'f-never', { until: 99, file: '' });
  const task = await waitForTerminal(url, 'flaky', 'f-never');
  expect(task.task.status).toBe('FAILED');
  expect(task.taskResponseList[0]).toMatchObject({
    attempt: 3,
    errnr: 75,
    errmsg: 'not yet at attempt 3 (gave up after 3 of 3 attempts)',
  });
  expect((await detail('flaky', 'f-never')).history).toHaveLength(2);
});

it('does not retry a type without a retry policy', async () => {
  await post('noretry', 'n-1', { until: 2, file: '' });
  const task = await waitForTerminal(url, 'noretry', 'n-1');
  expect(task.taskResponseList[0]).toMatchObject({
    status: 'FAILED',
    attempt: 1,
    errmsg: 'not yet at attempt 1 (its task type has no retry policy)',
  });
});

it('shows RETRYING while blocked runs wait, uncounted, and finishes once unblocked', async () => {
  const gate = join(dir, 'gate-1');
  // max_attempts 3 and at least three blocked runs before the gate opens
  await post('flaky', 'b-1', { until: 1, file: gate });
  const retrying = await waitFor(
    () => getTask(url, 'flaky', 'b-1'),
    (found) => (found.taskResponseList[0]?.attempt ?? 0) >= 3,
    15_000,
    'three blocked runs',
  );
  const row = retrying.taskResponseList[0];
  expect(['RETRYING', 'RUNNING', 'RECEIVED']).toContain(row?.status);
  const waiting = await waitFor(
    () => getTask(url, 'flaky', 'b-1'),
    (found) => found.taskResponseList[0]?.status === 'RETRYING',
    15_000,
    'the row RETRYING',
  );
  expect(waiting.task.status).toBe('SENT');
  expect(waiting.taskResponseList[0]).toMatchObject({ errnr: 76, errmsg: `waiting for ${gate}` });
  expect(Date.parse(waiting.taskResponseList[0]?.next_attempt_at ?? '')).toBeGreaterThan(
    Date.now() - 5000,
  );
  writeFileSync(gate, '');
  const task = await waitForTerminal(url, 'flaky', 'b-1');
  expect(task.task.status).toBe('DONE');
  expect(task.taskResponseList[0]?.attempt).toBeGreaterThan(3);
});

it('ends a task still blocked at its execution deadline', async () => {
  await post('deadline', 'd-1', { until: 1, file: join(dir, 'never') });
  const task = await waitForTerminal(url, 'deadline', 'd-1');
  expect(task.taskResponseList[0]).toMatchObject({ status: 'FAILED', errnr: 76 });
  expect(task.taskResponseList[0]?.errmsg).toMatch(/still blocked at the execution deadline/);
  expect(task.taskResponseList[0]?.attempt).toBeGreaterThan(2);
});

it('retries a module that throws RetryableError', async () => {
  await post('mirror', 'm-1', {});
  const task = await waitForTerminal(url, 'mirror', 'm-1');
  expect(task.taskResponseList[0]).toMatchObject({
    status: 'DONE',
    attempt: 2,
    payload: { attempt: 2 },
  });
  const runs = await detail('mirror', 'm-1');
  expect(runs.history).toMatchObject([{ attempt: 1, errnr: 75, errmsg: 'the mirror is busy' }]);
});

it('cancels a task waiting to be retried at once', async () => {
  await post('slowretry', 'c-1', { until: 5, file: '' });
  await waitFor(
    () => getTask(url, 'slowretry', 'c-1'),
    (found) => found.taskResponseList[0]?.status === 'RETRYING',
    15_000,
    'the row RETRYING',
  );
  const cancel = await callJson(`${url}/slowretry/c-1/cancel`, 'POST', { reason: 'not today' });
  expect(cancel.status).toBe(200);
  const task = await waitForTerminal(url, 'slowretry', 'c-1', 10_000);
  expect(task.taskResponseList[0]).toMatchObject({
    status: 'CANCELLED',
    errmsg: 'cancelled: not today',
    attempt: 1,
  });
});

it('loses nothing when the agent is killed with SIGKILL during a retry wait', async () => {
  await post('slowretry', 'k-1', { until: 2, file: '' });
  await waitFor(
    () => getTask(url, 'slowretry', 'k-1'),
    (found) => found.taskResponseList[0]?.status === 'RETRYING',
    15_000,
    'the row RETRYING',
  );
  await agent.stop('SIGKILL');
  expect(existsSync(join(stack.config.agent.stateDir, 'web1', 'attempts.journal'))).toBe(true);
  agent = await startAgent();
  // redelivered (never acked), run as attempt 2: the journal kept the count
  const task = await waitForTerminal(url, 'slowretry', 'k-1', 30_000);
  expect(task.task.status).toBe('DONE');
  expect(task.taskResponseList[0]).toMatchObject({ status: 'DONE', attempt: 2 });
  const runs = await detail('slowretry', 'k-1');
  expect(runs.history.map((run) => [run.attempt, run.errnr])).toEqual([[1, 75]]);
}, 60_000);
