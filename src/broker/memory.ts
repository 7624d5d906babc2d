/**
 * An in-process broker for the embedded single-machine mode (`npm start`, i.e. `tasker up` with
 * `broker.url: memory:`), where the server, the recorder and the agents share one Node process
 * and one MemoryBroker. Not durable across restarts and not for production. It keeps what the
 * rest of tasker relies on from RabbitMQ (the contract tests run against both):
 * - a fanout "exchange" per task type and a queue per endpoint and type, named as topology.ts
 *   names them; publishTask creates the queues of the addressed endpoints first, so an endpoint
 *   that comes up later still finds its task; a broadcast reaches the queues existing then;
 * - expiry at the task's delivery deadline plus its execution timeout (AmqpBroker's per-message
 *   `expiration`, see taskExpiresAt): an expired message is never delivered, it is
 *   dead-lettered with reason `expired`;
 * - priorities: a task goes ahead of waiting tasks of a lower priority;
 * - manual settling: ack; requeue (back at the head, `redelivered`); deadLetter (reason
 *   `rejected`, never redelivered). A delivery settles once; settling it again, or after its
 *   subscription closed, does nothing;
 * - prefetch per consumer (0: unlimited); a cancelled subscription gets nothing new but may
 *   settle what it holds; closing it puts its unsettled messages back (`redelivered`);
 * - no delivery limit in the broker, as on RabbitMQ's classic queues: the agent counts deliveries
 *   and fails a task after `max_deliveries`;
 * - result events in batches of at most `batchSize`, a partial one after `lingerMs`; a result
 *   gets a fresh uuid v7 `messageId`, a task `task-<id>`, as AmqpBroker sets them;
 * - deliveries on a later turn of the event loop, never inside publish or settle.
 * Where it differs from RabbitMQ:
 * 1. Nothing survives the process: messages not yet consumed when it stops are gone (the task's
 *    endpoints end UNDELIVERED or TIMED_OUT; the tasks are in SQL and the outbox republishes
 *    what was never confirmed). One process only: nothing crosses a process boundary.
 * 2. `userId` is always null: there are no broker users, so nothing vouches for a publisher and
 *    `server.authenticate_agents` must stay off (with it on, the recorder dead-letters every
 *    result event, since none comes from the expected user).
 * 3. Dead letters are not a `<prefix>.dead` queue but an in-memory list of the most recent
 *    `maxDeadLetters` (1,000), read with deadLetters(); RabbitMQ keeps every one (nothing in
 *    tasker consumes that queue), with `x-death` headers.
 * 4. Expired messages are purged from anywhere in a queue every `expiryCheckMs` (1 s), so memory
 *    holds only live messages; RabbitMQ drops them only at the head of a queue, so behind a live
 *    message they still count in the queue's depth.
 * 5. No flow control: publishing resolves at once, with no confirm round trip and no limit on
 *    messages or memory. No connection to lose: isConnected is true from start() to close().
 * 6. A requeued or handed-back message goes to the head of its queue; RabbitMQ puts it back at
 *    its old position, which is the same unless others were requeued in between.
 * 7. An agent may consume before any server declared the task exchanges (RabbitMQ's agent waits).
 * 8. Every publish naming an endpoint declares its queue again (AmqpBroker does so at most every
 *    half `queueExpiresMs`), and unused queues are deleted on the expiry check, so up to
 *    `expiryCheckMs` late.
 */
import { v7 as uuidv7 } from 'uuid';
import {
  UnavailableError,
  encodeResultEvents,
  taskExpiresAt,
  type ChangeEvent,
  type ControlMessage,
  type Heartbeat,
  type ResultEvent,
  type TaskMessage,
} from '../domain';
import type { Logger } from '../log';
import { ResultBatches } from './batches';
import { names } from './topology';
import type {
  ConsumeResultsOptions,
  ConsumeTasksOptions,
  Delivery,
  Subscription,
  TaskBroker,
} from './types';

