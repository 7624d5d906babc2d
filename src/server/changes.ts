/**
 * Changes of tasks after they are committed: published to the events exchange, where other
 * systems subscribe, and received from it to wake this server's clients that wait for news of a
 * task (long polls, event streams). The server holding a client's stream need not be the one
 * that recorded the change. A server listens only while it holds such clients (and a while
 * after the last left): one that holds none does not take in every change of every server. A
 * change event that is lost (a server dies between its commit and its publish) is made up for
 * by the watchers, which look at the database again every few seconds anyway.
 */
import type { Subscription, TaskBroker } from '../broker';
import { WIRE_VERSION, type ChangeEvent } from '../domain';
import type { Logger } from '../log';
import type { ResponseRow, TaskChange, TaskRow } from '../store';

/** change events on their way to the broker at once; more are dropped (with a warning) */
const MAX_IN_FLIGHT = 1000;
/** how long the feed keeps listening after its last watcher left, for the next one */
const LISTEN_LINGER_MS = 60_000;

export function changeEvent(task: TaskRow, rows: readonly ResponseRow[] = []): ChangeEvent {
  return {
    v: WIRE_VERSION,
    type: task.type,
    task_id: Number(task.id),
    identifier: task.identifier,
    status: task.status,
    version: task.version,
    responses: rows.map((row) => ({
      endpoint: row.endpoint,
      status: row.status,
      round: row.round,
      attempt: row.attempt,
      errnr: row.errnr,
    })),
    at: new Date().toISOString(),
  };
}

export class ChangeFeed {
  private inFlight = 0;
  private dropped = 0;
  /** the subscription while listening, or on its way; null when not listening */
  private subscribing: Promise<Subscription | null> | null = null;
  private subscribed = false;
  private lingering: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly byTask = new Map<number, Set<(event: ChangeEvent) => void>>();
  private readonly everything = new Set<(event: ChangeEvent) => void>();

  /**
   * `onCommitted` hears every committed change this server publishes, whichever part made it
   * (the metrics count them there). `lingerMs`: how long to go on listening after the last
   * watcher left.
   */
  constructor(
    private readonly broker: TaskBroker,
    private readonly log: Logger,
    private readonly onCommitted: (changes: readonly TaskChange[]) => void = () => undefined,
    private readonly lingerMs = LISTEN_LINGER_MS,
  ) {}

  /** Publish committed changes, without waiting: a change is news, not a decision. */
  publish(changes: readonly TaskChange[]): void {
    this.onCommitted(changes);
    for (const { task, rows } of changes) this.publishEvent(changeEvent(task, rows));
  }

  publishEvent(event: ChangeEvent): void {
    if (this.inFlight >= MAX_IN_FLIGHT || !this.broker.isConnected) {
      this.dropped += 1;
      if (this.dropped === 1 || this.dropped % 1000 === 0) {
        this.log.warn('change events not published (broker away or slow)', {
          dropped: this.dropped,
        });
      }
      return;
    }
    this.inFlight += 1;
    this.broker
      .publishChange(event)
      .catch((err: unknown) => this.log.debug('could not publish a change event', { err }))
      .finally(() => {
        this.inFlight -= 1;
      });
  }

  /** Whether change events reach this server now (its queue is bound and consumed). */
  get isListening(): boolean {
    return this.subscribed;
  }

  /**
   * Listen to the events exchange, if not already; resolves once listening (or once trying
   * failed: the watchers read the database every few seconds meanwhile, and the next watcher
   * tries again). Watchers call it themselves; a watcher that must not miss a change made before
   * it resolved reads the task again after it.
   */
  listen(): Promise<void> {
    this.stopLingering();
    if (this.closed) return Promise.resolve();
    if (this.subscribing === null) {
      const subscribing: Promise<Subscription | null> = this.broker
        .consumeChanges((event) => this.deliver(event))
        .then(
          (subscription) => {
            // unless stopped meanwhile, which closes it
            if (this.subscribing === subscribing) this.subscribed = true;
            return subscription;
          },
          (err: unknown) => {
            this.log.warn('not listening to change events; watchers read the database meanwhile', {
              err,
            });
            if (this.subscribing === subscribing) this.subscribing = null;
            return null;
          },
        );
      this.subscribing = subscribing;
    }
    return this.subscribing.then(() => undefined);
  }

  private deliver(event: ChangeEvent): void {
    for (const listener of this.byTask.get(event.task_id) ?? []) listener(event);
    for (const listener of this.everything) listener(event);
  }

  /** Be told of changes of one task (listening if not yet); returns how to stop. */
  watch(taskId: number, listener: (event: ChangeEvent) => void): () => void {
    let listeners = this.byTask.get(taskId);
    if (listeners === undefined) {
      listeners = new Set();
      this.byTask.set(taskId, listeners);
    }
    listeners.add(listener);
    void this.listen();
    return () => {
      if (!listeners.delete(listener)) return;
      if (listeners.size === 0) this.byTask.delete(taskId);
      this.lingerIfUnwatched();
    };
  }

  /** Be told of every change (listening if not yet); returns how to stop. */
  watchAll(listener: (event: ChangeEvent) => void): () => void {
    this.everything.add(listener);
    void this.listen();
    return () => {
      if (this.everything.delete(listener)) this.lingerIfUnwatched();
    };
  }

  /** How many watch one task or all, for the metrics. */
  get watchers(): number {
    let count = this.everything.size;
    for (const listeners of this.byTask.values()) count += listeners.size;
    return count;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.stopListening();
  }

  /** The last watcher left: stop listening unless another comes within `lingerMs`. */
  private lingerIfUnwatched(): void {
    if (this.watchers > 0 || this.lingering !== null || this.subscribing === null) return;
    this.lingering = setTimeout(() => {
      this.lingering = null;
      if (this.watchers === 0) void this.stopListening();
    }, this.lingerMs);
    this.lingering.unref();
  }

  private stopLingering(): void {
    if (this.lingering === null) return;
    clearTimeout(this.lingering);
    this.lingering = null;
  }

  private async stopListening(): Promise<void> {
    this.stopLingering();
    const subscribing = this.subscribing;
    this.subscribing = null;
    this.subscribed = false;
    const subscription = await subscribing;
    await subscription
      ?.close()
      .catch((err: unknown) =>
        this.log.debug('could not stop listening to change events', { err }),
      );
  }
}
