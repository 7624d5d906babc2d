/**
 * Finding the bad message of a batch the database refused: its messages are written one by one,
 * and a failing message's events one by one, so that the bad event holds back nothing else.
 * A message the database refuses for its values, or that failed on its own MAX_FAILURES_ALONE
 * times, is dead-lettered (its other events are recorded). The database going away ends the
 * search, and so does another failure every write would meet, unless a write of this batch just
 * went through: then it is the message's own.
 */
import { createHash } from 'node:crypto';
import type { Delivery } from '../../broker';
import type { ResultEvent } from '../../domain';
import type { Logger } from '../../log';
import { failsEveryWrite, isDatabaseAway, isRefusedData } from '../../store';
import type { Accepted } from './messages';

/** a message that fails on its own this often, for no reason found, is dead-lettered */
export const MAX_FAILURES_ALONE = 3;
/** messages whose failures are remembered; the oldest are forgotten past this */
const MAX_TRACKED_FAILURES = 10_000;

/** The result of writing some events in one transaction. */
export type WriteResult = { orphaned: ResultEvent[] } | { error: unknown };

/** How often each message failed on its own, by message id (or content), the latest kept. */
export class FailureCounts {
  private readonly counts = new Map<string, number>();

  private keyOf(delivery: Delivery): string {
    return delivery.messageId ?? createHash('sha256').update(delivery.content).digest('base64');
  }

  /** Count one more failure of this message on its own; returns how many it has had. */
  count(delivery: Delivery): number {
    const key = this.keyOf(delivery);
    const count = (this.counts.get(key) ?? 0) + 1;
    this.counts.delete(key);
    this.counts.set(key, count);
    if (this.counts.size > MAX_TRACKED_FAILURES) {
      this.counts.delete(this.counts.keys().next().value as string);
    }
    return count;
  }

  forget(delivery: Delivery): void {
    if (this.counts.size > 0) this.counts.delete(this.keyOf(delivery));
  }
}

export interface IsolationDeps {
  write(events: ResultEvent[]): Promise<WriteResult>;
  settle(message: Accepted, orphaned: ReadonlySet<ResultEvent>): void;
  failures: FailureCounts;
  log: Logger;
}

/** Write the batch's messages one by one; returns the messages to hand back to the queue. */
export async function isolateBadMessages(
  accepted: Accepted[],
  batchError: unknown,
  deps: IsolationDeps,
): Promise<Accepted[]> {
  const { write, settle, failures, log } = deps;
  const retry: Accepted[] = [];
  let written = false;
  const handBack = (err: unknown): boolean =>
    isDatabaseAway(err) || (!written && failsEveryWrite(err));
  for (const [i, message] of accepted.entries()) {
    const whole: WriteResult =
      accepted.length === 1 ? { error: batchError } : await write(message.events);
    if (!('error' in whole)) {
      written = true;
      failures.forget(message.delivery);
      settle(message, new Set(whole.orphaned));
      continue;
    }
    if (handBack(whole.error)) return [...retry, ...accepted.slice(i)];
    let refusal: unknown = whole.error;
    const orphaned: ResultEvent[] = [];
    let recorded = 0;
    if (message.events.length > 1) {
      refusal = null;
      for (const event of message.events) {
        const alone = await write([event]);
        if ('error' in alone) {
          if (handBack(alone.error)) return [...retry, ...accepted.slice(i)];
          refusal = alone.error;
        } else {
          written = true;
          recorded += 1;
          orphaned.push(...alone.orphaned);
        }
      }
    }
    if (refusal === null) {
      // each event went in on its own
      failures.forget(message.delivery);
      settle(message, new Set(orphaned));
      continue;
    }
    const count = failures.count(message.delivery);
    const fields = {
      err: refusal,
      failures: count,
      task_ids: message.events.map((event) => event.task_id),
      recorded_events: recorded,
    };
    if (isRefusedData(refusal) || count >= MAX_FAILURES_ALONE) {
      log.error('dead-lettering a result message the database does not take', fields);
      failures.forget(message.delivery);
      message.delivery.deadLetter();
    } else {
      log.warn('a result message failed on its own; returning it to the queue', fields);
      retry.push(message);
    }
  }
  return retry;
}
