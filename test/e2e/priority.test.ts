/**
 * Priorities end to end: the built `tasker server` and `tasker agent` on MariaDB and RabbitMQ.
 * An urgent task overtakes the routine ones queued before it at a busy agent; a queue made
 * without priorities (by an older tasker) still takes tasks, and `tasker upgrade-queues`
 * rebuilds it with today's arguments keeping its messages, but leaves a consumed one alone.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { getTask, postTask, waitForTerminal } from '../support/api-client';
import {
  assertBuilt,
  childEnv,
  runCli,
  startCli,
  startServerCli,
  type Child,
} from '../support/child-processes';
import { AMQP_URL } from '../support/services';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';

// appends its name to the order file, then takes a little while
const RECORD = `#!/bin/sh
echo "$1" >> "$2"
sleep 0.5
`;

let stack: TestStack;
let dir: string;
let url: string;
let server: Child;
let config: string;
const agents: Child[] = [];

beforeAll(async () => {
  assertBuilt();
  stack = await createTestStack();
  dir = mkdtempSync(join(tmpdir(), 'tasker-e2e-priority-'));
  const record = join(dir, 'record');
  writeFileSync(record, RECORD);
  chmodSync(record, 0o755);
  config = join(dir, 'tasker.yaml');
  writeFileSync(
    config,
    [
      'task_types:',
      '  job:',
      'agent:',
      '  report_delay: 100ms',
      '  handlers:',
      '    job:',
      `      command: ${JSON.stringify([record, '{payload.name}', '{payload.file}'])}`,
      'log:',
      '  level: info',
      '',
    ].join('\n'),
  );
  ({ server, url } = await startServerCli([...stack.cliFlags, '--config', config]));
}, 60_000);

afterAll(async () => {
  for (const agent of agents) await agent.stop();
  await server?.stop();
  await stack?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const agentArgs = (endpoint: string) => [
  'agent',
  ...stack.cliFlags,
  '--config',
  config,
  '--endpoint',
  endpoint,
  '--concurrency',
  '1',
  '--prefetch',
  '1',
];

const post = async (endpoint: string, name: string, file: string, priority?: number) => {
  const posted = await postTask(url, 'job', {
    identifier: `${endpoint}-${name}`,
    endpoints: [endpoint],
    payload: { name, file },
    ...(priority === undefined ? {} : { priority }),
  });
  expect(posted.status).toBe(201);
};

const lines = (file: string): string[] => {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

it('runs an urgent task ahead of the routine backlog at a busy agent', async () => {
  const order = join(dir, 'order-p1');
  const agent = startCli(agentArgs('p1'), childEnv());
  agents.push(agent);
  await agent.waitForOutput('agent consuming', 30_000);
  for (let i = 0; i < 15; i += 1) await post('p1', `routine-${i}`, order);
  // the agent is busy with the first ones, the rest wait in its queue
  await waitFor(
    async () => lines(order),
    (seen) => seen.length >= 1,
    15_000,
    'the first routine task running',
  );
  await post('p1', 'urgent', order, 9);
  // confirmed by the broker: in the queue now, behind what had started and what was delivered
  const started = lines(order).length;
  await waitFor(
    async () => lines(order),
    (seen) => seen.length === 16,
    30_000,
    'every task run',
  );
  const seen = lines(order);
  const at = seen.indexOf('urgent');
  // behind what had started and at most the one delivered (prefetch 1) before it came
  expect(at).toBeGreaterThanOrEqual(1);
  expect(at).toBeLessThanOrEqual(started + 1);
  expect(seen.slice(at + 1).length).toBeGreaterThanOrEqual(10);
  const urgent = await waitForTerminal(url, 'job', 'p1-urgent');
  expect(urgent.task).toMatchObject({ status: 'DONE', priority: 9 });
  expect((await getTask(url, 'job', 'p1-routine-0')).task.priority).toBe(0);
}, 60_000);

it('refuses a priority outside 0-9, naming it', async () => {
  const posted = await postTask(url, 'job', { identifier: 'bad', endpoints: ['p1'], priority: 12 });
  expect(posted.status).toBe(400);
  expect(JSON.stringify(posted.body)).toContain('priority');
});

it('upgrades a queue made without priorities, keeping its tasks; a consumed one waits', async () => {
  const connection = await amqp.connect(AMQP_URL);
  const ch = await connection.createChannel();
  const prefix = stack.config.broker.prefix;
  const old = (endpoint: string) => `${prefix}.job.${endpoint}`;
  // as an older tasker declared them: no x-max-priority, no x-expires
  for (const endpoint of ['old1', 'old2']) {
    await ch.assertQueue(old(endpoint), {
      durable: true,
      arguments: { 'x-dead-letter-exchange': `${prefix}.dead` },
    });
    await ch.bindQueue(old(endpoint), `${prefix}.job`, '');
  }
  const order = join(dir, 'order-old1');
  for (const name of ['a', 'b', 'c']) await post('old1', name, order);
  await waitFor(
    () => getTask(url, 'job', 'old1-c'),
    (found) => found.task.status === 'SENT',
    15_000,
    'the tasks in the old queue',
  );
  expect(server.output()).toContain('using it as it is until `tasker upgrade-queues`');
  // old2 has a consumer: its agent would lose what it holds
  await ch.consume(old('old2'), () => undefined);

  const args = ['upgrade-queues', ...stack.cliFlags, '--config', config];
  const refused = await runCli([...args, '--endpoints', 'old1,no such'], childEnv());
  expect(refused.code).toBe(1);
  expect(refused.output).toContain('--endpoints[1] must be 1-64 letters');
  const result = await runCli([...args, '--endpoints', 'old1,old2'], childEnv());
  expect(result.output).toContain(`${old('old1')}: upgraded, 3 message(s) kept`);
  expect(result.output).toContain(`${old('old2')}: left alone: 1 consumer(s)`);
  expect(result.output).toContain(`${old('p1')}: current`);
  expect(result.code).toBe(1);
  const listed = execFileSync('rabbitmqctl', ['list_queues', '-q', 'name', 'arguments'], {
    encoding: 'utf8',
  });
  const argsOf = (queue: string) =>
    listed.split('\n').find((line) => line.startsWith(`${queue}\t`)) ?? '';
  expect(argsOf(old('old1'))).toContain('x-max-priority');
  expect(argsOf(old('old2'))).not.toContain('x-max-priority');
  expect(listed).not.toContain(`${prefix}.events.upgrade`);
  await connection.close();

  // the kept tasks run from the upgraded queue
  const burst = await runCli([...agentArgs('old1'), '--burst'], childEnv());
  expect(burst.code).toBe(0);
  for (const name of ['a', 'b', 'c']) {
    expect((await waitForTerminal(url, 'job', `old1-${name}`)).task.status).toBe('DONE');
  }
  expect(lines(order).sort()).toEqual(['a', 'b', 'c']);
}, 90_000);
