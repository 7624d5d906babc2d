/**
 * The broker contract: the same tests against the AMQP broker on the real RabbitMQ and against
 * the in-process broker of the embedded mode. What the rest of tasker relies on must hold for
 * both; where the in-process broker deliberately differs, a test says so.
 */
import { AmqpBroker, MemoryBroker, type Delivery, type TaskBroker } from '../../src/broker';
import {
  UnavailableError,
  WIRE_VERSION,
  type ResultEvent,
  type TaskMessage,
} from '../../src/domain';
import { resultEvent as result } from '../helpers/messages';
import { AMQP_URL, deleteBrokerTopology, uniqueName, waitFor } from '../helpers/stack';
import { testLog } from '../helpers/processes';

jest.setTimeout(20_000);

interface Fixture {
  broker: TaskBroker;
  /** what publishResult puts in userId */
  userId: string | null;
  cleanup(): Promise<void>;
}

/** An AmqpBroker on the test RabbitMQ; `server` declares the worker exchange as a server does. */
function amqpBroker(prefix: string, name: string, server: boolean): AmqpBroker {
  return new AmqpBroker({
    url: AMQP_URL,
    prefix,
    heartbeatSeconds: 30,
    confirmTimeoutMs: 5000,
    reconnectInitialDelayMs: 100,
    reconnectMaxDelayMs: 1000,
    connectionName: name,
    ...(server ? { declareTaskTypes: ['worker'] } : {}),
    log: testLog,
  });
}

async function rabbitmq(): Promise<Fixture> {
  const prefix = uniqueName('c');
  const broker = amqpBroker(prefix, 'broker-contract', true);
  await broker.start();
  if (!broker.isConnected) {
    await broker.close();
    throw new Error(`RabbitMQ is not answering at ${AMQP_URL}`);
  }
  return {
    broker,
    userId: 'guest',
    cleanup: async () => {
      await broker.close();
      await deleteBrokerTopology(prefix);
    },
  };
}

async function inProcess(): Promise<Fixture> {
  const broker = new MemoryBroker({ prefix: 'tasker', log: testLog });
  await broker.start();
  return { broker, userId: null, cleanup: () => broker.close() };
}

let seq = 0;
function task(endpoints: string[] | null, deliverInMs = 60_000): TaskMessage {
  seq += 1;
  const now = Date.now();
  return {
    v: WIRE_VERSION,
    id: seq,
    identifier: `contract-${seq}`,
    type: 'worker',
    payload: { n: seq },
    endpoints,
    created_at: new Date(now).toISOString(),
    deliver_by: new Date(now + deliverInMs).toISOString(),
    execution_timeout_ms: 1000,
    max_deliveries: 3,
  };
}

/** Collects deliveries; `received(n)` waits until at least n arrived. */
function collector(): {
  got: Delivery[];
  onTask: (d: Delivery) => Promise<void>;
  received(n: number): Promise<Delivery[]>;
} {
  const got: Delivery[] = [];
  return {
    got,
    onTask: (d) => {
      got.push(d);
      return Promise.resolve();
    },
    received: (n) =>
      waitFor(
        () => Promise.resolve(got),
        (list) => list.length >= n,
        5000,
        `${n} deliveries`,
      ),
  };
}

