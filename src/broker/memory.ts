/**
 * An in-process broker for the embedded mode (`tasker up` with `broker.url: memory:`), where the
 * server and the agents share one Node process and one MemoryBroker. It keeps the semantics the
 * rest of tasker relies on from RabbitMQ:
 * - a fanout "exchange" per task type, a queue per endpoint and type (the same names), and
 *   publishTask creating the queues of addressed endpoints first, so an endpoint that comes up
 *   later still finds its task; a broadcast reaches the queues that exist when it is published;
 * - per-message expiry at the task's delivery deadline, checked at the head of a queue as
 *   RabbitMQ does; expired and dead-lettered messages go to the dead letters;
 * - manual settling: ack, requeue (back at the head, `redelivered`), dead-letter; a message
 *   settles once, and settling after its subscription closed does nothing;
 * - prefetch per consumer, a cancelled subscription receives nothing new but may settle what it
 *   holds, and closing it gives its unsettled messages back (`redelivered`);
 * - result events collected into batches of at most `batchSize`, waiting at most `lingerMs`.
 * Where it differs: nothing survives the process (a message that was published but not yet
 * consumed when the process stops is gone, and the task's endpoints end UNDELIVERED or
 * TIMED_OUT; the tasks themselves are in SQL, and the outbox republishes what was never
 * confirmed); `userId` is null (there are no broker users, so `authenticate_agents` cannot be
 * used); publishing never blocks on flow control; dead letters are kept in memory, the most
 * recent 1,000. A single-machine mode for trying tasker and writing handlers, not for production.
 */
import { v7 as uuidv7 } from 'uuid';
import { UnavailableError, type ResultEvent, type TaskMessage } from '../domain';
import type { Logger } from '../log';
import { names } from './topology';
import type {
  ConsumeResultsOptions,
  ConsumeTasksOptions,
  Delivery,
  Subscription,
  TaskBroker,
} from './types';

export interface MemoryBrokerOptions {
  prefix: string;
  log: Logger;
  /** dead-lettered and expired messages kept for inspection (the most recent) */
  maxDeadLetters?: number;
}

interface Message {
  content: Buffer;
  messageId: string;
  /** ms since the epoch after which it is not delivered, or null */
  expiresAt: number | null;
  redelivered: boolean;
}

export interface DeadLetter {
  queue: string;
  messageId: string;
  reason: 'rejected' | 'expired';
  content: Buffer;
}

interface Consumer {
  prefetch: number;
  /** delivered and not yet settled */
  held: Set<Message>;
  active: boolean;
  onMessage(message: Message, delivery: Delivery): void;
}

class Queue {
  readonly messages: Message[] = [];
  readonly consumers: Consumer[] = [];
  next = 0;
  constructor(readonly name: string) {}
}

export class MemoryBroker implements TaskBroker {
  private readonly prefix: string;
  private readonly log: Logger;
  private readonly maxDeadLetters: number;
  private readonly queues = new Map<string, Queue>();
  /** task exchange name → names of the queues bound to it */
  private readonly bindings = new Map<string, Set<string>>();
  private readonly dead: DeadLetter[] = [];
  private readonly scheduled = new Set<Queue>();
  private readonly subscriptions = new Set<Subscription>();
  private state: 'new' | 'started' | 'closed' = 'new';

  constructor(options: MemoryBrokerOptions) {
    this.prefix = options.prefix;
    this.log = options.log;
    this.maxDeadLetters = options.maxDeadLetters ?? 1000;
    this.queue(names.resultsQueue(this.prefix));
  }

  get isConnected(): boolean {
    return this.state === 'started';
  }

  start(): Promise<void> {
    if (this.state === 'new') this.state = 'started';
    return Promise.resolve();
  }

  /** Dead-lettered and expired messages, oldest first (the most recent `maxDeadLetters`). */
  deadLetters(): readonly DeadLetter[] {
    return this.dead;
  }

