/**
 * The broker contract: the same tests against the AMQP broker on the real RabbitMQ and against
 * the in-process broker of the embedded mode. What the rest of tasker relies on must hold for
 * both; where the in-process broker deliberately differs, the fixture names the difference and
 * a test shows both sides.
 */
import * as amqp from 'amqplib';
import {
  AmqpBroker,
  MemoryBroker,
  brokerNames,
  durableQueueOptions,
  type Delivery,
  type TaskBroker,
} from '../../src/broker';
import {
  UnavailableError,
  WIRE_VERSION,
  parseResultMessage,
  type ResultEvent,
  type TaskMessage,
} from '../../src/domain';
import { AMQP_URL, deleteBrokerNames, uniqueName } from '../support/services';
import { waitFor } from '../support/waiting';
import { testLog } from '../support/in-process';
import { resultEvent as result } from '../support/messages';

jest.setTimeout(20_000);

/** A dead-lettered message as either broker records it. */
interface DeadLetterSeen {
  queue: string;
  reason: string;
  messageId: string | null;
}

interface Fixture {
  broker: TaskBroker;
  prefix: string;
  /** what publishResult puts in userId: RabbitMQ's validated user; no users in-process */
  userId: string | null;
  /** whether expired messages behind a live one are purged (in-process) or kept (RabbitMQ) */
  purgesExpiredBehindHead: boolean;
  /** messages waiting in a queue, not counting delivered and unsettled ones */
  depth(queue: string): Promise<number>;
  /** whether a queue exists (on RabbitMQ asking renews its expiry, as any declare does) */
  exists(queue: string): Promise<boolean>;
  /** every message dead-lettered so far, oldest first */
  deadLetters(): Promise<DeadLetterSeen[]>;
  cleanup(): Promise<void>;
}

/** endpoint queues unused this long are deleted */
const QUEUE_EXPIRES_MS = 4000;

