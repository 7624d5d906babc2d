/**
 * The recorder turns result events from the agents into response rows. It validates every
 * event, writes a batch in one transaction, and acks only after the commit; a batch the
 * database could not take goes back to the queue (after a pause, so a database outage is no
 * busy loop). A message the database refuses for its values is found by writing the batch's
 * messages one by one, and dead-lettered, so that it cannot hold back the others for ever.
 */
import type { Delivery, Subscription, TaskBroker } from '../broker';
import { parseResultMessage, type ResultEvent, type ResultMessage } from '../domain';
import type { Logger } from '../log';
import { isRefusedData, recordResultEvents, type Db } from '../store';

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

  /** Record the messages' events in one transaction and settle them; the error if it failed. */
  const record = async (accepted: Accepted[]): Promise<unknown> => {
    let orphaned: Set<ResultEvent>;
    try {
      const outcome = await recordResultEvents(
        db,
        accepted.flatMap((a) => a.events),
      );
      orphaned = new Set(outcome.orphaned);
      log.debug('recorded result events', {
        applied: outcome.applied,
        ignored: outcome.ignored,
        orphaned: outcome.orphaned.length,
      });
    } catch (err) {
      return err;
    }
    for (const { delivery, events, keep } of accepted) {
      const unknown = events.filter((event) => orphaned.has(event));
      if (unknown.length === 0 && !keep) {
        delivery.ack();
        continue;
      }
      // the message's other events are recorded; the message is kept for inspection
      for (const event of unknown) {
        log.warn('dead-lettering a result event for an unknown task', {
          task_id: event.task_id,
          type: event.type,
          endpoint: event.endpoint,
        });
      }
      delivery.deadLetter();
    }
    return null;
  };

  const onBatch = async (deliveries: Delivery[]): Promise<void> => {
    const accepted = deliveries.map(accept).filter((a): a is Accepted => a !== null);
    if (accepted.length === 0) return;
    const failed = await record(accepted);
    if (failed === null) {
      failures = 0;
      return;
    }
    let retry = accepted;
    let err = failed;
    if (isRefusedData(failed)) {
      // the values of some message: write them one by one, and keep the refused ones aside
      retry = [];
      for (const one of accepted) {
        const alone = accepted.length === 1 ? failed : await record([one]);
        if (alone === null) continue;
        if (isRefusedData(alone)) {
          log.error('dead-lettering a result message the database refuses', {
            err: alone,
            task_ids: one.events.map((event) => event.task_id),
          });
          one.delivery.deadLetter();
        } else {
          retry.push(one);
          err = alone;
        }
      }
      if (retry.length === 0) {
        failures = 0;
        return;
      }
    }
    failures += 1;
    const pause = Math.min(MAX_PAUSE_MS, 250 * 2 ** Math.min(failures, 6));
    log.warn('could not record result events; returning them to the queue', {
      err,
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
