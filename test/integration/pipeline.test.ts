/**
 * The whole path in one process: server (api, relay, recorder, sweeper) and agents on the real
 * MariaDB and RabbitMQ. Handlers are passed in directly; loading them from files is covered by
 * the end-to-end test with real processes.
 */
import * as amqp from 'amqplib';
import type { HandleTask } from '../../src/agent';
import { brokerNames } from '../../src/broker';
import { WIRE_VERSION, type TaskMessage } from '../../src/domain';
import { createLogger } from '../../src/log';
import { handle_task as backup } from '../../handlers/backup';
import { handle_task as worker } from '../../handlers/worker';
import { AMQP_URL } from '../support/services';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';
import { startTestAgent, startTestServer, type RunningAgent } from '../support/in-process';
import { getTask, postTask, waitForTerminal } from '../support/api-client';

let stack: TestStack;
let server: Awaited<ReturnType<typeof startTestServer>>;
const agents: RunningAgent[] = [];
const calls: Record<string, number> = {};

const count =
  (name: string, handler: HandleTask): HandleTask =>
  (task, response, ctx) => {
    calls[`${name}:${task.identifier}:${ctx.endpoint}`] =
      (calls[`${name}:${task.identifier}:${ctx.endpoint}`] ?? 0) + 1;
    return handler(task, response, ctx);
  };

const handlers: Record<string, HandleTask> = {
  worker: count('worker', worker),
  backup,
  flaky: () => {
    throw Object.assign(new Error('disk full'), { errnr: 28 });
  },
  hang: () => new Promise(() => undefined),
  garbage: () => 42 as never,
  // a worker whose tasks are decided 3 s after they were posted
  brief: worker,
  // what the response table could not hold: a Windows HRESULT as errnr, or a 2 MiB payload
  outsized: (task, response) => {
    const { errnr, bytes } = task.payload as { errnr?: number; bytes?: number };
    if (errnr !== undefined) response.errnr = errnr;
    if (bytes !== undefined) response.payload = { log: 'x'.repeat(bytes) };
    response.errmsg = '';
  },
};

beforeAll(async () => {
  stack = await createTestStack({
    set: [
      'task_types=worker,backup,flaky,hang,garbage,outsized,brief',
      'task_types.worker.wait_for_endpoints_timeout=20s',
      'task_types.brief.wait_for_endpoints_timeout=3s',
      'task_types.hang.execution_timeout=500ms',
      'server.sweep_interval=200ms',
      'server.relay_interval=200ms',
    ],
  });
  server = await startTestServer(stack.config);
  for (const endpoint of ['console1', 'console2']) {
    agents.push(await startTestAgent(stack.config, endpoint, handlers));
  }
});
afterAll(async () => {
  for (const agent of agents) await agent.close();
  await server.close();
  await stack.cleanup();
});

it('runs the original walk-through: SENT, then DONE with one response per endpoint', async () => {
  const body = {
    identifier: 'e7bd91d0-16ad-11e2-892e-0800200c9a66',
    payload: { foo: 'bar', seconds: 4 },
    endpoints: ['console1', 'console2'],
  };
  const created = await postTask(server.url, 'worker', body);
  expect(created.status).toBe(201);
  expect(created.body.status).toBe('SENT');
  const running = await waitFor(
    () => getTask(server.url, 'worker', body.identifier),
    (t) => t.taskResponseList.every((r) => r.status === 'RUNNING'),
    5000,
    'both endpoints RUNNING',
  );
  expect(running.task.status).toBe('SENT');
  const done = await waitForTerminal(server.url, 'worker', body.identifier);
  expect(done.task.status).toBe('DONE');
  expect(done.task.counts).toMatchObject({
    expected: 2,
    received: 2,
    done: 2,
    failed: 0,
    pending: 0,
  });
  expect(done.taskResponseList).toHaveLength(2);
  for (const response of done.taskResponseList) {
    expect(response).toMatchObject({
      status: 'DONE',
      errnr: 0,
      errmsg: null,
      attempt: 1,
      payload: { yiya: 'yippie', yeah: 1234123 },
      task_id: done.task.id,
    });
    expect(response.progress).toMatchObject({ total: 4 }); // a step a second
  }
  expect(done.task.finished_at).not.toBeNull();
});

