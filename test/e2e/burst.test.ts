/**
 * `tasker agent --burst` with real processes on MariaDB and RabbitMQ: the agent runs what waits
 * in its queues, then says goodbye and exits 0; with nothing waiting it exits at once.
 */
import { callJson, postTask, waitForTerminal } from '../support/api-client';
import {
  assertBuilt,
  childEnv,
  runCli,
  startServerCli,
  type Child,
} from '../support/child-processes';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';

let stack: TestStack;
let url: string;
let server: Child;

beforeAll(async () => {
  assertBuilt();
  stack = await createTestStack();
  ({ server, url } = await startServerCli(stack.cliFlags));
});

afterAll(async () => {
  await server?.stop();
  await stack?.cleanup();
});

const burst = (endpoint: string) =>
  runCli(
    ['agent', ...stack.cliFlags, '--endpoint', endpoint, '--burst', '--log-level', 'info'],
    childEnv(),
  );

it('runs the tasks waiting in its queues, says goodbye and exits 0', async () => {
  // posted before any agent of b1 runs: the server declares its queue, where they wait
  for (const [index, type] of ['worker', 'worker', 'backup'].entries()) {
    const posted = await postTask(url, type, {
      identifier: `burst-${index}`,
      endpoints: ['b1'],
      payload: { seconds: 1 },
    });
    expect(posted.status).toBe(201);
  }
  const { code, output } = await burst('b1');
  expect(code).toBe(0);
  expect(output).toContain('burst: the queues are empty and nothing runs; stopping');
  expect((await waitForTerminal(url, 'worker', 'burst-0')).task.status).toBe('DONE');
  expect((await waitForTerminal(url, 'worker', 'burst-1')).task.status).toBe('DONE');
  expect((await waitForTerminal(url, 'backup', 'burst-2')).task.status).toBe('FAILED');
  // its goodbye reaches the registry
  await waitFor(
    () => callJson<{ registration: { status: string } | null }>(`${url}/endpoints/b1`, 'GET'),
    (answer) => answer.body.registration?.status === 'stopped',
    10_000,
    'b1 registered as stopped',
  );
});

it('exits 0 at once when nothing waits', async () => {
  const started = Date.now();
  const { code, output } = await burst('b2');
  expect(code).toBe(0);
  expect(output).toContain('burst: the queues are empty and nothing runs; stopping');
  expect(Date.now() - started).toBeLessThan(15_000);
});
