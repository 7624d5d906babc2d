/**
 * The recorder turns result events from the agents into response rows. It validates every
 * event, writes a batch in one transaction, and acks only after the commit; a batch the
 * database could not take goes back to the queue (after a pause, so a database outage is no
 * busy loop). When the batch failed for something in it rather than the database being away,
 * its messages are written one by one to find the bad one, which then cannot hold back the
 * others for ever.
 */
import { createHash } from 'node:crypto';
import type { Delivery, Subscription, TaskBroker } from '../broker';
import { parseResultMessage, type ResultEvent, type ResultMessage } from '../domain';
import type { Logger } from '../log';
import {
  failsEveryWrite,
  isDatabaseAway,
  isRefusedData,
  recordResultEvents,
  type Db,
} from '../store';

export interface RecorderOptions {
  batchSize: number;
  prefetch: number;
  lingerMs?: number;
  /** when set, an event is trusted only if published by the broker user `<prefix><endpoint>` */
  agentUserPrefix?: string | null;
}

/** Why an event cannot be trusted, or null when it can. */
function untrusted(delivery: Delivery, event: ResultEvent, prefix: string | null): string | null {
  if (prefix === null) return null;
  const expected = `${prefix}${event.endpoint}`;
  if (delivery.userId === expected) return null;
  return `event for endpoint ${event.endpoint} published by broker user ${JSON.stringify(
    delivery.userId,
  )}, not ${JSON.stringify(expected)}`;
}

interface Accepted {
  delivery: Delivery;
  events: ResultEvent[];
  /** some of its events were invalid: dead-letter the message once the rest are recorded */
  keep: boolean;
}

const MAX_PAUSE_MS = 10_000;
/** a message that fails on its own this often, for no reason found, is dead-lettered */
const MAX_FAILURES_ALONE = 3;
/** batches handed back in a row for a failure every write meets, before looking into one */
const ISOLATE_AFTER_FAILURES = 3;
const MAX_TRACKED_FAILURES = 10_000;