const idOf = (d: Delivery): number => (JSON.parse(d.content.toString()) as TaskMessage).id;
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.each([
  ['RabbitMQ', rabbitmq],
  ['in-process', inProcess],
])('%s broker', (_name, open) => {
  let fixture: Fixture;
  let broker: TaskBroker;
  beforeAll(async () => {
    fixture = await open();
    broker = fixture.broker;
  });
  afterAll(async () => {
    await fixture?.cleanup();
  });

  const consume = (endpoint: string, c: ReturnType<typeof collector>, prefetch = 10) =>
    broker.consumeTasks({ endpoint, types: ['worker'], prefetch }, c.onTask);

  it('keeps an addressed task for an endpoint that starts consuming later', async () => {
    const endpoint = uniqueName('late');
    const message = task([endpoint]);
    await broker.publishTask(message);
    const c = collector();
    const sub = await consume(endpoint, c);
    const [delivery] = await c.received(1);
    expect(JSON.parse(delivery?.content.toString() ?? '')).toEqual(message);
    expect(delivery?.messageId).toBe(`task-${message.id}`);
    expect(delivery?.redelivered).toBe(false);
    delivery?.ack();
    await sub.close();
  });

  it('fans a broadcast out to every endpoint queue', async () => {
    const [a, b] = [collector(), collector()];
    const subs = [await consume(uniqueName('fa'), a), await consume(uniqueName('fb'), b)];
    const message = task(null);
    await broker.publishTask(message);
    for (const c of [a, b]) {
      const [delivery] = await c.received(1);
      expect(idOf(delivery as Delivery)).toBe(message.id);
      delivery?.ack();
    }
    for (const sub of subs) await sub.close();
  });

  it('redelivers a requeued message, marked redelivered, and forgets an acked one', async () => {
    const endpoint = uniqueName('rq');
    const c = collector();
    const sub = await consume(endpoint, c);
    const message = task([endpoint]);
    await broker.publishTask(message);
    const [first] = await c.received(1);
    first?.requeue();
    const [, second] = await c.received(2);
    expect(idOf(second as Delivery)).toBe(message.id);
    expect(second?.redelivered).toBe(true);
    second?.ack();
    second?.ack(); // settling twice is harmless
    await pause(300);
    expect(c.got).toHaveLength(2);
    await sub.close();
  });

  it('gives unsettled messages back when a subscription closes', async () => {
    const endpoint = uniqueName('cl');
    const first = collector();
    const sub = await consume(endpoint, first);
    const message = task([endpoint]);
    await broker.publishTask(message);
    const [held] = await first.received(1);
    await sub.close();
    held?.ack(); // too late: a no-op, the message went back
    const second = collector();
    const again = await consume(endpoint, second);
    const [redelivered] = await second.received(1);
    expect(idOf(redelivered as Delivery)).toBe(message.id);
    expect(redelivered?.redelivered).toBe(true);
    redelivered?.ack();
    await again.close();
  });

  it('holds back deliveries beyond the prefetch until some are acked', async () => {
    const endpoint = uniqueName('pf');
    const c = collector();
    const sub = await consume(endpoint, c, 2);
    for (let i = 0; i < 5; i += 1) await broker.publishTask(task([endpoint]));
    await c.received(2);
    await pause(300);
    expect(c.got).toHaveLength(2);
    for (const d of c.got.slice(0, 2)) d.ack();
    await c.received(4);
    for (const d of c.got.slice(2, 4)) d.ack();
    const all = await c.received(5);
    all[4]?.ack();
    expect(new Set(all.map(idOf)).size).toBe(5);
    await sub.close();
  });

  it('stops delivering after cancel but still lets held messages be acked', async () => {
    const endpoint = uniqueName('cn');
    const c = collector();
    const sub = await consume(endpoint, c);
    await broker.publishTask(task([endpoint]));
    const [held] = await c.received(1);
    await sub.cancel();
    await broker.publishTask(task([endpoint]));
    await pause(300);
    expect(c.got).toHaveLength(1);
    held?.ack();
    await sub.close();
    const next = collector();
    const sub2 = await consume(endpoint, next);
    const [waiting] = await next.received(1);
    expect(waiting?.redelivered).toBe(false); // the one published after cancel, never delivered
    waiting?.ack();
    await sub2.close();
  });

  it('drops a task whose delivery deadline passed before it was consumed', async () => {
    const endpoint = uniqueName('ex');
    await broker.publishTask(task([endpoint], 100));
    await pause(400);
    const fresh = task([endpoint]);
    await broker.publishTask(fresh);
    const c = collector();
    const sub = await consume(endpoint, c);
    const [delivery] = await c.received(1);
    expect(idOf(delivery as Delivery)).toBe(fresh.id);
    delivery?.ack();
    await pause(200);
    expect(c.got).toHaveLength(1);
    await sub.close();
  });

  it('does not redeliver a dead-lettered message', async () => {
    const endpoint = uniqueName('dl');
    const c = collector();
    const sub = await consume(endpoint, c);
    await broker.publishTask(task([endpoint]));
    const [delivery] = await c.received(1);
    delivery?.deadLetter();
    await pause(300);
    expect(c.got).toHaveLength(1);
    await sub.close();
  });

  it('hands result events over in batches of at most batchSize, the rest after lingerMs', async () => {
    const batches: Delivery[][] = [];
    const sub = await broker.consumeResults({ prefetch: 100, batchSize: 2, lingerMs: 50 }, (b) => {
      batches.push(b);
      for (const d of b) d.ack();
      return Promise.resolve();
    });
    const endpoint = uniqueName('res');
    for (let i = 1; i <= 5; i += 1) await broker.publishResult(result(i, endpoint));
    await waitFor(
      () => Promise.resolve(batches.flat().length),
      (n) => n >= 5,
      5000,
      'five results',
    );
    expect(batches.every((b) => b.length <= 2)).toBe(true);
    const events = batches.flat().map((d) => JSON.parse(d.content.toString()) as ResultEvent);
    expect(events.map((e) => e.task_id).sort()).toEqual([1, 2, 3, 4, 5]);
    const ids = batches.flat().map((d) => d.messageId);
    expect(new Set(ids).size).toBe(5);
    // the broker's word for who published: RabbitMQ's validated user; no users in-process
    expect(batches.flat().map((d) => d.userId)).toEqual(Array(5).fill(fixture.userId));
    await sub.close();
  });

  it('refuses to publish once closed, with a 503-mapped error', async () => {
    const other = await open();
    await other.broker.close();
    await expect(other.broker.publishTask(task(['x']))).rejects.toBeInstanceOf(UnavailableError);
    await expect(other.broker.publishResult(result(1, 'x'))).rejects.toBeInstanceOf(
      UnavailableError,
    );
    await other.cleanup();
  });
});

