/**
 * The recorder turns result events from the agents into response rows. It validates every
 * event, writes a batch in one transaction, and acks only after the commit; a batch the
 * database refused goes back to the queue (after a pause, so a database outage is no busy loop).
 */
import type { Delivery, Subscription, TaskBroker } from '../broker';
import { parseResultEvents, type ResultEvent } from '../domain';
import type { Logger } from '../log';
import { recordResultEvents, type Db } from '../store';

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

const MAX_PAUSE_MS = 10_000;

export async function startRecorder(
  db: Db,
  broker: TaskBroker,
  options: RecorderOptions,
  log: Logger,
): Promise<Subscription> {
  let failures = 0;
  const onBatch = async (deliveries: Delivery[]): Promise<void> => {
    const accepted: Array<{ delivery: Delivery; events: ResultEvent[] }> = [];
    for (const delivery of deliveries) {
      let events: ResultEvent[];
      try {
        events = parseResultEvents(delivery.content);
      } catch (err) {
        log.warn('dead-lettering an invalid result message', { err });
        delivery.deadLetter();
        continue;
      }
      // one endpoint per message (checked when parsing), so its first event speaks for all
      const distrust = untrusted(
        delivery,
        events[0] as ResultEvent,
        options.agentUserPrefix ?? null,
      );
      if (distrust !== null) {
        log.warn('dead-lettering a result message from the wrong broker user', {
          reason: distrust,
          task_ids: events.map((event) => event.task_id),
        });
        delivery.deadLetter();
        continue;
      }
      accepted.push({ delivery, events });
    }
    if (accepted.length === 0) return;
    let orphaned: Set<ResultEvent>;
    try {
      const outcome = await recordResultEvents(
        db,
        accepted.flatMap((a) => a.events),
      );
      orphaned = new Set(outcome.orphaned);
      failures = 0;
      log.debug('recorded result events', {
        applied: outcome.applied,
        ignored: outcome.ignored,
        orphaned: outcome.orphaned.length,
      });
    } catch (err) {
      failures += 1;
      const pause = Math.min(MAX_PAUSE_MS, 250 * 2 ** Math.min(failures, 6));
      log.warn('could not record result events; returning them to the queue', {
        err,
        messages: accepted.length,
        pause_ms: pause,
      });
      await new Promise((resolve) => setTimeout(resolve, pause));
      for (const { delivery } of accepted) delivery.requeue();
      return;
    }
    for (const { delivery, events } of accepted) {
      const unknown = events.filter((event) => orphaned.has(event));
      if (unknown.length === 0) {
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
  };
  return broker.consumeResults(
    { batchSize: options.batchSize, prefetch: options.prefetch, lingerMs: options.lingerMs ?? 10 },
    onBatch,
  );
}
