/**
 * Result deliveries handed over in batches: at most `batchSize` at once, a partial batch after
 * `lingerMs`. Batches run one after another, so `drain()` on close waits until the last has
 * finished (and acked). Shared by both brokers so their batching cannot drift apart.
 */
import { GroupCommit } from '../batch';
import type { Logger } from '../log';
import type { ConsumeResultsOptions, Delivery } from './types';

/** Collects the deliveries of one channel (AMQP) or one consumer (in-process). */
export interface BatchCollector {
  add(delivery: Delivery): void;
  /** forget what is waiting: its channel is gone and the broker redelivers it */
  discard(): void;
}

interface Held {
  delivery: Delivery;
  /** the collector (channel) it came through */
  from: number;
}

export class ResultBatches {
  private readonly batches: GroupCommit<Held>;
  private collectors = 0;

  constructor(
    options: Pick<ConsumeResultsOptions, 'batchSize' | 'lingerMs'>,
    onBatch: (deliveries: Delivery[]) => Promise<void>,
    log: Logger,
  ) {
    // one batch at a time: deliveries that arrive while one runs wait for it, so a slow write
    // makes the next batch bigger instead of queueing small ones
    this.batches = new GroupCommit<Held>(
      (held) =>
        onBatch(held.map((item) => item.delivery)).catch((err: unknown) =>
          log.error('result batch handler failed', { err }),
        ),
      { maxItems: options.batchSize, lingerMs: options.lingerMs },
    );
  }

  /** A new collector, e.g. for a reopened channel; batches keep running one at a time. */
  collector(): BatchCollector {
    const from = (this.collectors += 1);
    return {
      add: (delivery) => void this.batches.add({ delivery, from }),
      discard: () => this.batches.drop((item) => item.from === from),
    };
  }

  /** Hand over everything that waits and wait until every batch finished (and acked). */
  drain(): Promise<void> {
    return this.batches.drain();
  }
}