it('shows a failing handler as that endpoint FAILED with errnr/errmsg, task FAILED', async () => {
  await postTask(server.url, 'backup', { identifier: 'b-1', endpoints: ['console1', 'console2'] });
  const done = await waitForTerminal(server.url, 'backup', 'b-1');
  expect(done.task.status).toBe('FAILED');
  expect(done.taskResponseList.map((r) => [r.status, r.errnr, r.errmsg])).toEqual([
    ['FAILED', 32, 'could not backup!'],
    ['FAILED', 32, 'could not backup!'],
  ]);
});

it('marks an endpoint that never got the task UNDELIVERED and the task INCOMPLETE', async () => {
  await postTask(server.url, 'brief', {
    identifier: 'inc-1',
    payload: { seconds: 0 },
    endpoints: ['console1', 'ghost'],
  });
  const done = await waitForTerminal(server.url, 'brief', 'inc-1');
  expect(done.task.status).toBe('INCOMPLETE');
  const byEndpoint = Object.fromEntries(done.taskResponseList.map((r) => [r.endpoint, r.status]));
  expect(byEndpoint).toEqual({ console1: 'DONE', ghost: 'UNDELIVERED' });
  expect(done.task.counts).toMatchObject({ undelivered: 1, done: 1 });
});

it('delivers to an endpoint that first connects after the task was posted, within the deadline', async () => {
  await postTask(server.url, 'worker', {
    identifier: 'late-1',
    payload: { seconds: 0 },
    endpoints: ['console1', 'latecomer'],
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  agents.push(await startTestAgent(stack.config, 'latecomer', handlers));
  const done = await waitForTerminal(server.url, 'worker', 'late-1');
  expect(done.task.status).toBe('DONE');
  expect(done.taskResponseList.find((r) => r.endpoint === 'latecomer')?.status).toBe('DONE');
});

it('fails only the task when a handler throws, hangs or returns garbage; the agent keeps serving', async () => {
  const endpoints = ['console1'];
  await postTask(server.url, 'flaky', { identifier: 'f-1', endpoints });
  await postTask(server.url, 'hang', { identifier: 'h-1', endpoints });
  await postTask(server.url, 'garbage', { identifier: 'g-1', endpoints });
  const flaky = await waitForTerminal(server.url, 'flaky', 'f-1');
  expect(flaky.taskResponseList[0]).toMatchObject({
    status: 'FAILED',
    errnr: 28,
    errmsg: 'disk full',
  });
  const hang = await waitForTerminal(server.url, 'hang', 'h-1');
  expect(hang.task.status).toBe('FAILED');
  expect(hang.taskResponseList[0]).toMatchObject({ status: 'TIMED_OUT', errnr: -1 });
  expect(hang.taskResponseList[0]?.errmsg).toMatch(/execution timeout/);
  const garbage = await waitForTerminal(server.url, 'garbage', 'g-1');
  expect(garbage.taskResponseList[0]).toMatchObject({ status: 'FAILED', errnr: 1 });
  expect(garbage.taskResponseList[0]?.errmsg).toMatch(/handler returned 42/);

  await postTask(server.url, 'worker', {
    identifier: 'after-1',
    payload: { seconds: 0 },
    endpoints,
  });
  expect((await waitForTerminal(server.url, 'worker', 'after-1')).task.status).toBe('DONE');
});

it('fails a response the response table could not hold, saying why, and keeps recording', async () => {
  const endpoints = ['console1', 'console2'];
  await postTask(server.url, 'outsized', {
    identifier: 'o-1',
    payload: { errnr: 0x80070005 },
    endpoints,
  });
  await postTask(server.url, 'outsized', {
    identifier: 'o-2',
    payload: { bytes: 2 * 1024 * 1024 },
    endpoints,
  });
  await postTask(server.url, 'outsized', { identifier: 'o-3', payload: { errnr: 4 }, endpoints });
  const hresult = await waitForTerminal(server.url, 'outsized', 'o-1');
  for (const response of hresult.taskResponseList) {
    expect(response).toMatchObject({ status: 'FAILED', errnr: 1, payload: null });
    expect(response.errmsg).toMatch(/^handler set errnr to 2147942405; it must be an integer from/);
  }
  const big = await waitForTerminal(server.url, 'outsized', 'o-2');
  for (const response of big.taskResponseList) {
    expect(response).toMatchObject({ status: 'FAILED', errnr: 1, payload: null });
    expect(response.errmsg).toBe('handler payload is 2097162 bytes as JSON; the limit is 1048576');
  }
  // an empty errmsg is none, not a message the recorder refuses
  const empty = await waitForTerminal(server.url, 'outsized', 'o-3');
  expect(empty.taskResponseList.map((r) => [r.status, r.errnr, r.errmsg])).toEqual([
    ['FAILED', 4, null],
    ['FAILED', 4, null],
  ]);
});

it('runs an addressed task only on the endpoints it names', async () => {
  await postTask(server.url, 'worker', {
    identifier: 'only-1',
    payload: { seconds: 0 },
    endpoints: ['console2'],
  });
  const done = await waitForTerminal(server.url, 'worker', 'only-1');
  expect(done.taskResponseList.map((r) => r.endpoint)).toEqual(['console2']);
  expect(calls['worker:only-1:console1']).toBeUndefined();
  expect(calls['worker:only-1:console2']).toBe(1);
});

it('broadcasts a task without endpoints to every subscriber and decides it after the deadline', async () => {
  await postTask(server.url, 'brief', { identifier: 'all-1', payload: { seconds: 0 } });
  const done = await waitForTerminal(server.url, 'brief', 'all-1');
  expect(done.task.status).toBe('DONE');
  expect(done.taskResponseList.map((r) => r.endpoint).sort()).toEqual([
    'console1',
    'console2',
    'latecomer',
  ]);
  expect(done.taskResponseList.every((r) => !r.expected)).toBe(true);
});

it('runs at most its concurrency, holds the rest of its prefetch, and hands those back unstarted', async () => {
  const started: string[] = [];
  let active = 0;
  let most = 0;
  const tracked: HandleTask = async (task, response, ctx) => {
    started.push(task.identifier);
    active += 1;
    most = Math.max(most, active);
    try {
      return await worker(task, response, ctx);
    } finally {
      active -= 1;
    }
  };
  const queued = await startTestAgent(
    stack.config,
    'queued',
    { worker: tracked },
    // q-1 runs long enough for the checks below on a busy machine, and is let finish
    { concurrency: 1, prefetch: 10, drainTimeoutMs: 15_000 },
  );
  for (const [identifier, seconds] of [
    ['q-1', 5],
    ['q-2', 0],
    ['q-3', 0],
  ] as const) {
    await postTask(server.url, 'worker', {
      identifier,
      payload: { seconds },
      endpoints: ['queued'],
    });
  }
  // all three left the queue for the agent, which runs one
  const connection = await amqp.connect(AMQP_URL);
  try {
    const channel = await connection.createChannel();
    const queue = brokerNames.endpointQueue(stack.prefix, 'worker', 'queued');
    await waitFor(
      () => channel.checkQueue(queue),
      (q) => q.messageCount === 0,
      5000,
      'the agent holding every task',
    );
  } finally {
    await connection.close();
  }
  expect(started).toEqual(['q-1']);
  await queued.close();
  expect(started).toEqual(['q-1']);
  expect(most).toBe(1);
  expect((await getTask(server.url, 'worker', 'q-1')).taskResponseList[0]).toMatchObject({
    status: 'DONE',
    attempt: 1,
  });

  // redelivered to the next agent, the two that never started are run 1, not 2
  agents.push(await startTestAgent(stack.config, 'queued', { worker }));
  for (const identifier of ['q-2', 'q-3']) {
    const done = await waitForTerminal(server.url, 'worker', identifier);
    expect(done.taskResponseList[0]).toMatchObject({ status: 'DONE', attempt: 1 });
  }
});

it('hands a task back when it waited too long for a handler slot, and does not count that', async () => {
  const lines: string[] = [];
  const log = createLogger('debug', {}, (line) => lines.push(line));
  const patient = await startTestAgent(
    stack.config,
    'patient',
    { worker },
    { concurrency: 1, prefetch: 5, slotWaitMs: 300, log },
  );
  agents.push(patient);
  for (const identifier of ['w-1', 'w-2']) {
    await postTask(server.url, 'worker', {
      identifier,
      payload: { seconds: 1.5 },
      endpoints: ['patient'],
    });
  }
  for (const identifier of ['w-1', 'w-2']) {
    const done = await waitForTerminal(server.url, 'worker', identifier);
    expect(done.taskResponseList[0]).toMatchObject({ status: 'DONE', attempt: 1 });
  }
  expect(lines.some((line) => line.includes('waited long for a handler slot'))).toBe(true);
});

describe('on the wire', () => {
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  beforeAll(async () => {
    connection = await amqp.connect(AMQP_URL);
    channel = await connection.createConfirmChannel();
  });
  afterAll(async () => {
    await connection.close();
  });

  async function deliverAgain(id: number, identifier: string, seconds: number): Promise<void> {
    const found = await getTask(server.url, 'worker', identifier);
    const message: TaskMessage = {
      v: WIRE_VERSION,
      id,
      identifier,
      type: 'worker',
      payload: { seconds },
      endpoints: ['console1'],
      created_at: found.task.start_time,
      deliver_by: found.task.deliver_by,
      execution_timeout_ms: 30_000,
      max_deliveries: 5,
      round: 1,
    };
    const exchange = brokerNames.taskExchange(stack.prefix, 'worker');
    channel.publish(exchange, '', Buffer.from(JSON.stringify(message)));
    await channel.waitForConfirms();
  }

  it('runs a task delivered again after it finished only once, with one row per endpoint', async () => {
    const body = { identifier: 'dup-1', payload: { seconds: 0.3 }, endpoints: ['console1'] };
    const created = await postTask(server.url, 'worker', body);
    await waitForTerminal(server.url, 'worker', 'dup-1');
    await deliverAgain(created.body.id as number, 'dup-1', 0.3);
    await new Promise((resolve) => setTimeout(resolve, 800));
    const after = await getTask(server.url, 'worker', 'dup-1');
    expect(calls['worker:dup-1:console1']).toBe(1);
    expect(after.taskResponseList).toHaveLength(1);
    expect(after.taskResponseList[0]).toMatchObject({ status: 'DONE', attempt: 1 });
  });

  it('runs a task delivered again while it is still running only once', async () => {
    const body = { identifier: 'dup-2', payload: { seconds: 1 }, endpoints: ['console1'] };
    const created = await postTask(server.url, 'worker', body);
    await deliverAgain(created.body.id as number, 'dup-2', 1);
    const done = await waitForTerminal(server.url, 'worker', 'dup-2');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(calls['worker:dup-2:console1']).toBe(1);
    expect(done.taskResponseList).toHaveLength(1);
    expect(done.taskResponseList[0]).toMatchObject({ status: 'DONE', attempt: 1 });
  });

  it('dead-letters malformed task messages and keeps serving', async () => {
    const queue = brokerNames.endpointQueue(stack.prefix, 'worker', 'console1');
    const deadQueue = brokerNames.deadQueue(stack.prefix);
    const before = (await channel.checkQueue(deadQueue)).messageCount;
    channel.sendToQueue(queue, Buffer.from('{not json'));
    channel.sendToQueue(queue, Buffer.from(JSON.stringify({ v: 99, id: 1 })));
    channel.sendToQueue(queue, Buffer.from(JSON.stringify({ v: 1, id: 'x' })));
    await channel.waitForConfirms();
    await waitFor(
      async () => (await channel.checkQueue(deadQueue)).messageCount,
      (n) => n >= before + 3,
      5000,
      'three dead letters',
    );
    await postTask(server.url, 'worker', {
      identifier: 'alive-1',
      payload: { seconds: 0 },
      endpoints: ['console1'],
    });
    expect((await waitForTerminal(server.url, 'worker', 'alive-1')).task.status).toBe('DONE');
  });

  it('dead-letters malformed result events without recording anything', async () => {
    const deadQueue = brokerNames.deadQueue(stack.prefix);
    const before = (await channel.checkQueue(deadQueue)).messageCount;
    const rows = await stack.db('task_responses').count({ n: '*' });
    channel.publish(brokerNames.resultsExchange(stack.prefix), '', Buffer.from('nope'));
    channel.publish(
      brokerNames.resultsExchange(stack.prefix),
      '',
      Buffer.from(JSON.stringify({ v: 1, task_id: 1, event: 'finished', status: 'PENDING' })),
    );
    await channel.waitForConfirms();
    await waitFor(
      async () => (await channel.checkQueue(deadQueue)).messageCount,
      (n) => n >= before + 2,
      5000,
      'two dead letters',
    );
    expect(await stack.db('task_responses').count({ n: '*' })).toEqual(rows);
  });

  const finishedEvent = (
    taskId: number,
    endpoint: string,
    fields: Record<string, unknown> = {},
  ) => ({
    v: 1,
    task_id: taskId,
    type: 'worker',
    endpoint,
    event: 'finished',
    status: 'FAILED',
    errnr: 7,
    errmsg: 'sent by hand',
    payload: null,
    progress: null,
    at: new Date(Date.now() + 60_000).toISOString(),
    attempt: 1,
    agent: null,
    ...fields,
  });

  async function publishResults(...messages: unknown[]): Promise<void> {
    for (const message of messages) {
      channel.publish(
        brokerNames.resultsExchange(stack.prefix),
        '',
        Buffer.from(JSON.stringify(message)),
      );
    }
    await channel.waitForConfirms();
  }

  const deadLetters = async (): Promise<number> =>
    (await channel.checkQueue(brokerNames.deadQueue(stack.prefix))).messageCount;

  /** A task DONE on console1, for events sent by hand to add to. */
  async function finishedTask(identifier: string): Promise<number> {
    await postTask(server.url, 'worker', {
      identifier,
      payload: { seconds: 0 },
      endpoints: ['console1'],
    });
    return (await waitForTerminal(server.url, 'worker', identifier)).task.id;
  }

  it('records the events of a grouped result message, and keeps it dead-lettered if one is unknown', async () => {
    const id = await finishedTask('grouped-1');
    const before = await deadLetters();
    // an endpoint the task did not address, and a task that does not exist
    await publishResults([
      finishedEvent(id, 'extra1', { errmsg: 'from a grouped message' }),
      finishedEvent(99_999_999, 'extra1'),
    ]);
    const recorded = await waitFor(
      () => getTask(server.url, 'worker', 'grouped-1'),
      (t) => t.taskResponseList.some((r) => r.endpoint === 'extra1'),
      5000,
      'the grouped event recorded',
    );
    expect(recorded.taskResponseList.find((r) => r.endpoint === 'extra1')).toMatchObject({
      status: 'FAILED',
      errnr: 7,
      expected: false,
    });
    await waitFor(deadLetters, (n) => n >= before + 1, 5000, 'the message kept as a dead letter');
  });

  it('records the valid events of a message with an invalid one, and keeps it dead-lettered', async () => {
    const id = await finishedTask('partly-1');
    const before = await deadLetters();
    // as an agent that does not keep to the limits might send it
    await publishResults([
      finishedEvent(id, 'extra2', { errmsg: 'x'.repeat(5000) }),
      finishedEvent(id, 'extra2', { event: 'received', status: 'RUNNING' }),
    ]);
    const recorded = await waitFor(
      () => getTask(server.url, 'worker', 'partly-1'),
      (t) => t.taskResponseList.some((r) => r.endpoint === 'extra2'),
      5000,
      'the valid event recorded',
    );
    expect(recorded.taskResponseList.find((r) => r.endpoint === 'extra2')?.status).toBe('RUNNING');
    await waitFor(deadLetters, (n) => n >= before + 1, 5000, 'the message kept as a dead letter');
  });

  it('dead-letters a message the database refuses and records the rest of its batch', async () => {
    const id = await finishedTask('refused-1');
    const before = await deadLetters();
    // a column narrower than the events it will be given stands in for any value the
    // database refuses (none of the values the recorder takes can be refused otherwise)
    await stack.db.raw('ALTER TABLE task_responses MODIFY errmsg VARCHAR(3000) NULL');
    try {
      await publishResults(
        finishedEvent(id, 'fine1', { errmsg: 'short' }),
        finishedEvent(id, 'refused', { errmsg: 'x'.repeat(3500) }),
        finishedEvent(id, 'fine2', { errmsg: 'short too' }),
      );
      const recorded = await waitFor(
        () => getTask(server.url, 'worker', 'refused-1'),
        (t) => ['fine1', 'fine2'].every((e) => t.taskResponseList.some((r) => r.endpoint === e)),
        10_000,
        'the other messages recorded',
      );
      expect(recorded.taskResponseList.map((r) => r.endpoint).sort()).toEqual([
        'console1',
        'fine1',
        'fine2',
      ]);
      await waitFor(
        deadLetters,
        (n) => n >= before + 1,
        10_000,
        'the refused message dead-lettered',
      );
    } finally {
      await stack.db.raw('ALTER TABLE task_responses MODIFY errmsg TEXT NULL');
    }
    // and the recorder goes on
    await finishedTask('refused-2');
  });
});
