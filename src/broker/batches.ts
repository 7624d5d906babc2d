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
  /** hand over what is waiting now */
  flush(): void;
  /** forget what is waiting: its channel is gone and the broker redelivers it */
  discard(): void;
}

export class ResultBatches {
  private chain = Promise.resolve();
  private current: BatchCollector | null = null;

  constructor(
    private readonly options: Pick<ConsumeResultsOptions, 'batchSize' | 'lingerMs'>,
    private readonly onBatch: (deliveries: Delivery[]) => Promise<void>,
    private readonly log: Logger,
  ) {}

  private run(batch: Delivery[]): void {
    this.chain = this.chain
      .then(() => this.onBatch(batch))
      .catch((err: unknown) => this.log.error('result batch handler failed', { err }));
  }

  /** A new collector, e.g. for a reopened channel; batches keep running in order. */
  collector(): BatchCollector {
    const { batchSize, lingerMs } = this.options;
    let pending: Delivery[] = [];
    let timer: NodeJS.Timeout | null = null;
    const discard = (): void => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      pending = [];
    };
    const flush = (): void => {
      const batch = pending;
      discard();
      if (batch.length > 0) this.run(batch);
    };
    const collector: BatchCollector = {
      add: (delivery) => {
        pending.push(delivery);
        if (pending.length >= batchSize) flush();
        else timer ??= setTimeout(flush, lingerMs);
      },
      flush,
      discard,
    };
    this.current = collector;
    return collector;
  }

  /** Hand over what the latest collector holds and wait for every batch to finish. */
  async drain(): Promise<void> {
    this.current?.flush();
    await this.chain;
  }
}