export interface MemoryBrokerOptions {
  /** the exchange/queue prefix, as in `broker.prefix` */
  prefix: string;
  log: Logger;
  /** dead-lettered and expired messages kept for inspection, the most recent (1,000) */
  maxDeadLetters?: number;
  /** how often expired messages are purged from every queue (1,000 ms) */
  expiryCheckMs?: number;
  /**
   * an endpoint's queue without consumers, not declared again for this long, is deleted with
   * its messages, as RabbitMQ's `x-expires` does (default: never)
   */
  queueExpiresMs?: number;
}

interface Message {
  content: Buffer;
  messageId: string;
  /** ms since the epoch after which it is not delivered, or null */
  expiresAt: number | null;
  redelivered: boolean;
  /** a task's priority (0 when none): it goes ahead of lower ones waiting */
  priority?: number;
}

export interface DeadLetter {
  queue: string;
  messageId: string;
  reason: 'rejected' | 'expired';
  content: Buffer;
}

interface Consumer {
  /** max unsettled deliveries; 0 is unlimited, as in AMQP */
  prefetch: number;
  /** delivered and not yet settled */
  held: Set<Message>;
  onDelivery(delivery: Delivery): void;
}

class Queue {
  messages: Message[] = [];
  /** active consumers; a cancelled one is removed but keeps settling what it holds */
  readonly consumers: Consumer[] = [];
  /** round-robin position */
  next = 0;
  /** last declared, or last left by a consumer: what queue expiry counts from */
  lastUsed = Date.now();
  constructor(readonly name: string) {}
}

const isExpired = (message: Message, now: number): boolean =>
  message.expiresAt !== null && message.expiresAt <= now;

export class MemoryBroker implements TaskBroker {
  private readonly prefix: string;
  private readonly log: Logger;
  private readonly maxDeadLetters: number;
  private readonly expiryCheckMs: number;
  private readonly queueExpiresMs: number;
  private readonly queues = new Map<string, Queue>();
  /** task exchange name → names of the queues bound to it */
  private readonly bindings = new Map<string, Set<string>>();
  /** who receives change events: the servers' subscriptions */
  private readonly changeListeners = new Set<(event: ChangeEvent) => void>();
  /** task type → the control queues bound to the control exchange with it */
  private readonly controlBindings = new Map<string, Set<string>>();
  private readonly dead: DeadLetter[] = [];
  private readonly scheduled = new Set<Queue>();
  private readonly subscriptions = new Set<Subscription>();
  private state: 'new' | 'started' | 'closed' = 'new';
  private expiryTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;

  constructor(options: MemoryBrokerOptions) {
    this.prefix = options.prefix;
    this.log = options.log;
    this.maxDeadLetters = options.maxDeadLetters ?? 1000;
    this.expiryCheckMs = options.expiryCheckMs ?? 1000;
    this.queueExpiresMs = options.queueExpiresMs ?? Infinity;
    this.queue(names.resultsQueue(this.prefix));
  }

  get isConnected(): boolean {
    return this.state === 'started';
  }

  /** Nothing to freeze in-process: it answers while it is started. */
  ping(): Promise<boolean> {
    return Promise.resolve(this.isConnected);
  }

  /** Like AmqpBroker.start(): safe to call twice; consumers added before it start receiving. */
  start(): Promise<void> {
    if (this.state !== 'new') return Promise.resolve();
    this.state = 'started';
    this.expiryTimer = setInterval(() => this.purgeExpired(), this.expiryCheckMs);
    this.expiryTimer.unref();
    for (const queue of this.queues.values()) this.schedule(queue);
    return Promise.resolve();
  }

  /** Dead-lettered and expired messages, oldest first (the most recent `maxDeadLetters`). */
  deadLetters(): readonly DeadLetter[] {
    return this.dead;
  }

  /** Whether a queue exists (it may have expired). */
  hasQueue(queue: string): boolean {
    return this.queues.has(queue);
  }

