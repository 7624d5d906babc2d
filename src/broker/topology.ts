/**
 * Exchange and queue names and arguments. Server and agents both declare the same queues, so
 * they must agree on arguments to the letter (RabbitMQ refuses a redeclare that differs).
 */
import type { Options } from 'amqplib';

export const names = {
  taskExchange: (prefix: string, type: string): string => `${prefix}.${type}`,
  endpointQueue: (prefix: string, type: string, endpoint: string): string =>
    `${prefix}.${type}.${endpoint}`,
  resultsExchange: (prefix: string): string => `${prefix}.results`,
  resultsQueue: (prefix: string): string => `${prefix}.results`,
  deadExchange: (prefix: string): string => `${prefix}.dead`,
  deadQueue: (prefix: string): string => `${prefix}.dead`,
};

export function durableQueueOptions(prefix: string): Options.AssertQueue {
  return { durable: true, arguments: { 'x-dead-letter-exchange': names.deadExchange(prefix) } };
}

interface Declarer {
  assertExchange(name: string, type: string, options?: Options.AssertExchange): Promise<unknown>;
  checkExchange(name: string): Promise<unknown>;
  assertQueue(name: string, options?: Options.AssertQueue): Promise<unknown>;
  bindQueue(queue: string, exchange: string, pattern: string): Promise<unknown>;
}

/** The dead-letter exchange/queue and the results exchange/queue every process relies on. */
export async function declareCommon(ch: Declarer, prefix: string): Promise<void> {
  await ch.assertExchange(names.deadExchange(prefix), 'fanout', { durable: true });
  await ch.assertQueue(names.deadQueue(prefix), { durable: true });
  await ch.bindQueue(names.deadQueue(prefix), names.deadExchange(prefix), '');
  await ch.assertExchange(names.resultsExchange(prefix), 'fanout', { durable: true });
  await ch.assertQueue(names.resultsQueue(prefix), durableQueueOptions(prefix));
  await ch.bindQueue(names.resultsQueue(prefix), names.resultsExchange(prefix), '');
}

export async function declareTaskType(ch: Declarer, prefix: string, type: string): Promise<void> {
  await ch.assertExchange(names.taskExchange(prefix, type), 'fanout', { durable: true });
}

/**
 * What an agent needs, declared with the least permissions: the exchanges must already exist
 * (the server declares them; checking needs no configure right), and the agent declares and
 * binds only its own queue.
 */
export async function declareAgentQueue(
  ch: Declarer,
  prefix: string,
  type: string,
  endpoint: string,
): Promise<string> {
  await ch.checkExchange(names.resultsExchange(prefix));
  await ch.checkExchange(names.taskExchange(prefix, type));
  return declareEndpointQueue(ch, prefix, type, endpoint);
}

export async function declareEndpointQueue(
  ch: Declarer,
  prefix: string,
  type: string,
  endpoint: string,
): Promise<string> {
  const queue = names.endpointQueue(prefix, type, endpoint);
  await ch.assertQueue(queue, durableQueueOptions(prefix));
  await ch.bindQueue(queue, names.taskExchange(prefix, type), '');
  return queue;
}
