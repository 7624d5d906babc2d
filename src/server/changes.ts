/**
 * Changes of tasks after they are committed: published to the events exchange, where other
 * systems subscribe and every server listens, and received from it to wake this server's
 * clients that wait for news of a task (long polls, event streams). The server holding a
 * client's stream need not be the one that recorded the change. A change event that is lost (a
 * server dies between its commit and its publish) is made up for by the watchers, which look at
 * the database again every few seconds anyway.
 */
import type { Subscription, TaskBroker } from '../broker';
import { WIRE_VERSION, type ChangeEvent } from '../domain';
import type { Logger } from '../log';
import type { ResponseRow, TaskChange, TaskRow } from '../store';

/** change events on their way to the broker at once; more are dropped (with a warning) */
const MAX_IN_FLIGHT = 1000;

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
  private subscription: Subscription | null = null;
  private readonly byTask = new Map<number, Set<(event: ChangeEvent) => void>>();
  private readonly everything = new Set<(event: ChangeEvent) => void>();

  /**
   * `onCommitted` hears every committed change this server publishes, whichever part made it
   * (the metrics count them there).
   */
  constructor(
    private readonly broker: TaskBroker,
    private readonly log: Logger,
    private readonly onCommitted: (changes: readonly TaskChange[]) => void = () => undefined,
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

  /** Listen to the events exchange; from then on watchers hear of every server's changes. */
  async start(): Promise<void> {
    this.subscription ??= await this.broker.consumeChanges((event) => this.deliver(event));
  }

  private deliver(event: ChangeEvent): void {
    for (const listener of this.byTask.get(event.task_id) ?? []) listener(event);
    for (const listener of this.everything) listener(event);
  }

  /** Be told of changes of one task; returns how to stop. */
  watch(taskId: number, listener: (event: ChangeEvent) => void): () => void {
    let listeners = this.byTask.get(taskId);
    if (listeners === undefined) {
      listeners = new Set();
      this.byTask.set(taskId, listeners);
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) this.byTask.delete(taskId);
    };
  }

  /** Be told of every change; returns how to stop. */
  watchAll(listener: (event: ChangeEvent) => void): () => void {
    this.everything.add(listener);
    return () => void this.everything.delete(listener);
  }

  /** How many watch one task or all, for the metrics. */
  get watchers(): number {
    let count = this.everything.size;
    for (const listeners of this.byTask.values()) count += listeners.size;
    return count;
  }

  async close(): Promise<void> {
    await this.subscription?.close();
    this.subscription = null;
  }
}
