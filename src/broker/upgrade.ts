/**
 * `tasker upgrade-queues`: give endpoint queues made by an older tasker today's arguments
 * (`x-max-priority`, `x-expires`). RabbitMQ cannot change a queue's arguments, so a queue that
 * refuses them is rebuilt, its messages kept:
 *   1. a holding queue `<prefix>.events.upgrade.<type>.<endpoint>` is declared and bound to the
 *      type's exchange, and the old queue unbound: new tasks land in the holding queue;
 *   2. every message of the old queue is published to the holding queue (confirmed) and only
 *      then acked; the old queue, now empty, is deleted (RabbitMQ refuses if it is not);
 *   3. the queue is declared again with today's arguments and bound, the holding queue
 *      unbound, its messages moved back the same way, and it is deleted.
 * A queue with a consumer is left alone unless forced: its agent holds unacked deliveries that
 * would be lost with the queue; stop the endpoint's agent first. A task published between the
 * two bindings of step 3 reaches both queues and is delivered twice (tasker is at least once:
 * the agent answers a copy of a run it finished from memory). Messages keep their properties;
 * their time to live is what was left of it.
 */
import amqp, { type ConfirmChannel, type GetMessage } from 'amqplib';
import { MAX_PRIORITY } from '../domain';
import { splitBrokerUrls } from './session';
import {
  bindEndpointQueue,
  declareTaskType,
  endpointQueueOptions,
  names,
  type QueueType,
} from './topology';

export interface QueueUpgradeOptions {
  /** one URL, or a cluster's nodes separated by "," (the first that answers is used) */
  url: string;
  prefix: string;
  queueExpiresMs: number;
  /** what the queues are to be */
  queueType?: QueueType;
  queues: ReadonlyArray<{ type: string; endpoint: string }>;
  /** rebuild a queue even while an agent consumes it */
  force?: boolean;
  /** told of each queue as it is done */
  onQueue?(result: QueueUpgrade): void;
}

export interface QueueUpgrade {
  queue: string;
  /**
   * current: it takes today's arguments already; missing: no such queue; busy: it has
   * consumers (not forced); upgraded: rebuilt with its messages
   */
  outcome: 'current' | 'missing' | 'busy' | 'upgraded';
  /** messages moved (upgraded), or consumers (busy) */
  count: number;
}

/** RabbitMQ's reply code for a declare that differs from the queue's arguments */
const PRECONDITION_FAILED = 406;
const NOT_FOUND = 404;

export const holdingQueue = (prefix: string, type: string, endpoint: string): string =>
  `${names.eventsExchange(prefix)}.upgrade.${type}.${endpoint}`;

export async function upgradeQueues(options: QueueUpgradeOptions): Promise<QueueUpgrade[]> {
  const connection = await connectToAny(splitBrokerUrls(options.url));
  try {
    const results: QueueUpgrade[] = [];
    for (const { type, endpoint } of options.queues) {
      const result = await upgradeQueue(connection, options, type, endpoint);
      options.onQueue?.(result);
      results.push(result);
    }
    return results;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

async function connectToAny(urls: string[]): Promise<amqp.ChannelModel> {
  let failure: unknown = new Error('no broker URL given');
  for (const url of urls) {
    try {
      return await amqp.connect(url);
    } catch (err) {
      failure = err;
    }
  }
  throw failure;
}

/** Run `work` on a channel of its own, which an error of the broker may close. */
async function onChannel<T>(
  connection: amqp.ChannelModel,
  work: (ch: ConfirmChannel) => Promise<T>,
): Promise<T> {
  const ch = await connection.createConfirmChannel();
  ch.on('error', () => undefined);
  try {
    return await work(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

const codeOf = (err: unknown): unknown => (err as { code?: unknown }).code;

async function upgradeQueue(
  connection: amqp.ChannelModel,
  options: QueueUpgradeOptions,
  type: string,
  endpoint: string,
): Promise<QueueUpgrade> {
  const queue = names.endpointQueue(options.prefix, type, endpoint);
  const today = endpointQueueOptions(options.prefix, options.queueExpiresMs, options.queueType);
  let found: { consumerCount: number };
  try {
    found = await onChannel(connection, (ch) => ch.checkQueue(queue));
  } catch (err) {
    if (codeOf(err) === NOT_FOUND) return { queue, outcome: 'missing', count: 0 };
    throw err;
  }
  try {
    await onChannel(connection, (ch) => ch.assertQueue(queue, today));
    return { queue, outcome: 'current', count: 0 };
  } catch (err) {
    if (codeOf(err) !== PRECONDITION_FAILED) throw err;
  }
  if (found.consumerCount > 0 && options.force !== true) {
    return { queue, outcome: 'busy', count: found.consumerCount };
  }
  const exchange = names.taskExchange(options.prefix, type);
  const addressed = names.addressedExchange(options.prefix, type);
  const holding = holdingQueue(options.prefix, type, endpoint);
  const moved = await onChannel(connection, async (ch) => {
    await ch.assertQueue(holding, {
      durable: true,
      arguments: { 'x-max-priority': MAX_PRIORITY },
    });
    await declareTaskType(ch, options.prefix, type);
    await ch.bindQueue(holding, exchange, '');
    await ch.bindQueue(holding, addressed, endpoint);
    await ch.unbindQueue(queue, exchange, '');
    await ch.unbindQueue(queue, addressed, endpoint);
    const out = await moveMessages(ch, queue, holding);
    await ch.deleteQueue(queue, { ifEmpty: true });
    await ch.assertQueue(queue, today);
    await bindEndpointQueue(ch, options.prefix, type, endpoint, true);
    await ch.unbindQueue(holding, exchange, '');
    await ch.unbindQueue(holding, addressed, endpoint);
    await moveMessages(ch, holding, queue);
    await ch.deleteQueue(holding, { ifEmpty: true });
    return out;
  });
  return { queue, outcome: 'upgraded', count: moved };
}

/** Move every message of `from` to `to`: each published and confirmed before it is acked. */
async function moveMessages(ch: ConfirmChannel, from: string, to: string): Promise<number> {
  let moved = 0;
  for (;;) {
    const message = await ch.get(from, { noAck: false });
    if (message === false) return moved;
    await republish(ch, message, to);
    ch.ack(message);
    moved += 1;
  }
}

function republish(ch: ConfirmChannel, message: GetMessage, to: string): Promise<void> {
  const { properties } = message;
  // a time to live runs again from its publish: give what was left of it
  const ttl = leftToLive(properties.expiration, properties.timestamp);
  return new Promise((resolve, reject) => {
    ch.sendToQueue(
      to,
      message.content,
      {
        persistent: true,
        contentType: properties.contentType,
        messageId: properties.messageId,
        type: properties.type,
        timestamp: properties.timestamp,
        appId: properties.appId,
        headers: properties.headers,
        ...(properties.priority === undefined ? {} : { priority: properties.priority }),
        ...(ttl === null ? {} : { expiration: String(ttl) }),
      },
      (err) => (err === null || err === undefined ? resolve() : reject(err as Error)),
    );
  });
}

/** What is left of a message's `expiration` (ms, from `timestamp` in seconds); null: none. */
export function leftToLive(
  expiration: unknown,
  timestamp: unknown,
  nowMs = Date.now(),
): number | null {
  const ttl = Number(expiration);
  if (expiration === undefined || !Number.isFinite(ttl)) return null;
  if (typeof timestamp !== 'number') return Math.max(1, ttl);
  // the timestamp has whole seconds: count from the end of its second, never longer than given
  return Math.max(1, Math.min(ttl, timestamp * 1000 + 999 + ttl - nowMs));
}
