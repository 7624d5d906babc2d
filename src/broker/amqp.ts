/**
 * The RabbitMQ implementation of the broker seam. Publishes on a confirm channel (a publish
 * resolves only on the broker's ack, and fails on nack, channel loss or timeout: "unknown", so
 * the outbox keeps it), declares topology on a separate channel so a refused declare cannot take
 * publishing down, and consumes through channels that come back after reconnects.
 */
import type * as amqp from 'amqplib';
import { v7 as uuidv7 } from 'uuid';
import {
  UnavailableError,
  encodeResultEvents,
  parseChangeEvent,
  taskExpiresAt,
  type ChangeEvent,
  type ControlMessage,
  type Heartbeat,
  type ResultEvent,
  type TaskMessage,
} from '../domain';
import type { BrokerConfig } from '../config/types';
import type { Logger } from '../log';
import { ResultBatches } from './batches';
import { ManagedChannel } from './channel';
import { AmqpSession, splitBrokerUrls, type SessionOptions } from './session';
import {
  bindEndpointQueue,
  checkAgentExchanges,
  controlQueueOptions,
  declareCommon,
  declareTaskType,
  endpointQueueOptions,
  names,
  type DeclareQueue,
  type QueueType,
} from './topology';
import type {
  ConsumeResultsOptions,
  ConsumeTasksOptions,
  Delivery,
  Subscription,
  TaskBroker,
} from './types';

export interface AmqpBrokerOptions extends Omit<SessionOptions, 'log'> {
  prefix: string;
  confirmTimeoutMs: number;
  /** an endpoint's queue unused this long is deleted by the broker (its `x-expires`) */
  queueExpiresMs: number;
  /** publishes awaiting a confirm at once; more wait their turn */
  maxInFlight?: number;
  /** task types whose exchanges to declare on every connect (the server's job) */
  declareTaskTypes?: readonly string[];
  /** of the endpoint, control and results queues (classic) */
  queueType?: QueueType;
  log: Logger;
}

/** A declare refused for a queue an older tasker made: it is used as it is from now on. */
class OldQueueRefusal extends Error {
  constructor(
    readonly queue: string,
    cause: unknown,
  ) {
    super(`queue ${queue} has other arguments than this tasker declares`, { cause });
    this.name = 'OldQueueRefusal';
  }
}

/** An AmqpBroker configured from the `broker` config section. */
export function createBroker(
  config: BrokerConfig,
  options: {
    connectionName: string;
    log: Logger;
    declareTaskTypes?: readonly string[];
    url?: string;
  },
): AmqpBroker {
  return new AmqpBroker({
    url: options.url ?? config.url,
    prefix: config.prefix,
    queueExpiresMs: config.queueExpiresMs,
    queueType: config.queueType,
    heartbeatSeconds: config.heartbeatSeconds,
    confirmTimeoutMs: config.confirmTimeoutMs,
    reconnectInitialDelayMs: config.reconnectInitialDelayMs,
    reconnectMaxDelayMs: config.reconnectMaxDelayMs,
    connectionName: options.connectionName,
    log: options.log,
    ...(options.declareTaskTypes === undefined
      ? {}
      : { declareTaskTypes: options.declareTaskTypes }),
  });
}

function brokerUser(url: string): string {
  const user = new URL(url).username;
  return user === '' ? 'guest' : decodeURIComponent(user);
}

export class AmqpBroker implements TaskBroker {
  readonly session: AmqpSession;
  private readonly log: Logger;
  private readonly prefix: string;
  private readonly user: string;
  private readonly queueType: QueueType;
  private readonly publisher: ManagedChannel<amqp.ConfirmChannel>;
  private readonly topology: ManagedChannel;
  /** exchanges/queues declared (or being declared) on the current connection, and when */
  private declared = new Map<string, { done: Promise<void>; at: number }>();
  /** queues found with other arguments than ours, warned about once */
  private readonly oldQueues = new Set<string>();
  private inFlight = 0;
  private readonly slotWaiters: Array<() => void> = [];
  private drained: Promise<void> | null = null;
  private readonly subscriptions = new Set<ManagedChannel>();
  private started: Promise<void> | null = null;
  /** the round trip of ping() in flight: one at a time, or a frozen broker piles them up */
  private probing: Promise<boolean> | null = null;

