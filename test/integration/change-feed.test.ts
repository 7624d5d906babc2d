/**
 * The change feed on the real RabbitMQ: a server listens to the events exchange only while it
 * holds clients waiting for news (and a while after the last left), through a queue of its own
 * that exists only then; whoever watches hears every change from the moment `listen()` resolves.
 */
import { AmqpBroker } from '../../src/broker';
import { WIRE_VERSION, type ChangeEvent } from '../../src/domain';
import { ChangeFeed } from '../../src/server';
import { AMQP_URL, deleteBrokerNames, listBrokerNames, uniqueName } from '../support/services';
import { waitFor } from '../support/waiting';
import { testLog } from '../support/in-process';

jest.setTimeout(30_000);

const LINGER_MS = 300;

const prefix = uniqueName('cf');
let broker: AmqpBroker;
let feed: ChangeFeed;

function event(taskId: number, version: number): ChangeEvent {
  return {
    v: WIRE_VERSION,
    type: 'worker',
    task_id: taskId,
    identifier: `t${taskId}`,
    status: 'SENT',
    version,
    responses: [],
    at: new Date().toISOString(),
  };
}

/** Wait until `heard` holds one change. */
const heardOne = (heard: readonly ChangeEvent[], what: string): Promise<number> =>
  waitFor(
    () => Promise.resolve(heard.length),
    (n) => n === 1,
    5000,
    what,
  );

/** The events queues of this prefix that exist now: one per listening server. */
const listeningQueues = (): Promise<string[]> => listBrokerNames('queues', `${prefix}.events.`);

beforeAll(async () => {
  broker = new AmqpBroker({
    url: AMQP_URL,
    prefix,
    heartbeatSeconds: 30,
    confirmTimeoutMs: 5000,
    queueExpiresMs: 60_000,
    reconnectInitialDelayMs: 100,
    reconnectMaxDelayMs: 1000,
    connectionName: 'change-feed-test',
    log: testLog,
  });
  await broker.start();
  await broker.session.waitUntilConnected(5000);
  feed = new ChangeFeed(broker, testLog, undefined, LINGER_MS);
});

afterAll(async () => {
  await feed?.close();
  await broker?.close();
  await deleteBrokerNames(`${prefix}.`);
});

it('listens only while watched, and a while after, hearing every change meanwhile', async () => {
  // nobody waits: changes are published (for other systems), and this server takes none in
  await broker.publishChange(event(1, 1));
  expect(feed.isListening).toBe(false);
  expect(await listeningQueues()).toEqual([]);

  const heard: ChangeEvent[] = [];
  const stop = feed.watch(7, (change) => heard.push(change));
  await feed.listen();
  expect(feed.isListening).toBe(true);
  expect(await listeningQueues()).toHaveLength(1);
  await broker.publishChange(event(8, 1));
  await broker.publishChange(event(7, 2));
  await heardOne(heard, 'the change of task 7');
  expect(heard.map((change) => [change.task_id, change.version])).toEqual([[7, 2]]);

  // the last watcher left: still listening for LINGER_MS, for the next one
  stop();
  expect(feed.isListening).toBe(true);
  const all: ChangeEvent[] = [];
  const stopAll = feed.watchAll((change) => all.push(change));
  await new Promise((resolve) => setTimeout(resolve, LINGER_MS * 2));
  expect(feed.isListening).toBe(true);
  await broker.publishChange(event(9, 3));
  await heardOne(all, 'the change of task 9');
  stopAll();
  await waitFor(
    () => Promise.resolve(feed.isListening),
    (listening) => !listening,
    5000,
    'the feed stopping after its linger',
  );
  await waitFor(listeningQueues, (queues) => queues.length === 0, 5000, 'its queue gone');
  expect(feed.watchers).toBe(0);

  // the next watcher listens again
  const again: ChangeEvent[] = [];
  const stopAgain = feed.watch(10, (change) => again.push(change));
  await feed.listen();
  await broker.publishChange(event(10, 4));
  await heardOne(again, 'the change of task 10');
  stopAgain();
});
