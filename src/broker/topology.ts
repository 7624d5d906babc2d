/**
 * Exchange and queue names and arguments. Server and agents both declare the same queues, so
 * they must agree on arguments to the letter (RabbitMQ refuses a redeclare that differs).
 */
import type { Options } from 'amqplib';
import { MAX_PRIORITY } from '../domain';

export const names = {
  /** a fanout exchange: a broadcast reaches every endpoint queue of the type */
  taskExchange: (prefix: string, type: string): string => `${prefix}.${type}`,
  /**
   * a direct exchange: a task for named endpoints is published once, with their names as its
   * BCC routing keys, and reaches their queues alone (the server binds each queue by its
   * endpoint's name when it declares it for such a task)
   */
  addressedExchange: (prefix: string, type: string): string => `${prefix}.${type}.addressed`,
  endpointQueue: (prefix: string, type: string, endpoint: string): string =>
    `${prefix}.${type}.${endpoint}`,
  resultsExchange: (prefix: string): string => `${prefix}.results`,
  resultsQueue: (prefix: string): string => `${prefix}.results`,
  deadExchange: (prefix: string): string => `${prefix}.dead`,
  deadQueue: (prefix: string): string => `${prefix}.dead`,
  /** a topic exchange: control messages go by their task type as routing key */
  controlExchange: (prefix: string): string => `${prefix}.control`,
  controlQueue: (prefix: string, endpoint: string): string => `${prefix}.control.${endpoint}`,
  /** a topic exchange: every change of a task, by `<type>.<task status>` */
  eventsExchange: (prefix: string): string => `${prefix}.events`,
  /**
   * a server's own queue of change events, under the prefix so that a server user whose rights
   * end at `<prefix>.*` may declare it (`events` is a reserved type name: no endpoint queue
   * is named so)
   */
  watchQueue: (prefix: string, id: string): string => `${prefix}.events.${id}`,
};

/**
 * classic: one node holds the queue; quorum: replicated over a cluster's nodes (Raft), for a
 * queue that outlives the loss of a node. No priorities on RabbitMQ's quorum queues.
 */
export type QueueType = 'classic' | 'quorum';

/**
 * How often a quorum queue delivers a message before it dead-letters it. A backstop only: the
 * agent fails a task that crashes it after its type's `max_deliveries` (at most 100) and
 * reports it; every hand-back at a shutdown counts a delivery here too.
 */
export const QUORUM_DELIVERY_LIMIT = 200;

export function durableQueueOptions(
  prefix: string,
  queueType: QueueType = 'classic',
): Options.AssertQueue {
  const dead = { 'x-dead-letter-exchange': names.deadExchange(prefix) };
  if (queueType === 'classic') return { durable: true, arguments: dead };
  return {
    durable: true,
    arguments: { ...dead, 'x-queue-type': 'quorum', 'x-delivery-limit': QUORUM_DELIVERY_LIMIT },
  };
}

/**
 * An endpoint's queue also expires once unused for `expiresMs` (no consumer, not declared
 * again): a queue bound to a fanout exchange takes a copy of every task of its type for as long
 * as it exists, so one for an endpoint that went away, or never was, must not live for ever.
 * Its messages are delivered by priority (`x-max-priority`): an urgent task overtakes the
 * routine ones waiting. A queue made before either argument is kept as it is (see amqp.ts)
 * until `tasker upgrade-queues` moves its messages to one with today's arguments.
 */
export function endpointQueueOptions(
  prefix: string,
  expiresMs: number,
  queueType: QueueType = 'classic',
): Options.AssertQueue {
  const options = controlQueueOptions(prefix, expiresMs, queueType);
  if (queueType === 'quorum') return options;
  return { ...options, arguments: { ...options.arguments, 'x-max-priority': MAX_PRIORITY } };
}

/** An endpoint's queue of cancels: as its task queues, without priorities. */
export function controlQueueOptions(
  prefix: string,
  expiresMs: number,
  queueType: QueueType = 'classic',
): Options.AssertQueue {
  const options = durableQueueOptions(prefix, queueType);
  return { ...options, arguments: { ...options.arguments, 'x-expires': expiresMs } };
}

/** How a queue is declared: RabbitMQ's assertQueue, or one that keeps a queue made before. */
export type DeclareQueue = (
  ch: Declarer,
  queue: string,
  options: Options.AssertQueue,
) => Promise<unknown>;

export interface Declarer {
  assertExchange(name: string, type: string, options?: Options.AssertExchange): Promise<unknown>;
  checkExchange(name: string): Promise<unknown>;
  assertQueue(name: string, options?: Options.AssertQueue): Promise<unknown>;
  bindQueue(queue: string, exchange: string, pattern: string): Promise<unknown>;
}

/** The dead-letter exchange/queue and the results exchange/queue every process relies on. */
export async function declareCommon(
  ch: Declarer,
  prefix: string,
  queueType: QueueType = 'classic',
  declareQueue: DeclareQueue = (on, queue, options) => on.assertQueue(queue, options),
): Promise<void> {
  await ch.assertExchange(names.deadExchange(prefix), 'fanout', { durable: true });
  await ch.assertQueue(names.deadQueue(prefix), { durable: true });
  await ch.bindQueue(names.deadQueue(prefix), names.deadExchange(prefix), '');
  await ch.assertExchange(names.resultsExchange(prefix), 'fanout', { durable: true });
  await declareQueue(ch, names.resultsQueue(prefix), durableQueueOptions(prefix, queueType));
  await ch.bindQueue(names.resultsQueue(prefix), names.resultsExchange(prefix), '');
  await ch.assertExchange(names.controlExchange(prefix), 'topic', { durable: true });
  await ch.assertExchange(names.eventsExchange(prefix), 'topic', { durable: true });
}

export async function declareTaskType(ch: Declarer, prefix: string, type: string): Promise<void> {
  await ch.assertExchange(names.taskExchange(prefix, type), 'fanout', { durable: true });
  await ch.assertExchange(names.addressedExchange(prefix, type), 'direct', { durable: true });
}

/**
 * Bind an endpoint's queue to its type's exchanges: the fanout one (broadcasts), and, with
 * `addressed`, the direct one by the endpoint's name (tasks naming it). Agents bind the first
 * only: they have no rights on the direct exchange.
 */
export async function bindEndpointQueue(
  ch: Declarer,
  prefix: string,
  type: string,
  endpoint: string,
  addressed: boolean,
): Promise<void> {
  const queue = names.endpointQueue(prefix, type, endpoint);
  await ch.bindQueue(queue, names.taskExchange(prefix, type), '');
  if (addressed) await ch.bindQueue(queue, names.addressedExchange(prefix, type), endpoint);
}

/**
 * The exchanges an agent's queue is bound to must exist (the server declares them; checking
 * needs no configure right, and the agent has none on them).
 */
export async function checkAgentExchanges(
  ch: Declarer,
  prefix: string,
  type: string,
): Promise<void> {
  await ch.checkExchange(names.resultsExchange(prefix));
  await ch.checkExchange(names.controlExchange(prefix));
  await ch.checkExchange(names.taskExchange(prefix, type));
}
