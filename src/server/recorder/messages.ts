/**
 * One result message as the recorder takes it: parsed and checked (an invalid message is
 * dead-lettered, an invalid event among valid ones is refused and the rest kept), its
 * publisher checked against the endpoint it reports for, and settled once written: acked, or
 * dead-lettered when some of its events could not be recorded.
 */
import type { Delivery } from '../../broker';
import { parseResultMessage, type ResultEvent, type ResultMessage } from '../../domain';
import type { Logger } from '../../log';

export interface Accepted {
  delivery: Delivery;
  events: ResultEvent[];
  /** some of its events were invalid: dead-letter the message once the rest are recorded */
  keep: boolean;
}

/** Why an event cannot be trusted, or null when it can. */
export function untrusted(
  delivery: Delivery,
  event: ResultEvent,
  agentUserPrefix: string | null,
): string | null {
  if (agentUserPrefix === null) return null;
  const expected = `${agentUserPrefix}${event.endpoint}`;
  if (delivery.userId === expected) return null;
  return `event for endpoint ${event.endpoint} published by broker user ${JSON.stringify(
    delivery.userId,
  )}, not ${JSON.stringify(expected)}`;
}

/**
 * The message's events to record, or null when there are none (the delivery is then
 * dead-lettered): not JSON, no valid event, or published by another endpoint's broker user
 * when `agentUserPrefix` says who may publish for an endpoint.
 */
export function acceptMessage(
  delivery: Delivery,
  agentUserPrefix: string | null,
  log: Logger,
): Accepted | null {
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
    log.warn('refusing invalid result events', { problems: invalid, recording: events.length });
  }
  if (events.length === 0) {
    delivery.deadLetter();
    return null;
  }
  // one endpoint per message (checked when parsing), so its first event speaks for all
  const distrust = untrusted(delivery, events[0] as ResultEvent, agentUserPrefix);
  if (distrust !== null) {
    log.warn('dead-lettering a result message from the wrong broker user', {
      reason: distrust,
      task_ids: events.map((event) => event.task_id),
    });
    delivery.deadLetter();
    return null;
  }
  return { delivery, events, keep: invalid.length > 0 };
}

/** Ack a recorded message, or dead-letter it when some of its events were not recorded. */
export function settleMessage(
  { delivery, events, keep }: Accepted,
  orphaned: ReadonlySet<ResultEvent>,
  log: Logger,
): void {
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
}