export async function startRecorder(
  db: Db,
  broker: TaskBroker,
  options: RecorderOptions,
  log: Logger,
): Promise<Subscription> {
  let failures = 0;

  const accept = (delivery: Delivery): Accepted | null => {
    let message: ResultMessage;
    try {
      message = parseResultMessage(delivery.content);
    } catch (err) {
      log.warn('dead-lettering an invalid result message', { err });
      delivery.deadLetter();
      return null;
    }
    const { events, invalid } = message;
    if (invalid.length > 0) {
      log.warn('refusing invalid result events', {
        problems: invalid,
        recording: events.length,
      });
    }
    if (events.length === 0) {
      delivery.deadLetter();
      return null;
    }
    // one endpoint per message (checked when parsing), so its first event speaks for all
    const distrust = untrusted(delivery, events[0] as ResultEvent, options.agentUserPrefix ?? null);
    if (distrust !== null) {
      log.warn('dead-lettering a result message from the wrong broker user', {
        reason: distrust,
        task_ids: events.map((event) => event.task_id),
      });
      delivery.deadLetter();
      return null;
    }
    return { delivery, events, keep: invalid.length > 0 };
  };

  /** Write events in one transaction: the events for unknown tasks, or the error. */
  const write = async (
    events: ResultEvent[],
  ): Promise<{ orphaned: ResultEvent[] } | { error: unknown }> => {
    try {
      const outcome = await recordResultEvents(db, events);
      log.debug('recorded result events', {
        applied: outcome.applied,
        ignored: outcome.ignored,
        orphaned: outcome.orphaned.length,
      });
      return { orphaned: outcome.orphaned };
    } catch (error) {
      return { error };
    }
  };

  /** Ack a recorded message, or keep it dead-lettered when some of its events were not. */
  const settle = ({ delivery, events, keep }: Accepted, orphaned: ReadonlySet<ResultEvent>) => {
    const unknown = events.filter((event) => orphaned.has(event));
    if (unknown.length === 0 && !keep) {
      delivery.ack();
      return;
    }
    for (const event of unknown) {
      log.warn('dead-lettering a result event for an unknown task', {
        task_id: event.task_id,
        type: event.type,
        endpoint: event.endpoint,
      });
    }
    delivery.deadLetter();
  };

  /** How often each message failed on its own, by message id (or content), the latest kept. */
  const failedAlone = new Map<string, number>();
  const keyOf = (delivery: Delivery): string =>
    delivery.messageId ?? createHash('sha256').update(delivery.content).digest('base64');
  const countFailure = (delivery: Delivery): number => {
    const key = keyOf(delivery);
    const count = (failedAlone.get(key) ?? 0) + 1;
    failedAlone.delete(key);
    failedAlone.set(key, count);
    if (failedAlone.size > MAX_TRACKED_FAILURES) {
      failedAlone.delete(failedAlone.keys().next().value as string);
    }
    return count;
  };
  const forget = (delivery: Delivery): void => {
    if (failedAlone.size > 0) failedAlone.delete(keyOf(delivery));
  };

  /**
   * Something in the batch failed it: write its messages one by one, and a failing message's
   * events one by one, so that the bad event holds back nothing else. A message the database
   * refuses for its values, or that failed on its own MAX_FAILURES_ALONE times, is
   * dead-lettered (its other events are recorded). The database going away ends the search,
   * and so does another failure every write would meet, unless a write of this batch just went
   * through: then it is the message's own. Returns the messages to hand back.
   */
  const isolate = async (accepted: Accepted[], batchError: unknown): Promise<Accepted[]> => {
    const retry: Accepted[] = [];
    let written = false;
    const handBack = (err: unknown): boolean =>
      isDatabaseAway(err) || (!written && failsEveryWrite(err));
    for (const [i, message] of accepted.entries()) {
      const whole = accepted.length === 1 ? { error: batchError } : await write(message.events);
      if (!('error' in whole)) {
        written = true;
        forget(message.delivery);
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
        forget(message.delivery);
        settle(message, new Set(orphaned));
        continue;
      }
      const failures = countFailure(message.delivery);
      const fields = {
        err: refusal,
        failures,
        task_ids: message.events.map((event) => event.task_id),
        recorded_events: recorded,
      };
      if (isRefusedData(refusal) || failures >= MAX_FAILURES_ALONE) {
        log.error('dead-lettering a result message the database does not take', fields);
        forget(message.delivery);
        message.delivery.deadLetter();
      } else {
        log.warn('a result message failed on its own; returning it to the queue', fields);
        retry.push(message);
      }
    }
    return retry;
  };

  const onBatch = async (deliveries: Delivery[]): Promise<void> => {
    const accepted = deliveries.map(accept).filter((a): a is Accepted => a !== null);
    if (accepted.length === 0) return;
    const batch = await write(accepted.flatMap((a) => a.events));
    if (!('error' in batch)) {
      const orphaned = new Set(batch.orphaned);
      for (const message of accepted) settle(message, orphaned);
      failures = 0;
      return;
    }
    // A failure every write meets hands the batch back; after a few in a row, look anyway: a
    // batch too large for a statement timeout or the lock table looks the same. The search
    // stops at the first write when the database is in fact away.
    const retry =
      failsEveryWrite(batch.error) && failures < ISOLATE_AFTER_FAILURES
        ? accepted
        : await isolate(accepted, batch.error);
    if (retry.length === 0) {
      failures = 0;
      return;
    }
    failures += 1;
    const pause = Math.min(MAX_PAUSE_MS, 250 * 2 ** Math.min(failures, 6));
    log.warn('could not record result events; returning them to the queue', {
      err: batch.error,
      messages: retry.length,
      pause_ms: pause,
    });
    await new Promise((resolve) => setTimeout(resolve, pause));
    for (const { delivery } of retry) delivery.requeue();
  };
  return broker.consumeResults(
    { batchSize: options.batchSize, prefetch: options.prefetch, lingerMs: options.lingerMs ?? 10 },
    onBatch,
  );
}