  /** Messages waiting in a queue, not counting those delivered and unsettled. */
  depth(queue: string): number {
    return this.queues.get(queue)?.messages.length ?? 0;
  }

  private unavailable(): UnavailableError {
    const why = this.state === 'new' ? 'not started' : 'closed';
    return new UnavailableError('broker_unavailable', `broker unavailable: ${why}`);
  }

  private queue(name: string): Queue {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = new Queue(name);
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** The endpoint's queue for a type, bound to the type's exchange (declareEndpointQueue). */
  private endpointQueue(type: string, endpoint: string): Queue {
    const name = names.endpointQueue(this.prefix, type, endpoint);
    const exchange = names.taskExchange(this.prefix, type);
    let bound = this.bindings.get(exchange);
    if (bound === undefined) {
      bound = new Set();
      this.bindings.set(exchange, bound);
    }
    bound.add(name);
    const queue = this.queue(name);
    queue.lastUsed = Date.now();
    return queue;
  }

  private deadLetter(queue: Queue, message: Message, reason: DeadLetter['reason']): void {
    const { messageId, content } = message;
    this.dead.push({ queue: queue.name, messageId, reason, content });
    if (this.dead.length > this.maxDeadLetters) this.dead.shift();
  }

  private purgeExpired(): void {
    const now = Date.now();
    const results = names.resultsQueue(this.prefix);
    for (const queue of [...this.queues.values()]) {
      if (
        queue.name !== results &&
        queue.consumers.length === 0 &&
        now - queue.lastUsed >= this.queueExpiresMs
      ) {
        // as RabbitMQ does with an expired queue: its messages go with it, not dead-lettered
        this.queues.delete(queue.name);
        for (const bound of this.bindings.values()) bound.delete(queue.name);
        for (const bound of this.controlBindings.values()) bound.delete(queue.name);
        continue;
      }
      if (!queue.messages.some((m) => isExpired(m, now))) continue;
      const live: Message[] = [];
      for (const message of queue.messages) {
        if (isExpired(message, now)) this.deadLetter(queue, message, 'expired');
        else live.push(message);
      }
      queue.messages = live;
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
    const now = Date.now();
    for (;;) {
      // expiry is checked as a message reaches the head: an expired one is never delivered
      while (queue.messages[0] !== undefined && isExpired(queue.messages[0], now)) {
        this.deadLetter(queue, queue.messages.shift() as Message, 'expired');
      }
      if (queue.messages.length === 0) return;
      const consumer = this.pickConsumer(queue);
      if (consumer === null) return;
      const message = queue.messages.shift() as Message;
      consumer.held.add(message);
      consumer.onDelivery(this.delivery(queue, consumer, message));
    }
  }

  /** Round robin over the consumers with room under their prefetch. */
  private pickConsumer(queue: Queue): Consumer | null {
    const count = queue.consumers.length;
    for (let i = 0; i < count; i += 1) {
      const consumer = queue.consumers[(queue.next + i) % count] as Consumer;
      if (consumer.prefetch === 0 || consumer.held.size < consumer.prefetch) {
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
      // a copy, as each AMQP delivery has its own: one consumer cannot alter another's
      content: Buffer.from(message.content),
      redelivered: message.redelivered,
      messageId: message.messageId,
      userId: null,
      ack: () => settle(() => undefined),
      requeue: () => settle(() => queue.messages.unshift({ ...message, redelivered: true })),
      deadLetter: () => settle(() => this.deadLetter(queue, message, 'rejected')),
    };
  }

  /** One consumer per queue, each with its own prefetch, as AMQP's per-consumer basic.qos. */
  private consume(
    queues: Queue[],
    prefetch: number,
    onDelivery: Consumer['onDelivery'],
  ): { cancel(): void; handBack(): void } {
    const consumers = queues.map((queue) => {
      const consumer: Consumer = { prefetch, held: new Set(), onDelivery };
      queue.consumers.push(consumer);
      this.schedule(queue);
      return { queue, consumer };
    });
    return {
      cancel: () => {
        for (const { queue, consumer } of consumers) {
          const index = queue.consumers.indexOf(consumer);
          if (index >= 0) queue.consumers.splice(index, 1);
          queue.lastUsed = Date.now();
        }
      },
      handBack: () => {
        for (const { queue, consumer } of consumers) {
          // unsettled messages go back to the head, in their order, marked redelivered
          const held = [...consumer.held].map((m) => ({ ...m, redelivered: true }));
          consumer.held.clear();
          queue.messages = [...held, ...queue.messages];
          this.schedule(queue);
        }
      },
    };
  }

  publishTask(message: TaskMessage): Promise<void> {
    if (!this.isConnected) return Promise.reject(this.unavailable());
    for (const endpoint of message.endpoints ?? []) this.endpointQueue(message.type, endpoint);
    const content = Buffer.from(JSON.stringify(message));
    const deadline = taskExpiresAt(message);
    // AmqpBroker's publish fails too: RabbitMQ refuses an `expiration` of "NaN"
    if (Number.isNaN(deadline)) {
      return Promise.reject(new Error(`task ${message.id}: deliver_by is not a date`));
    }
    // AmqpBroker sets `expiration` to the time left until the message expires, at least 1 ms
    const expiresAt = Math.max(Date.now() + 1, deadline);
    const exchange = names.taskExchange(this.prefix, message.type);
    // a task for named endpoints reaches their queues alone, as AmqpBroker routes it by BCC
    const addressed =
      message.endpoints === null
        ? null
        : new Set(message.endpoints.map((e) => names.endpointQueue(this.prefix, message.type, e)));
    for (const name of this.bindings.get(exchange) ?? []) {
      if (addressed !== null && !addressed.has(name)) continue;
      const queue = this.queue(name);
      const priority = message.priority ?? 0;
      // as RabbitMQ's x-max-priority queues: after the messages of its priority and above
      const behind = queue.messages.findIndex((m) => (m.priority ?? 0) < priority);
      const copy = { content, messageId: `task-${message.id}`, expiresAt, redelivered: false };
      queue.messages.splice(behind < 0 ? queue.messages.length : behind, 0, { ...copy, priority });
      this.schedule(queue);
    }
    return Promise.resolve();
  }

  publishResult(event: ResultEvent): Promise<void> {
    return this.publishResults([event]);
  }

  publishResults(events: readonly ResultEvent[]): Promise<void> {
    if (!this.isConnected) return Promise.reject(this.unavailable());
    if (events.length === 0) return Promise.resolve();
    const queue = this.queue(names.resultsQueue(this.prefix));
    const content = encodeResultEvents(events);
    queue.messages.push({ content, messageId: uuidv7(), expiresAt: null, redelivered: false });
    this.schedule(queue);
    return Promise.resolve();
  }

  publishHeartbeat(heartbeat: Heartbeat): Promise<void> {
    if (!this.isConnected) return Promise.reject(this.unavailable());
    const queue = this.queue(names.resultsQueue(this.prefix));
    const content = Buffer.from(JSON.stringify(heartbeat));
    const expiresAt = heartbeat.phase === 'goodbye' ? null : Date.now() + heartbeat.interval_ms;
    queue.messages.push({ content, messageId: uuidv7(), expiresAt, redelivered: false });
    this.schedule(queue);
    return Promise.resolve();
  }

  publishChange(event: ChangeEvent): Promise<void> {
    if (!this.isConnected) return Promise.reject(this.unavailable());
    const copy = JSON.stringify(event);
    for (const listener of this.changeListeners) {
      setImmediate(() => listener(JSON.parse(copy) as ChangeEvent));
    }
    return Promise.resolve();
  }

  consumeChanges(onChange: (event: ChangeEvent) => void): Promise<Subscription> {
    if (this.state === 'closed') return Promise.reject(this.unavailable());
    this.changeListeners.add(onChange);
    const stop = (): void => void this.changeListeners.delete(onChange);
    return Promise.resolve(
      this.track(stop, () => {
        stop();
        return Promise.resolve();
      }),
    );
  }

  publishControl(message: ControlMessage): Promise<void> {
    if (!this.isConnected) return Promise.reject(this.unavailable());
    const content = Buffer.from(JSON.stringify(message));
    const expiresAt = Math.max(Date.now() + 1, Date.parse(message.expires_at));
    // the topic exchange <prefix>.control routes by task type
    for (const name of this.controlBindings.get(message.type) ?? []) {
      const queue = this.queue(name);
      queue.messages.push({
        content,
        messageId: `${message.kind}-${message.task_id}-${message.round}`,
        expiresAt,
        redelivered: false,
      });
      this.schedule(queue);
    }
    return Promise.resolve();
  }

  waitingTasks(endpoint: string, types: readonly string[]): Promise<number> {
    if (this.state === 'closed') return Promise.reject(this.unavailable());
    const now = Date.now();
    let waiting = 0;
    for (const type of types) {
      const queue = this.queues.get(names.endpointQueue(this.prefix, type, endpoint));
      waiting += queue?.messages.filter((message) => !isExpired(message, now)).length ?? 0;
    }
    return Promise.resolve(waiting);
  }

  consumeTasks(
    options: ConsumeTasksOptions,
    onTask: (delivery: Delivery) => Promise<void>,
    onControl?: (delivery: Delivery) => void,
  ): Promise<Subscription> {
    if (this.state === 'closed') return Promise.reject(this.unavailable());
    const queues = options.types.map((type) => this.endpointQueue(type, options.endpoint));
    const consumer = this.consume(queues, options.prefetch, (delivery) => {
      onTask(delivery).catch((err: unknown) => this.log.error('task handler failed', { err }));
    });
    let control: ReturnType<MemoryBroker['consume']> | null = null;
    if (onControl !== undefined) {
      const name = names.controlQueue(this.prefix, options.endpoint);
      for (const type of options.types) {
        let bound = this.controlBindings.get(type);
        if (bound === undefined) {
          bound = new Set();
          this.controlBindings.set(type, bound);
        }
        bound.add(name);
      }
      control = this.consume([this.queue(name)], options.prefetch, onControl);
    }
    const cancel = (): void => {
      consumer.cancel();
      control?.cancel();
    };
    return Promise.resolve(
      this.track(cancel, () => {
        cancel();
        consumer.handBack();
        control?.handBack();
        return Promise.resolve();
      }),
    );
  }

  consumeResults(
    options: ConsumeResultsOptions,
    onBatch: (deliveries: Delivery[]) => Promise<void>,
  ): Promise<Subscription> {
    if (this.state === 'closed') return Promise.reject(this.unavailable());
    const batches = new ResultBatches(options, onBatch, this.log);
    const collector = batches.collector();
    const queue = this.queue(names.resultsQueue(this.prefix));
    const consumer = this.consume([queue], options.prefetch, (d) => collector.add(d));
    return Promise.resolve(
      this.track(consumer.cancel, async () => {
        consumer.cancel();
        await batches.drain();
        consumer.handBack();
      }),
    );
  }

  /** A subscription whose close() runs once and which the broker closes on its own close(). */
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

  /** Close every subscription (unsettled messages go back), then refuse everything. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const subscription of [...this.subscriptions]) await subscription.close();
      this.state = 'closed';
      if (this.expiryTimer !== null) clearInterval(this.expiryTimer);
      this.expiryTimer = null;
      let left = 0;
      for (const queue of this.queues.values()) left += queue.messages.length;
      if (left > 0) this.log.info('in-process broker closed with undelivered messages', { left });
    })();
    return this.closing;
  }
}
