/**
 * Result deliveries handed over in batches: at most `batchSize` at once, a partial batch after
 * `lingerMs`. Batches run one after another, so `drain()` on close waits until the last has
 * finished (and acked). Shared by both brokers so their batching cannot drift apart.
 */
import type { Logger } from '../log';
import type { ConsumeResultsOptions, Delivery } from './types';

/** Collects the deliveries of one channel (AMQP) or one consumer (in-process). */
export interface BatchCollector {
  add(delivery: Delivery): void;
  /** forget what is waiting: its channel is gone and the broker redelivers it */
  discard(): void;
}

interface Pending {
  items: Array<{ delivery: Delivery; at: number }>;
  timer: NodeJS.Timeout | null;
}

export class ResultBatches {
  private chain = Promise.resolve();
  private busy = false;
  private current: Pending | null = null;

  constructor(
    private readonly options: Pick<ConsumeResultsOptions, 'batchSize' | 'lingerMs'>,
    private readonly onBatch: (deliveries: Delivery[]) => Promise<void>,
    private readonly log: Logger,
  ) {}

  /** A new collector, e.g. for a reopened channel; batches keep running one at a time. */
  collector(): BatchCollector {
    const pending: Pending = { items: [], timer: null };
    this.current = pending;
    return {
      add: (delivery) => {
        pending.items.push({ delivery, at: Date.now() });
        this.pump(pending);
      },
      discard: () => {
        stopTimer(pending);
        pending.items = [];
      },
    };
  }

  /**
   * Start the next batch unless one is running: when `batchSize` deliveries wait, when the
   * oldest has waited `lingerMs`, or when forced. Deliveries that arrive while a batch runs wait
   * for it, so a slow write makes the next batch bigger instead of queueing small ones.
   */
  private pump(pending: Pending, force = false): void {
    const oldest = pending.items[0];
    if (this.busy || oldest === undefined) return;
    const { batchSize, lingerMs } = this.options;
    const waited = Date.now() - oldest.at;
    if (!force && pending.items.length < batchSize && waited < lingerMs) {
      pending.timer ??= setTimeout(() => {
        pending.timer = null;
        this.pump(pending);
      }, lingerMs - waited);
      return;
    }
    stopTimer(pending);
    const batch = pending.items.splice(0, batchSize).map((item) => item.delivery);
    this.busy = true;
    this.chain = this.onBatch(batch)
      .catch((err: unknown) => this.log.error('result batch handler failed', { err }))
      .finally(() => {
        this.busy = false;
        if (this.current !== null) this.pump(this.current);
      });
  }

  /** Hand over everything the latest collector holds and wait until every batch finished. */
  async drain(): Promise<void> {
    for (;;) {
      if (this.current !== null) this.pump(this.current, true);
      await this.chain;
      if (!this.busy && (this.current?.items.length ?? 0) === 0) return;
    }
  }
}

function stopTimer(pending: Pending): void {
  if (pending.timer !== null) clearTimeout(pending.timer);
  pending.timer = null;
}