  constructor(private readonly options: AmqpBrokerOptions) {
    this.log = options.log;
    this.prefix = options.prefix;
    this.user = brokerUser(splitBrokerUrls(options.url)[0] ?? options.url);
    this.queueType = options.queueType ?? 'classic';
    this.session = new AmqpSession({ ...options, log: options.log });
    this.session.on('disconnected', () => {
      this.declared = new Map();
    });
    this.publisher = new ManagedChannel(
      this.session,
      this.log,
      (conn) => conn.createConfirmChannel(),
      async (ch) => {
        ch.on('drain', () => this.onDrain());
      },
    );
    this.topology = new ManagedChannel(
      this.session,
      this.log,
      (conn) => conn.createChannel(),
      async (ch) => {
        this.declared = new Map();
        if (options.declareTaskTypes === undefined) return;
        await declareCommon(ch, this.prefix, this.queueType, this.declareQueue);
        for (const type of options.declareTaskTypes) {
          await declareTaskType(ch, this.prefix, type);
          this.declared.set(names.taskExchange(this.prefix, type), {
            done: Promise.resolve(),
            at: Date.now(),
          });
        }
      },
    );
  }

  get isConnected(): boolean {
    return this.session.isConnected && this.publisher.current !== null;
  }

  async ping(timeoutMs: number): Promise<boolean> {
    const ch = this.topology.current;
    if (!this.isConnected || ch === null) return false;
    // basic.qos: a round trip that needs no permission and cannot fail (a failed declare
    // would close the channel)
    this.probing ??= ch
      .prefetch(0)
      .then(
        () => true,
        () => false,
      )
      .finally(() => {
        this.probing = null;
      });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([this.probing, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Begin connecting; resolves after the first attempt whether or not it succeeded. */
  start(): Promise<void> {
    this.started ??= (async () => {
      await this.topology.start();
      await this.publisher.start();
      await this.session.start();
    })();
    return this.started;
  }

  private unavailable(what: string): UnavailableError {
    return new UnavailableError('broker_unavailable', `broker unavailable: ${what}`);
  }

  /**
   * Declare once per connection, or again once `maxAgeMs` old; concurrent callers share the
   * declaration in flight.
   */
  private declareOnce(
    key: string,
    declare: (ch: amqp.Channel) => Promise<unknown>,
    maxAgeMs = Infinity,
  ): Promise<void> {
    const known = this.declared.get(key);
    if (known !== undefined && Date.now() - known.at < maxAgeMs) return known.done;
    const ch = this.topology.current;
    if (ch === null) return Promise.reject(this.unavailable('no topology channel'));
    const declared = this.declared;
    const done = declare(ch).then(() => undefined);
    // a failed declaration is not remembered, so the next publish tries again
    done.catch(() => declared.delete(key));
    declared.set(key, { done, at: Date.now() });
    return done;
  }

  /**
   * Declare an endpoint's queue with today's arguments and bind it to its type's exchange, on
   * `ch`. RabbitMQ refuses a declare whose arguments differ from the queue's, as those of a
   * queue an older tasker made do, and closes the channel: the queue is then checked to exist,
   * remembered as one to use as it is (with a warning), and the error rethrown so that the
   * caller's channel is opened again (the relay publishes the task again, the agent's consumer
   * comes back), this time without the declare.
   */
  private async declareEndpointQueue(
    type: string,
    endpoint: string,
    ch: amqp.Channel,
    addressed: boolean,
  ): Promise<string> {
    const queue = names.endpointQueue(this.prefix, type, endpoint);
    await this.declareQueue(
      ch,
      queue,
      endpointQueueOptions(this.prefix, this.options.queueExpiresMs, this.queueType),
    );
    await bindEndpointQueue(ch, this.prefix, type, endpoint, addressed);
    return queue;
  }

  /**
   * Declare a queue with today's arguments, unless it is one found with other arguments before
   * (see declareEndpointQueue): the endpoint, control and results queues.
   */
  private readonly declareQueue: DeclareQueue = async (ch, queue, options) => {
    if (this.oldQueues.has(queue)) return;
    try {
      await ch.assertQueue(queue, options);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 406) throw err;
      await this.keepOldQueue(queue, err);
      throw new OldQueueRefusal(queue, err);
    }
  };

  /** A queue refused our arguments: check on a channel of its own that it exists, and keep it. */
  private async keepOldQueue(queue: string, refusal: unknown): Promise<void> {
    if (this.session.current === null) return;
    await this.onProbeChannel((probe) => probe.checkQueue(queue));
    this.oldQueues.add(queue);
    this.log.warn(
      'queue exists with other arguments (made by an older tasker?); using it as it is until `tasker upgrade-queues` rebuilds it',
      { queue, err: refusal },
    );
  }

  private async acquireSlot(): Promise<void> {
    const max = this.options.maxInFlight ?? 2000;
    while (this.inFlight >= max) {
      await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    }
    this.inFlight += 1;
  }

  private releaseSlot(): void {
    this.inFlight -= 1;
    this.slotWaiters.shift()?.();
  }

  private onDrain(): void {
    this.drained = null;
  }

  private async confirmPublish(
    exchange: string,
    content: Buffer,
    options: amqp.Options.Publish,
    routingKey = '',
  ): Promise<void> {
    await this.acquireSlot();
    try {
      if (this.drained !== null) await this.drained;
      const ch = this.publisher.current;
      if (ch === null) throw this.unavailable('not connected');
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(this.unavailable(`no confirm within ${this.options.confirmTimeoutMs} ms`)),
          this.options.confirmTimeoutMs,
        );
        const ok = ch.publish(exchange, routingKey, content, options, (err: unknown) => {
          clearTimeout(timer);
          if (err === null || err === undefined) resolve();
          else reject(new UnavailableError('broker_unavailable', 'broker did not confirm', err));
        });
        if (!ok && this.drained === null) {
          this.drained = new Promise<void>((resolve) => ch.once('drain', resolve));
        }
      });
    } finally {
      this.releaseSlot();
    }
  }

  async publishTask(message: TaskMessage): Promise<void> {
    if (!this.isConnected) throw this.unavailable('not connected');
    const exchange = names.taskExchange(this.prefix, message.type);
    await this.declareOnce(exchange, (ch) => declareTaskType(ch, this.prefix, message.type));
    // declared together, so concurrent publishes to the same new endpoints share each
    // declaration; declared again well before the queue would expire unused, since declaring
    // is what keeps the queue of an endpoint that is away alive while tasks name it
    const redeclareMs = this.options.queueExpiresMs / 2;
    await Promise.all(
      (message.endpoints ?? []).map((endpoint) =>
        this.declareOnce(
          names.endpointQueue(this.prefix, message.type, endpoint),
          (ch) => this.declareEndpointQueue(message.type, endpoint, ch, true),
          redeclareMs,
        ),
      ),
    );
    const ttl = Math.max(1, taskExpiresAt(message) - Date.now());
    // a task for named endpoints goes to their queues alone: one publish, routed by BCC (the
    // header is removed before delivery), not a copy for every endpoint queue of the type
    const { endpoints } = message;
    await this.confirmPublish(
      endpoints === null ? exchange : names.addressedExchange(this.prefix, message.type),
      Buffer.from(JSON.stringify(message)),
      {
        persistent: true,
        contentType: 'application/json',
        messageId: `task-${message.id}`,
        type: 'task',
        priority: message.priority ?? 0,
        expiration: String(ttl),
        timestamp: Math.floor(Date.now() / 1000),
        appId: 'tasker',
        ...(endpoints === null ? {} : { BCC: endpoints }),
      },
    );
  }

  async publishControl(message: ControlMessage): Promise<void> {
    if (!this.isConnected) throw this.unavailable('not connected');
    const exchange = names.controlExchange(this.prefix);
    await this.declareOnce(exchange, (ch) =>
      declareCommon(ch, this.prefix, this.queueType, this.declareQueue),
    );
    const ttl = Math.max(1, Date.parse(message.expires_at) - Date.now());
    await this.confirmPublish(
      exchange,
      Buffer.from(JSON.stringify(message)),
      {
        persistent: true,
        contentType: 'application/json',
        messageId: `${message.kind}-${message.task_id}-${message.round}`,
        type: message.kind,
        expiration: String(ttl),
        timestamp: Math.floor(Date.now() / 1000),
        appId: 'tasker',
      },
      message.type,
    );
  }

  async publishChange(event: ChangeEvent): Promise<void> {
    if (!this.isConnected) throw this.unavailable('not connected');
    const exchange = names.eventsExchange(this.prefix);
    await this.declareOnce(exchange, (ch) =>
      declareCommon(ch, this.prefix, this.queueType, this.declareQueue),
    );
    await this.confirmPublish(
      exchange,
      Buffer.from(JSON.stringify(event)),
      {
        persistent: true,
        contentType: 'application/json',
        messageId: `change-${event.task_id}-${event.version}`,
        type: 'change',
        timestamp: Math.floor(Date.now() / 1000),
        appId: 'tasker',
      },
      `${event.type}.${event.status}`,
    );
  }

  consumeChanges(onChange: (event: ChangeEvent) => void): Promise<Subscription> {
    return this.subscribe(async (ch, _managed, consume) => {
      await declareCommon(ch, this.prefix, this.queueType, this.declareQueue);
      // a queue of this process's own, gone with its connection
      const { queue } = await ch.assertQueue(names.watchQueue(this.prefix, uuidv7()), {
        exclusive: true,
        autoDelete: true,
      });
      await ch.bindQueue(queue, names.eventsExchange(this.prefix), '#');
      await consume(queue, (message) => {
        if (message === null) {
          void ch.close().catch(() => undefined);
          return;
        }
        ch.ack(message);
        try {
          onChange(parseChangeEvent(message.content));
        } catch (err) {
          this.log.debug('ignoring an invalid change event', { err });
        }
      });
    });
  }

  publishResult(event: ResultEvent): Promise<void> {
    return this.publishResults([event]);
  }

  async publishResults(events: readonly ResultEvent[]): Promise<void> {
    if (!this.isConnected) throw this.unavailable('not connected');
    const [first] = events;
    if (first === undefined) return;
    await this.confirmPublish(names.resultsExchange(this.prefix), encodeResultEvents(events), {
      persistent: true,
      contentType: 'application/json',
      messageId: uuidv7(),
      type: events.length === 1 ? `result.${first.event}` : 'result.batch',
      userId: this.user,
      timestamp: Math.floor(Date.now() / 1000),
      appId: 'tasker-agent',
    });
  }

  async publishHeartbeat(heartbeat: Heartbeat): Promise<void> {
    if (!this.isConnected) throw this.unavailable('not connected');
    const goodbye = heartbeat.phase === 'goodbye';
    await this.confirmPublish(
      names.resultsExchange(this.prefix),
      Buffer.from(JSON.stringify(heartbeat)),
      {
        persistent: goodbye,
        ...(goodbye ? {} : { expiration: String(heartbeat.interval_ms) }),
        contentType: 'application/json',
        messageId: uuidv7(),
        type: `heartbeat.${heartbeat.phase}`,
        userId: this.user,
        timestamp: Math.floor(Date.now() / 1000),
        appId: 'tasker-agent',
      },
    );
  }

  /**
   * A consuming channel: `setup` declares, sets prefetch and calls `consume` through the given
   * function, which records consumer tags so `cancel` can stop deliveries without closing.
   */
  private async subscribe(
    setup: (
      ch: amqp.Channel,
      managed: ManagedChannel,
      consume: (queue: string, onMessage: (m: amqp.ConsumeMessage | null) => void) => Promise<void>,
    ) => Promise<void>,
    options: { waitForExchanges?: boolean } = {},
  ): Promise<Subscription> {
    let cancelled = false;
    let tags: Array<{ ch: amqp.Channel; tag: string }> = [];
    const managed: ManagedChannel = new ManagedChannel(
      this.session,
      this.log,
      (conn) => conn.createChannel(),
      (ch) => {
        tags = [];
        return setup(ch, managed, async (queue, onMessage) => {
          if (cancelled) return;
          const { consumerTag } = await ch.consume(queue, onMessage);
          tags.push({ ch, tag: consumerTag });
        });
      },
    );
    this.subscriptions.add(managed);
    try {
      await managed.start();
    } catch (err) {
      // Its channel reopens every second and sets up again. A queue an older tasker made was
      // found on the way and is used as it is next time. An agent started before the server
      // ever ran finds no exchanges (404 NOT_FOUND): it waits for the server instead of failing.
      // Anything else (refused access, bad arguments) is the caller's to report.
      if (err instanceof OldQueueRefusal) {
        this.log.info('setting up again to use an old queue as it is', { queue: err.queue });
      } else if (options.waitForExchanges === true && (err as { code?: unknown }).code === 404) {
        this.log.warn(
          'exchanges not declared yet: waiting for a server that serves these task types',
          { err },
        );
      } else {
        throw err;
      }
    }
    const cancel = async (): Promise<void> => {
      cancelled = true;
      for (const { ch, tag } of tags) await ch.cancel(tag).catch(() => undefined);
      tags = [];
    };
    return {
      cancel,
      close: async () => {
        await cancel();
        this.subscriptions.delete(managed);
        await managed.close();
      },
    };
  }

  waitingTasks(endpoint: string, types: readonly string[]): Promise<number> {
    return this.onProbeChannel(async (probe) => {
      let waiting = 0;
      for (const type of types) {
        const queue = names.endpointQueue(this.prefix, type, endpoint);
        waiting += (await probe.checkQueue(queue)).messageCount;
      }
      return waiting;
    });
  }

  /**
   * `use` on a channel of its own, closed afterwards: checking a queue that is not there closes
   * the channel it is checked on, which must not be a shared one.
   */
  private async onProbeChannel<T>(use: (probe: amqp.Channel) => Promise<T>): Promise<T> {
    const connection = this.session.current;
    if (connection === null) throw this.unavailable('not connected');
    const probe = await connection.createChannel();
    probe.on('error', () => undefined);
    try {
      return await use(probe);
    } finally {
      await probe.close().catch(() => undefined);
    }
  }

  consumeTasks(
    options: ConsumeTasksOptions,
    onTask: (delivery: Delivery) => Promise<void>,
    onControl?: (delivery: Delivery) => void,
  ): Promise<Subscription> {
    return this.subscribe(
      async (ch, managed, consume) => {
        await ch.prefetch(options.prefetch);
        const consumeQueue = (queue: string, handle: (delivery: Delivery) => void) =>
          consume(queue, (message) => {
            if (message === null) {
              this.log.warn('broker cancelled our consumer; reopening', { queue });
              void ch.close().catch(() => undefined);
              return;
            }
            handle(managed.delivery(ch, message));
          });
        for (const type of options.types) {
          await checkAgentExchanges(ch, this.prefix, type);
          const queue = await this.declareEndpointQueue(type, options.endpoint, ch, false);
          await consumeQueue(queue, (delivery) => void onTask(delivery));
        }
        if (onControl !== undefined) {
          const control = names.controlQueue(this.prefix, options.endpoint);
          await this.declareQueue(
            ch,
            control,
            controlQueueOptions(this.prefix, this.options.queueExpiresMs, this.queueType),
          );
          for (const type of options.types) {
            await ch.bindQueue(control, names.controlExchange(this.prefix), type);
          }
          await consumeQueue(control, onControl);
        }
      },
      { waitForExchanges: true },
    );
  }

  async consumeResults(
    options: ConsumeResultsOptions,
    onBatch: (deliveries: Delivery[]) => Promise<void>,
  ): Promise<Subscription> {
    const batches = new ResultBatches(options, onBatch, this.log);
    const subscription = await this.subscribe(async (ch, managed, consume) => {
      await declareCommon(ch, this.prefix, this.queueType, this.declareQueue);
      await ch.prefetch(options.prefetch);
      const collector = batches.collector();
      ch.on('close', () => collector.discard());
      await consume(names.resultsQueue(this.prefix), (message) => {
        if (message === null) {
          this.log.warn('broker cancelled the results consumer; reopening');
          void ch.close().catch(() => undefined);
          return;
        }
        collector.add(managed.delivery(ch, message));
      });
    });
    return {
      cancel: () => subscription.cancel(),
      close: async () => {
        await subscription.cancel();
        await batches.drain();
        await subscription.close();
      },
    };
  }

  async close(): Promise<void> {
    for (const sub of this.subscriptions) await sub.close();
    this.subscriptions.clear();
    await this.publisher.close();
    await this.topology.close();
    await this.session.close();
  }
}