  /** Messages waiting in a queue, not counting those delivered and unsettled. */
  depth(queue: string): number {
    return this.queues.get(queue)?.messages.length ?? 0;
  }

  private unavailable(): UnavailableError {
    return new UnavailableError('broker_unavailable', 'broker unavailable: closed');
  }

  private queue(name: string): Queue {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = new Queue(name);
      this.queues.set(name, queue);
    }
    return queue;
  }

  private endpointQueue(type: string, endpoint: string): Queue {
    const name = names.endpointQueue(this.prefix, type, endpoint);
    const exchange = names.taskExchange(this.prefix, type);
    let bound = this.bindings.get(exchange);
    if (bound === undefined) {
      bound = new Set();
      this.bindings.set(exchange, bound);
    }
    bound.add(name);
    return this.queue(name);
  }

  private enqueue(queue: Queue, message: Message): void {
    queue.messages.push(message);
    this.dropExpired(queue);
    this.schedule(queue);
  }

  private deadLetter(queue: Queue, message: Message, reason: DeadLetter['reason']): void {
    this.dead.push({
      queue: queue.name,
      messageId: message.messageId,
      reason,
      content: message.content,
    });
    if (this.dead.length > this.maxDeadLetters) this.dead.shift();
  }

  /** RabbitMQ drops expired messages when they reach the head of the queue; so do we. */
  private dropExpired(queue: Queue, now = Date.now()): void {
    for (;;) {
      const head = queue.messages[0];
      if (head === undefined || head.expiresAt === null || head.expiresAt > now) return;
      queue.messages.shift();
      this.deadLetter(queue, head, 'expired');
    }
  }

  /** Deliveries happen on a later turn of the event loop, never inside publish or settle. */
  private schedule(queue: Queue): void {
    if (this.scheduled.has(queue)) return;
    this.scheduled.add(queue);
    setImmediate(() => {
      this.scheduled.delete(queue);
      this.dispatch(queue);
    });
  }

  private dispatch(queue: Queue): void {
    if (this.state !== 'started') return;
    for (;;) {
      this.dropExpired(queue);
      if (queue.messages.length === 0) return;
      const consumer = this.pickConsumer(queue);
      if (consumer === null) return;
      const message = queue.messages.shift() as Message;
      consumer.held.add(message);
      consumer.onMessage(message, this.delivery(queue, consumer, message));
    }
  }

  /** Round robin over the active consumers with room under their prefetch. */
  private pickConsumer(queue: Queue): Consumer | null {
    const count = queue.consumers.length;
    for (let i = 0; i < count; i += 1) {
      const consumer = queue.consumers[(queue.next + i) % count] as Consumer;
      if (consumer.active && consumer.held.size < consumer.prefetch) {
        queue.next = (queue.next + i + 1) % count;
        return consumer;
      }
    }
    return null;
  }

  private delivery(queue: Queue, consumer: Consumer, message: Message): Delivery {
    const settle = (action: () => void): void => {
      // settled before, or handed back when its subscription closed: nothing to do
      if (!consumer.held.delete(message)) return;
      action();
      this.schedule(queue);
    };
    return {
      content: message.content,
      redelivered: message.redelivered,
      messageId: message.messageId,
      userId: null,
      ack: () => settle(() => undefined),
      requeue: () =>
        settle(() => {
          queue.messages.unshift({ ...message, redelivered: true });
        }),
      deadLetter: () => settle(() => this.deadLetter(queue, message, 'rejected')),
    };
  }

  private consume(
    queues: Queue[],
    prefetch: number,
    onMessage: Consumer['onMessage'],
  ): {
    cancel(): void;
    close(): void;
  } {
    const consumers = queues.map((queue) => {
      const consumer: Consumer = { prefetch, held: new Set(), active: true, onMessage };
      queue.consumers.push(consumer);
      this.schedule(queue);
      return { queue, consumer };
    });
    const cancel = (): void => {
      for (const { queue, consumer } of consumers) {
        consumer.active = false;
        const index = queue.consumers.indexOf(consumer);
        if (index >= 0) queue.consumers.splice(index, 1);
      }
    };
    return {
      cancel,
      close: () => {
        cancel();
        for (const { queue, consumer } of consumers) {
          // unsettled messages go back to the head, in their order, marked redelivered
          const held = [...consumer.held].map((m) => ({ ...m, redelivered: true }));
          consumer.held.clear();
          queue.messages.unshift(...held);
          this.schedule(queue);
        }
      },
    };
  }

  publishTask(message: TaskMessage): Promise<void> {
    if (!this.isConnected) return Promise.reject(this.unavailable());
    for (const endpoint of message.endpoints ?? []) this.endpointQueue(message.type, endpoint);
    const content = Buffer.from(JSON.stringify(message));
    const expiresAt = Date.parse(message.deliver_by);
    for (const name of this.bindings.get(names.taskExchange(this.prefix, message.type)) ?? []) {
      this.enqueue(this.queue(name), {
        content,
        messageId: `task-${message.id}`,
        expiresAt: Number.isNaN(expiresAt) ? null : expiresAt,
        redelivered: false,
      });
    }
    return Promise.resolve();
  }

  publishResult(event: ResultEvent): Promise<void> {
    if (!this.isConnected) return Promise.reject(this.unavailable());
    this.enqueue(this.queue(names.resultsQueue(this.prefix)), {
      content: Buffer.from(JSON.stringify(event)),
      messageId: uuidv7(),
      expiresAt: null,
      redelivered: false,
    });
    return Promise.resolve();
  }

  consumeTasks(
    options: ConsumeTasksOptions,
    onTask: (delivery: Delivery) => Promise<void>,
  ): Promise<Subscription> {
    if (this.state === 'closed') return Promise.reject(this.unavailable());
    const queues = options.types.map((type) => this.endpointQueue(type, options.endpoint));
    const consumer = this.consume(queues, options.prefetch, (_message, delivery) => {
      onTask(delivery).catch((err: unknown) => this.log.error('task handler failed', { err }));
    });
    return Promise.resolve(this.track(consumer.cancel, () => Promise.resolve(consumer.close())));
  }

  consumeResults(
    options: ConsumeResultsOptions,
    onBatch: (deliveries: Delivery[]) => Promise<void>,
  ): Promise<Subscription> {
    if (this.state === 'closed') return Promise.reject(this.unavailable());
    // batches run one after another; on close, the last ones finish (and ack) first
    let chain = Promise.resolve();
    let pending: Delivery[] = [];
    let timer: NodeJS.Timeout | null = null;
    const flush = (): void => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      const batch = pending;
      pending = [];
      if (batch.length === 0) return;
      chain = chain
        .then(() => onBatch(batch))
        .catch((err: unknown) => this.log.error('result batch handler failed', { err }));
    };
    const queue = this.queue(names.resultsQueue(this.prefix));
    const consumer = this.consume([queue], options.prefetch, (_message, delivery) => {
      pending.push(delivery);
      if (pending.length >= options.batchSize) flush();
      else timer ??= setTimeout(flush, options.lingerMs);
    });
    return Promise.resolve(
      this.track(consumer.cancel, async () => {
        consumer.cancel();
        flush();
        await chain;
        consumer.close();
      }),
    );
  }

  private track(cancel: () => void, close: () => Promise<void>): Subscription {
    let closed: Promise<void> | null = null;
    const subscription: Subscription = {
      cancel: () => {
        cancel();
        return Promise.resolve();
      },
      close: () => {
        closed ??= close().finally(() => this.subscriptions.delete(subscription));
        return closed;
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    for (const subscription of [...this.subscriptions]) await subscription.close();
    this.state = 'closed';
    const left = [...this.queues.values()].reduce((n, q) => n + q.messages.length, 0);
    if (left > 0) this.log.info('in-process broker closed with undelivered messages', { left });
  }
}