describe('RabbitMQ broker only', () => {
  it('lets an agent that starts before the server wait for the exchanges', async () => {
    const prefix = uniqueName('early');
    const agent = amqpBroker(prefix, 'early-agent', false);
    const server = amqpBroker(prefix, 'late-server', true);
    try {
      await agent.start();
      const c = collector();
      // no exchanges yet: this used to fail with NOT_FOUND and end the agent
      const sub = await agent.consumeTasks(
        { endpoint: 'early', types: ['worker'], prefetch: 1 },
        c.onTask,
      );
      expect(c.got).toHaveLength(0);
      await server.start();
      const message = task(null);
      // a broadcast reaches only queues that exist: wait until the agent's queue is bound
      await waitFor(
        async () => {
          await server.publishTask(message);
          return c.got.length;
        },
        (n) => n > 0,
        10_000,
        'the agent to receive a broadcast',
      );
      expect(idOf(c.got[0] as Delivery)).toBe(message.id);
      for (const d of c.got) d.ack();
      await sub.close();
    } finally {
      await agent.close();
      await server.close();
      await deleteBrokerTopology(prefix);
    }
  });
});

describe('in-process broker only', () => {
  it('keeps dead-lettered and expired messages for inspection, bounded', async () => {
    const broker = new MemoryBroker({ prefix: 'tasker', log: testLog, maxDeadLetters: 2 });
    await broker.start();
    const rejected = task(['e1']);
    await broker.publishTask(task(['e1'], 1));
    await pause(20);
    await broker.publishTask(rejected);
    const c = collector();
    const sub = await broker.consumeTasks(
      { endpoint: 'e1', types: ['worker'], prefetch: 1 },
      c.onTask,
    );
    const [delivery] = await c.received(1);
    delivery?.deadLetter();
    expect(broker.deadLetters().map((d) => d.reason)).toEqual(['expired', 'rejected']);
    expect(broker.deadLetters()[1]?.messageId).toBe(`task-${rejected.id}`);
    // three more expire in a queue nobody consumes: only the most recent two are kept
    for (let i = 0; i < 3; i += 1) await broker.publishTask(task(['e2'], 1));
    await pause(20);
    await broker.publishTask(task(['e2']));
    expect(broker.deadLetters().map((d) => [d.queue, d.reason])).toEqual([
      ['tasker.worker.e2', 'expired'],
      ['tasker.worker.e2', 'expired'],
    ]);
    expect(broker.depth('tasker.worker.e2')).toBe(1);
    expect(broker.deadLetters()).toHaveLength(2);
    await sub.close();
    await broker.close();
    expect(broker.isConnected).toBe(false);
  });

  it('loses what was not consumed when the process ends: nothing is durable', async () => {
    const broker = new MemoryBroker({ prefix: 'tasker', log: testLog });
    await broker.start();
    await broker.publishTask(task(['gone']));
    expect(broker.depth('tasker.worker.gone')).toBe(1);
    await broker.close();
    const next = new MemoryBroker({ prefix: 'tasker', log: testLog });
    await next.start();
    expect(next.depth('tasker.worker.gone')).toBe(0);
    await next.close();
  });
});
