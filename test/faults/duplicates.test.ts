/**
 * Every task message and every result event delivered twice, with malformed messages mixed in:
 * no duplicate rows, no state moving back, each handler run once per endpoint, agents alive.
 * The doubling is done in process by wrapping the broker seam, so it hits every publish.
 */
import * as amqp from 'amqplib';
import type { HandleTask } from '../../src/agent';
import { brokerNames, type TaskBroker } from '../../src/broker';
import type { ResultEvent, TaskMessage } from '../../src/domain';
import { createApp } from '../../src/api';
import {
  ChangeFeed,
  Intake,
  startRecorder,
  startRelay,
  startSweeper,
  outboxPublishers,
} from '../../src/server';
import { Agent, inlineRunner } from '../../src/agent';
import { AMQP_URL } from '../support/services';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';
import { newBroker, testLog } from '../support/in-process';
import { Observer, check, taskKey } from './checker';
import type { Server } from 'node:http';

/** A broker that publishes everything twice. */
function doubling(inner: TaskBroker): TaskBroker {
  return {
    get isConnected() {
      return inner.isConnected;
    },
    ping: (timeoutMs) => inner.ping(timeoutMs),
    publishChange: (event) => inner.publishChange(event),
    consumeChanges: (onChange) => inner.consumeChanges(onChange),
    waitingTasks: (endpoint, types) => inner.waitingTasks(endpoint, types),
    async publishControl(message) {
      await inner.publishControl(message);
      await inner.publishControl(message);
    },
    async publishTask(message: TaskMessage) {
      await inner.publishTask(message);
      await inner.publishTask(message);
    },
    async publishResult(event: ResultEvent) {
      await inner.publishResult(event);
      await inner.publishResult(event);
    },
    async publishResults(events: readonly ResultEvent[]) {
      await inner.publishResults(events);
      await inner.publishResults(events);
      // and each event once more on its own, as an agent that reports one by one would
      for (const event of events) await inner.publishResult(event);
    },
    async publishHeartbeat(heartbeat) {
      await inner.publishHeartbeat(heartbeat);
      await inner.publishHeartbeat(heartbeat);
    },
    consumeTasks: (options, onTask, onControl) => inner.consumeTasks(options, onTask, onControl),
    consumeResults: (options, onBatch) => inner.consumeResults(options, onBatch),
    close: () => inner.close(),
  };
}

let stack: TestStack;
const closers: Array<() => Promise<unknown>> = [];
const runs = new Map<string, number>();

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await stack.cleanup();
});

it('keeps one row per endpoint and runs each handler once when everything arrives twice', async () => {
  stack = await createTestStack({ set: ['server.sweep_interval=200ms'] });
  const serverBroker = newBroker(stack.config, 'dup-server', stack.config.broker.url, true);
  await serverBroker.start();
  await serverBroker.session.waitUntilConnected(5000);
  closers.push(() => serverBroker.close());
  const broker = doubling(serverBroker);
  const publish = outboxPublishers(broker, stack.config.taskTypes);
  const relay = startRelay(stack.db, broker, publish, 200, testLog);
  closers.push(() => relay.stop());
  const recorder = await startRecorder(stack.db, broker, { batchSize: 50, prefetch: 500 }, testLog);
  closers.push(() => recorder.close());
  const sweeper = startSweeper(stack.db, 200, 1000, testLog);
  closers.push(() => sweeper.stop());
  const intake = new Intake({ db: stack.db, broker, config: stack.config, publish, log: testLog });
  const changes = new ChangeFeed(broker, testLog);
  await changes.start();
  closers.push(() => changes.close());
  const app = createApp({
    db: stack.db,
    broker,
    config: stack.config,
    intake,
    changes,
    log: testLog,
  });
  const http: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  closers.push(() => new Promise((resolve) => http.close(resolve)));
  const url = `http://127.0.0.1:${(http.address() as { port: number }).port}`;

  const worker: HandleTask = (task, response, ctx) => {
    const key = `${task.identifier}/${ctx.endpoint}`;
    runs.set(key, (runs.get(key) ?? 0) + 1);
    response.payload = { ok: true };
    return response;
  };
  const endpoints = ['d1', 'd2', 'd3'];
  for (const endpoint of endpoints) {
    const agentBroker = newBroker(stack.config, `dup-${endpoint}`);
    await agentBroker.start();
    await agentBroker.session.waitUntilConnected(5000);
    const agent = new Agent({
      endpoint,
      types: ['worker'],
      runner: inlineRunner(new Map([['worker', worker]])),
      broker: doubling(agentBroker),
      concurrency: 8,
      reportDelayMs: 0,
      stateDir: stack.config.agent.stateDir,
      log: testLog,
    });
    await agent.start();
    closers.push(() => agentBroker.close());
    closers.push(() => agent.close());
  }

  const observer = new Observer(stack.db);
  observer.start(100);
  const posted = new Set<string>();
  const accepted = new Set<string>();
  const junk = await amqp.connect(AMQP_URL);
  closers.push(() => junk.close());
  const junkChannel = await junk.createConfirmChannel();
  for (let i = 1; i <= 150; i += 1) {
    const identifier = `twice-${i}`;
    posted.add(taskKey('worker', identifier));
    const res = await fetch(`${url}/worker`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ identifier, endpoints }),
    });
    if (res.status === 201) accepted.add(taskKey('worker', identifier));
    if (i % 25 === 0) {
      // malformed messages between the real ones, on both sides
      junkChannel.sendToQueue(
        brokerNames.endpointQueue(stack.prefix, 'worker', 'd1'),
        Buffer.from('{"v":1'),
      );
      junkChannel.publish(brokerNames.resultsExchange(stack.prefix), '', Buffer.from('[]'));
    }
  }
  await junkChannel.waitForConfirms();
  await waitFor(
    async () =>
      Number(
        (await stack.db('tasks').whereIn('status', ['CREATED', 'SENT']).count({ n: '*' }))[0]?.n,
      ),
    (open) => open === 0,
    60_000,
    'all tasks final',
  );
  await observer.stop();
  const verdict = await check(stack.db, posted, accepted, observer);
  expect(verdict).toMatchObject({
    accepted: 150,
    lost: 0,
    unexpected: 0,
    duplicates: 0,
    backwards: 0,
  });
  expect(await stack.db('tasks').where({ status: 'DONE' }).count({ n: '*' })).toEqual([{ n: 150 }]);
  expect(await stack.db('task_responses').count({ n: '*' })).toEqual([{ n: 450 }]);
  expect([...runs.values()].every((n) => n === 1)).toBe(true);
  expect(runs.size).toBe(450);
  // the junk sent after the last task can still be on its way to the dead-letter queue when
  // every task is final: wait for it rather than racing it
  const dead = await waitFor(
    () => junkChannel.checkQueue(brokerNames.deadQueue(stack.prefix)),
    (queue) => queue.messageCount >= 12,
    10_000,
    'all 12 malformed messages dead-lettered',
  );
  expect(dead.messageCount).toBeGreaterThanOrEqual(12);
});