/** An AmqpBroker on the test RabbitMQ; `server` declares the worker exchange as a server does. */
function amqpBroker(
  prefix: string,
  name: string,
  server: boolean,
  queueType: 'classic' | 'quorum' = 'classic',
): AmqpBroker {
  return new AmqpBroker({
    queueType,
    url: AMQP_URL,
    prefix,
    heartbeatSeconds: 30,
    confirmTimeoutMs: 5000,
    queueExpiresMs: QUEUE_EXPIRES_MS,
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
  // a plain connection to look inside the queues, as an operator would
  const connection = await amqp.connect(AMQP_URL);
  const inspect = await connection.createChannel();
  const dead: DeadLetterSeen[] = [];
  return {
    broker,
    prefix,
    userId: 'guest',
    purgesExpiredBehindHead: false,
    depth: async (queue) => (await inspect.checkQueue(queue)).messageCount,
    exists: async (queue) => {
      // a passive declare of a missing queue closes its channel: use one of its own
      const probe = await connection.createChannel();
      probe.on('error', () => undefined);
      try {
        await probe.checkQueue(queue);
        await probe.close();
        return true;
      } catch (err) {
        if ((err as { code?: unknown }).code === 404) return false;
        throw err;
      }
    },
    deadLetters: async () => {
      for (;;) {
        const message = await inspect.get(brokerNames.deadQueue(prefix), { noAck: true });
        if (message === false) return dead;
        const headers = (message.properties.headers ?? {}) as Record<string, unknown>;
        dead.push({
          queue: String(headers['x-first-death-queue']),
          reason: String(headers['x-first-death-reason']),
          messageId: (message.properties.messageId as string | undefined) ?? null,
        });
      }
    },
    cleanup: async () => {
      await broker.close();
      await connection.close();
      await deleteBrokerNames(`${prefix}.`);
    },
  };
}

async function inProcess(): Promise<Fixture> {
  const prefix = 'tasker';
  // purge expired messages often, so the tests need not wait the default second
  const broker = new MemoryBroker({
    prefix,
    log: testLog,
    expiryCheckMs: 50,
    queueExpiresMs: QUEUE_EXPIRES_MS,
  });
  await broker.start();
  return {
    broker,
    prefix,
    userId: null,
    purgesExpiredBehindHead: true,
    depth: (queue) => Promise.resolve(broker.depth(queue)),
    exists: (queue) => Promise.resolve(broker.hasQueue(queue)),
    deadLetters: () =>
      Promise.resolve(
        broker.deadLetters().map(({ queue, reason, messageId }) => ({ queue, reason, messageId })),
      ),
    cleanup: () => broker.close(),
  };
}

let seq = 0;
/** A task message that expires in `expiresInMs` (its delivery deadline plus 1 ms to run). */
function task(endpoints: string[] | null, expiresInMs = 60_000): TaskMessage {
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
    deliver_by: new Date(now + expiresInMs - 1).toISOString(),
    execution_timeout_ms: 1,
    max_deliveries: 3,
    round: 1,
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

const idOf = (d: Delivery | undefined): number =>
  (JSON.parse(d?.content.toString() ?? 'null') as TaskMessage).id;
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
  const queueOf = (endpoint: string): string =>
    brokerNames.endpointQueue(fixture.prefix, 'worker', endpoint);
  /** wait until `n` messages of `queue` were dead-lettered and return them */
  const deadFrom = (queue: string, n: number): Promise<DeadLetterSeen[]> =>
    waitFor(
      async () => (await fixture.deadLetters()).filter((d) => d.queue === queue),
      (list) => list.length >= n,
      5000,
      `${n} dead letters from ${queue}`,
    );

  /** A fresh endpoint consuming its queue, and a task addressed to it, delivered. */
  const oneTaskDelivered = async (kind: string) => {
    const endpoint = uniqueName(kind);
    const c = collector();
    const sub = await consume(endpoint, c);
    const message = task([endpoint]);
    await broker.publishTask(message);
    const [delivery] = await c.received(1);
    return { endpoint, c, sub, message, delivery };
  };

  /** A fresh endpoint consuming its queue with `prefetch`, and `count` tasks addressed to it. */
  const consumingWithTasks = async (kind: string, prefetch: number, count: number) => {
    const endpoint = uniqueName(kind);
    const c = collector();
    const sub = await consume(endpoint, c, prefetch);
    for (let i = 0; i < count; i += 1) await broker.publishTask(task([endpoint]));
    return { c, sub };
  };

  it('keeps an addressed task for an endpoint that starts consuming later', async () => {
    const endpoint = uniqueName('late');
    const message = task([endpoint]);
    await broker.publishTask(message);
    expect(await fixture.depth(queueOf(endpoint))).toBe(1);
    const c = collector();
    const sub = await consume(endpoint, c);
    const [delivery] = await c.received(1);
    expect(JSON.parse(delivery?.content.toString() ?? '')).toEqual(message);
    expect(delivery?.messageId).toBe(`task-${message.id}`);
    expect(delivery?.redelivered).toBe(false);
    delivery?.ack();
    await sub.close();
  });

  it('puts a task for named endpoints in their queues alone, a broadcast in every one', async () => {
    const [a, b, other] = ['to-a', 'to-b', 'other'].map((kind) => uniqueName(kind));
    const sub = await consume(other as string, collector());
    await sub.cancel();
    await broker.publishTask(task([a as string, b as string]));
    for (const endpoint of [a, b]) expect(await fixture.depth(queueOf(endpoint as string))).toBe(1);
    expect(await fixture.depth(queueOf(other as string))).toBe(0);
    await broker.publishTask(task(null));
    expect(await fixture.depth(queueOf(other as string))).toBe(1);
    expect(await fixture.depth(queueOf(a as string))).toBe(2);
    await sub.close();
  });

  it('delivers the waiting tasks by priority, highest first, in order within one', async () => {
    const endpoint = uniqueName('prio');
    const sent = [0, 9, 5, 9, 0].map((priority) => ({ ...task([endpoint]), priority }));
    for (const message of sent) await broker.publishTask(message);
    const c = collector();
    const sub = await consume(endpoint, c, 1);
    const order: number[] = [];
    for (let n = 1; n <= sent.length; n += 1) {
      const delivery = (await c.received(n))[n - 1];
      order.push((JSON.parse(delivery?.content.toString() ?? '') as TaskMessage).id);
      delivery?.ack();
    }
    const ids = sent.map((message) => message.id);
    expect(order).toEqual([ids[1], ids[3], ids[2], ids[0], ids[4]]);
    await sub.close();
  });

  it("counts the tasks waiting in an endpoint's queues, not those delivered", async () => {
    const endpoint = uniqueName('waiting');
    await broker.publishTask(task([endpoint]));
    await broker.publishTask(task([endpoint]));
    expect(await broker.waitingTasks(endpoint, ['worker'])).toBe(2);
    const c = collector();
    const sub = await consume(endpoint, c, 1);
    const [first] = await c.received(1);
    expect(await broker.waitingTasks(endpoint, ['worker'])).toBe(1);
    first?.ack();
    const [, second] = await c.received(2);
    second?.ack();
    expect(await broker.waitingTasks(endpoint, ['worker'])).toBe(0);
    await sub.close();
  });

  it('fans a broadcast out to the endpoint queues that exist when it is published', async () => {
    const [a, b, late] = [collector(), collector(), collector()];
    const subs = [await consume(uniqueName('fa'), a), await consume(uniqueName('fb'), b)];
    const message = task(null);
    await broker.publishTask(message);
    for (const c of [a, b]) {
      const [delivery] = await c.received(1);
      expect(idOf(delivery)).toBe(message.id);
      delivery?.ack();
    }
    // a fanout copies to bound queues only: an endpoint whose queue came later gets nothing
    subs.push(await consume(uniqueName('fc'), late));
    await pause(300);
    expect(late.got).toHaveLength(0);
    for (const sub of subs) await sub.close();
  });

  it('deletes an endpoint queue left unused, with what it holds; a consumed one stays', async () => {
    const { broker, prefix } = fixture;
    const live = collector();
    const subscription = await broker.consumeTasks(
      { endpoint: 'stays', types: ['worker'], prefetch: 10 },
      live.onTask,
    );
    await broker.publishTask(task(['stays', 'made-up']));
    await live.received(1);
    const gone = brokerNames.endpointQueue(prefix, 'worker', 'made-up');
    const stays = brokerNames.endpointQueue(prefix, 'worker', 'stays');
    expect(await fixture.depth(gone)).toBe(1);
    // not polled meanwhile: on RabbitMQ a passive declare counts as a use and renews the queue
    await pause(QUEUE_EXPIRES_MS + 2000);
    expect(await fixture.exists(gone)).toBe(false);
    expect(await fixture.exists(stays)).toBe(true);
    // the live endpoint still gets what comes next, and the gone one takes no copy of it
    await broker.publishTask(task(null));
    await live.received(2);
    expect(await fixture.exists(gone)).toBe(false);
    await subscription.close();
  });

  it('redelivers a requeued message, marked redelivered, and forgets an acked one', async () => {
    const { endpoint, c, sub, message, delivery: first } = await oneTaskDelivered('rq');
    first?.requeue();
    const [, second] = await c.received(2);
    expect(idOf(second)).toBe(message.id);
    expect(second?.redelivered).toBe(true);
    expect(second?.messageId).toBe(first?.messageId);
    second?.ack();
    // settling again is harmless: no error, and the acked message does not come back
    second?.ack();
    second?.requeue();
    first?.requeue();
    await pause(300);
    expect(c.got).toHaveLength(2);
    expect(await fixture.depth(queueOf(endpoint))).toBe(0);
    await sub.close();
  });

  it('gives unsettled messages back when a subscription closes', async () => {
    const endpoint = uniqueName('cl');
    const first = collector();
    const sub = await consume(endpoint, first);
    const messages = [task([endpoint]), task([endpoint])];
    for (const message of messages) await broker.publishTask(message);
    const [held] = await first.received(2);
    await sub.close();
    held?.ack(); // too late: a no-op, the message went back
    const second = collector();
    const again = await consume(endpoint, second);
    const redelivered = await second.received(2);
    expect(redelivered.map(idOf).sort()).toEqual(messages.map((m) => m.id).sort());
    expect(redelivered.every((d) => d.redelivered)).toBe(true);
    expect(redelivered.map((d) => d.messageId).sort()).toEqual(
      messages.map((m) => `task-${m.id}`).sort(),
    );
    for (const d of redelivered) d.ack();
    await again.close();
  });

  it('holds back deliveries beyond the prefetch until some are acked', async () => {
    const { c, sub } = await consumingWithTasks('pf', 2, 5);
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

  it('takes a prefetch of 0 as no limit, as AMQP does', async () => {
    const { c, sub } = await consumingWithTasks('p0', 0, 3);
    const all = await c.received(3);
    for (const d of all) d.ack();
    await sub.close();
  });

  it('stops delivering after cancel but still lets held messages be acked', async () => {
    const { endpoint, c, sub, delivery: held } = await oneTaskDelivered('cn');
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

  it('dead-letters a task whose delivery deadline passed, and never delivers it', async () => {
    const endpoint = uniqueName('ex');
    const expired = task([endpoint], 100);
    await broker.publishTask(expired);
    const [dead] = await deadFrom(queueOf(endpoint), 1);
    expect(dead).toEqual({
      queue: queueOf(endpoint),
      reason: 'expired',
      messageId: `task-${expired.id}`,
    });
    const fresh = task([endpoint]);
    await broker.publishTask(fresh);
    const c = collector();
    const sub = await consume(endpoint, c);
    const [delivery] = await c.received(1);
    expect(idOf(delivery)).toBe(fresh.id);
    delivery?.ack();
    await pause(200);
    expect(c.got).toHaveLength(1);
    await sub.close();
  });

  it('purges expired tasks behind a live one (in-process) or keeps them till the head (RabbitMQ)', async () => {
    const endpoint = uniqueName('eh');
    const live = task([endpoint]);
    await broker.publishTask(live);
    for (let i = 0; i < 2; i += 1) await broker.publishTask(task([endpoint], 50));
    await pause(400);
    // the deliberate difference: in-process memory holds only live messages
    expect(await fixture.depth(queueOf(endpoint))).toBe(fixture.purgesExpiredBehindHead ? 1 : 3);
    // what matters to tasker is the same: only the live task is delivered, the others dead-lettered
    const c = collector();
    const sub = await consume(endpoint, c);
    const [delivery] = await c.received(1);
    expect(idOf(delivery)).toBe(live.id);
    delivery?.ack();
    const dead = await deadFrom(queueOf(endpoint), 2);
    expect(dead.map((d) => d.reason)).toEqual(['expired', 'expired']);
    await pause(200);
    expect(c.got).toHaveLength(1);
    await sub.close();
  });

  it('sends a dead-lettered task or result event to the dead letters, never back', async () => {
    const { endpoint, c, sub, message, delivery } = await oneTaskDelivered('dl');
    delivery?.deadLetter();
    delivery?.requeue(); // settled already: no effect
    const [dead] = await deadFrom(queueOf(endpoint), 1);
    expect(dead).toEqual({
      queue: queueOf(endpoint),
      reason: 'rejected',
      messageId: `task-${message.id}`,
    });
    await pause(200);
    expect(c.got).toHaveLength(1);
    await sub.close();

    // the recorder dead-letters events it cannot use: they leave the results queue the same way
    let ids: Array<string | null> = [];
    const results = await broker.consumeResults(
      { prefetch: 10, batchSize: 10, lingerMs: 20 },
      (b) => {
        ids = b.map((d) => d.messageId);
        for (const d of b) d.deadLetter();
        return Promise.resolve();
      },
    );
    await broker.publishResult(result(1, endpoint));
    const resultsQueue = brokerNames.resultsQueue(fixture.prefix);
    const [deadResult] = await deadFrom(resultsQueue, 1);
    expect(deadResult).toEqual({ queue: resultsQueue, reason: 'rejected', messageId: ids[0] });
    await results.close();
  });

  it('sets no delivery limit: the agent counts deliveries, the broker redelivers on', async () => {
    // max_deliveries (3) is the agent's limit, not the broker's
    const { endpoint, c, sub, message, delivery } = await oneTaskDelivered('lim');
    delivery?.requeue();
    for (let n = 2; n <= message.max_deliveries + 2; n += 1) {
      const deliveries = await c.received(n);
      deliveries[n - 1]?.requeue();
    }
    const all = await c.received(message.max_deliveries + 3);
    expect(all.map(idOf)).toEqual(Array(message.max_deliveries + 3).fill(message.id));
    expect(all.slice(1).every((d) => d.redelivered)).toBe(true);
    all.at(-1)?.ack();
    expect(await fixture.deadLetters()).not.toContainEqual(
      expect.objectContaining({ queue: queueOf(endpoint) }),
    );
    await sub.close();
  });

  it('hands result events over in batches of at most batchSize, the rest after lingerMs', async () => {
    const endpoint = uniqueName('res');
    for (let i = 1; i <= 5; i += 1) await broker.publishResult(result(i, endpoint));
    const batches: Array<{ at: number; deliveries: Delivery[] }> = [];
    const sub = await broker.consumeResults({ prefetch: 100, batchSize: 2, lingerMs: 300 }, (b) => {
      batches.push({ at: Date.now(), deliveries: b });
      for (const d of b) d.ack();
      return Promise.resolve();
    });
    await waitFor(
      () => Promise.resolve(batches.flatMap((b) => b.deliveries).length),
      (n) => n >= 5,
      5000,
      'five results',
    );
    // two full batches at once, the odd one out only after lingering
    expect(batches.map((b) => b.deliveries.length)).toEqual([2, 2, 1]);
    const [first, , last] = batches;
    expect((last?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(250);
    expect((last?.at ?? 0) - (first?.at ?? 0)).toBeLessThan(2000);
    const deliveries = batches.flatMap((b) => b.deliveries);
    const events = deliveries.map((d) => JSON.parse(d.content.toString()) as ResultEvent);
    expect(events.map((e) => e.task_id).sort()).toEqual([1, 2, 3, 4, 5]);
    const ids = deliveries.map((d) => d.messageId);
    expect(new Set(ids).size).toBe(5);
    expect(ids.every((id) => /^[0-9a-f-]{36}$/.test(id ?? ''))).toBe(true);
    // the deliberate difference: no broker users in-process, so nothing vouches for the agent
    expect(deliveries.map((d) => d.userId)).toEqual(Array(5).fill(fixture.userId));
    await sub.close();
  });

  it('publishes events sent together as one message, and a single one as itself', async () => {
    const endpoint = uniqueName('grp');
    const seen: Delivery[] = [];
    const sub = await broker.consumeResults({ prefetch: 10, batchSize: 10, lingerMs: 20 }, (b) => {
      seen.push(...b);
      for (const d of b) d.ack();
      return Promise.resolve();
    });
    await broker.publishResults([result(1, endpoint), result(2, endpoint), result(3, endpoint)]);
    await broker.publishResults([result(4, endpoint)]);
    await broker.publishResults([]);
    await waitFor(
      () => Promise.resolve(seen.length),
      (n) => n >= 2,
      5000,
      'two messages',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const bodies = seen.map((d) => JSON.parse(d.content.toString()) as unknown);
    expect(bodies).toHaveLength(2);
    expect((bodies[0] as ResultEvent[]).map((e) => e.task_id)).toEqual([1, 2, 3]);
    expect((bodies[1] as ResultEvent).task_id).toBe(4);
    expect(parseResultMessage(seen[0]?.content ?? '').events).toHaveLength(3);
    await sub.close();
  });

  it('holds results that arrive while a batch runs and hands them over together after it', async () => {
    const endpoint = uniqueName('held');
    const sizes: number[] = [];
    let running = 0;
    let overlapped = false;
    let release = (): void => undefined;
    const firstDone = new Promise<void>((resolve) => {
      release = resolve;
    });
    const sub = await broker.consumeResults(
      { prefetch: 100, batchSize: 100, lingerMs: 20 },
      async (b) => {
        overlapped ||= running > 0;
        running += 1;
        sizes.push(b.length);
        if (sizes.length === 1) await firstDone;
        for (const d of b) d.ack();
        running -= 1;
      },
    );
    await broker.publishResult(result(1, endpoint));
    await waitFor(
      () => Promise.resolve(sizes.length),
      (n) => n === 1,
      5000,
      'the first batch',
    );
    // one every 30 ms, longer than lingerMs: still they wait for the running batch together,
    // instead of forming ten batches of one behind it
    for (let i = 2; i <= 11; i += 1) {
      await broker.publishResult(result(i, endpoint));
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    expect(sizes).toEqual([1]);
    // every one of them handed to the consumer (a confirm can come before its delivery)
    await waitFor(
      () => fixture.depth(brokerNames.resultsQueue(fixture.prefix)),
      (n) => n === 0,
      5000,
      'the results queue empty',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    await waitFor(
      () => Promise.resolve(sizes.reduce((a, b) => a + b, 0)),
      (n) => n === 11,
      5000,
      'all eleven results',
    );
    expect(sizes).toEqual([1, 10]);
    expect(overlapped).toBe(false);
    await sub.close();
  });

  it('keeps a result event’s messageId when the recorder hands it back', async () => {
    const seen: Delivery[] = [];
    const sub = await broker.consumeResults({ prefetch: 10, batchSize: 10, lingerMs: 20 }, (b) => {
      seen.push(...b);
      for (const d of b) {
        if (d.redelivered) d.ack();
        else d.requeue();
      }
      return Promise.resolve();
    });
    await broker.publishResult(result(7, uniqueName('rr')));
    const [first, second] = await waitFor(
      () => Promise.resolve(seen),
      (list) => list.length >= 2,
      5000,
      'a result and its redelivery',
    );
    expect(second?.redelivered).toBe(true);
    expect(second?.messageId).toBe(first?.messageId);
    expect(second?.content.equals(first?.content ?? Buffer.alloc(0))).toBe(true);
    await sub.close();
  });

  it('refuses to publish once closed, with a 503-mapped error; close twice is fine', async () => {
    const other = await open();
    expect(other.broker.isConnected).toBe(true);
    await other.broker.close();
    await other.broker.close();
    expect(other.broker.isConnected).toBe(false);
    await expect(other.broker.publishTask(task(['x']))).rejects.toBeInstanceOf(UnavailableError);
    await expect(other.broker.publishResult(result(1, 'x'))).rejects.toBeInstanceOf(
      UnavailableError,
    );
    await other.cleanup();
  });
});

/** Publish until the broker takes it: a declare refused for an old queue reopens the channel. */
function publishEventually(broker: TaskBroker, message: TaskMessage): Promise<boolean> {
  return waitFor(
    () =>
      broker.publishTask(message).then(
        () => true,
        () => false,
      ),
    (published) => published,
    10_000,
    `task ${message.id} published`,
  );
}

describe('RabbitMQ broker only', () => {
  it('uses a queue an older tasker made with other arguments as it is', async () => {
    const prefix = uniqueName('old');
    const server = amqpBroker(prefix, 'old-queues-server', true);
    const agent = amqpBroker(prefix, 'old-queues-agent', false);
    const connection = await amqp.connect(AMQP_URL);
    try {
      await server.start();
      await server.session.waitUntilConnected(5000);
      // as tasker declared endpoint queues before they expired: no x-expires
      const ch = await connection.createChannel();
      const legacy = brokerNames.endpointQueue(prefix, 'worker', 'legacy');
      await ch.assertQueue(legacy, durableQueueOptions(prefix));
      const message = task(['legacy']);
      // the first publish may find the declare refused (its channel reopens); the relay retries
      await publishEventually(server, message);
      expect((await ch.checkQueue(legacy)).messageCount).toBe(1);
      await agent.start();
      const c = collector();
      const sub = await agent.consumeTasks(
        { endpoint: 'legacy', types: ['worker'], prefetch: 1 },
        c.onTask,
      );
      await c.received(1);
      expect(idOf(c.got[0])).toBe(message.id);
      c.got[0]?.ack();
      await sub.close();
      await ch.close();
    } finally {
      await connection.close();
      await agent.close();
      await server.close();
      await deleteBrokerNames(`${prefix}.`);
    }
  });

  it('keeps the classic queues of a deployment switched to quorum queues, results included', async () => {
    const prefix = uniqueName('toq');
    const classic = amqpBroker(prefix, 'classic-server', true);
    const quorum = (name: string, server: boolean) => amqpBroker(prefix, name, server, 'quorum');
    const connection = await amqp.connect(AMQP_URL);
    const brokers: AmqpBroker[] = [classic];
    try {
      // a classic deployment: results, endpoint and control queues
      await classic.start();
      const first = await classic.consumeTasks(
        { endpoint: 'q1', types: ['worker'], prefetch: 1 },
        () => Promise.resolve(),
        () => undefined,
      );
      await first.close();
      const firstResults = await classic.consumeResults(
        { prefetch: 10, batchSize: 10, lingerMs: 10 },
        () => Promise.resolve(),
      );
      await firstResults.close();
      await classic.close();
      const server = quorum('quorum-server', true);
      const agent = quorum('quorum-agent', false);
      brokers.push(server, agent);
      await server.start();
      const got: ResultEvent[] = [];
      await server.consumeResults({ prefetch: 10, batchSize: 10, lingerMs: 10 }, async (batch) => {
        for (const delivery of batch) {
          got.push(...parseResultMessage(delivery.content).events);
          delivery.ack();
        }
      });
      const message = task(['q1']);
      await publishEventually(server, message);
      await agent.start();
      const c = collector();
      await agent.consumeTasks(
        { endpoint: 'q1', types: ['worker'], prefetch: 1 },
        c.onTask,
        () => undefined,
      );
      await c.received(1);
      c.got[0]?.ack();
      await agent.publishResult(result(message.id, 'q1'));
      await waitFor(
        async () => got.length,
        (n) => n === 1,
        10_000,
        'the result recorded',
      );
      const ch = await connection.createChannel();
      for (const queue of [
        brokerNames.resultsQueue(prefix),
        brokerNames.endpointQueue(prefix, 'worker', 'q1'),
        brokerNames.controlQueue(prefix, 'q1'),
      ]) {
        // still there, as they were made
        expect((await ch.checkQueue(queue)).queue).toBe(queue);
      }
      await ch.close();
    } finally {
      await connection.close();
      for (const broker of brokers) await broker.close();
      await deleteBrokerNames(`${prefix}.`);
    }
  });

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
      expect(idOf(c.got[0])).toBe(message.id);
      for (const d of c.got) d.ack();
      await sub.close();
    } finally {
      await agent.close();
      await server.close();
      await deleteBrokerNames(`${prefix}.`);
    }
  });
});

describe('in-process broker only', () => {
  const started = async (
    options: Partial<ConstructorParameters<typeof MemoryBroker>[0]> = {},
  ): Promise<MemoryBroker> => {
    const broker = new MemoryBroker({ prefix: 'tasker', log: testLog, ...options });
    await broker.start();
    return broker;
  };

  it('keeps only the most recent maxDeadLetters dead letters', async () => {
    const broker = await started({ maxDeadLetters: 2, expiryCheckMs: 10 });
    const expiring = [task(['e1'], 1), task(['e1'], 1), task(['e1'], 1)];
    for (const message of expiring) await broker.publishTask(message);
    await waitFor(
      () => Promise.resolve(broker.depth('tasker.worker.e1')),
      (n) => n === 0,
      2000,
      'the expired tasks purged',
    );
    expect(broker.deadLetters().map((d) => d.messageId)).toEqual(
      expiring.slice(1).map((m) => `task-${m.id}`),
    );
    await broker.close();
  });

  it('never delivers an expired task, even before the periodic purge got to it', async () => {
    const broker = await started({ expiryCheckMs: 60_000 });
    const expired = task(['stale'], 50);
    await broker.publishTask(expired);
    await pause(150);
    expect(broker.depth('tasker.worker.stale')).toBe(1); // not purged yet
    const c = collector();
    const sub = await broker.consumeTasks(
      { endpoint: 'stale', types: ['worker'], prefetch: 1 },
      c.onTask,
    );
    await pause(100);
    expect(c.got).toHaveLength(0);
    expect(broker.deadLetters().map((d) => [d.messageId, d.reason])).toEqual([
      [`task-${expired.id}`, 'expired'],
    ]);
    await sub.close();
    await broker.close();
  });

  it('loses what was not consumed when the process ends: nothing is durable', async () => {
    const broker = await started();
    await broker.publishTask(task(['gone']));
    expect(broker.depth('tasker.worker.gone')).toBe(1);
    await broker.close();
    const next = await started();
    expect(next.depth('tasker.worker.gone')).toBe(0);
    await next.close();
  });

  it('delivers on a later turn of the event loop, never inside publish', async () => {
    const broker = await started();
    const c = collector();
    const sub = await broker.consumeTasks(
      { endpoint: 'sync', types: ['worker'], prefetch: 1 },
      c.onTask,
    );
    const published = broker.publishTask(task(['sync']));
    expect(c.got).toHaveLength(0);
    await published;
    expect(c.got).toHaveLength(0);
    await c.received(1);
    c.got[0]?.ack();
    await sub.close();
    await broker.close();
  });

  it('starts delivering to consumers added before start(), and refuses publishing until then', async () => {
    const broker = new MemoryBroker({ prefix: 'tasker', log: testLog });
    expect(broker.isConnected).toBe(false);
    await expect(broker.publishTask(task(['pre']))).rejects.toBeInstanceOf(UnavailableError);
    const c = collector();
    const sub = await broker.consumeTasks(
      { endpoint: 'pre', types: ['worker'], prefetch: 1 },
      c.onTask,
    );
    await broker.start();
    await broker.start();
    await broker.publishTask(task(['pre']));
    await c.received(1);
    c.got[0]?.ack();
    await sub.close();
    await broker.close();
  });

  it('settles nothing and throws nothing for a delivery held across the broker closing', async () => {
    const broker = await started();
    const c = collector();
    await broker.consumeTasks({ endpoint: 'held', types: ['worker'], prefetch: 1 }, c.onTask);
    await broker.publishTask(task(['held']));
    const [held] = await c.received(1);
    await broker.close(); // closes the subscription: the message goes back, redelivered
    expect(broker.depth('tasker.worker.held')).toBe(1);
    expect(() => {
      held?.ack();
      held?.deadLetter();
    }).not.toThrow();
    expect(broker.depth('tasker.worker.held')).toBe(1);
    expect(broker.deadLetters()).toHaveLength(0);
  });
});
