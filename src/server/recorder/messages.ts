/**
 * One message from an agent as the recorder takes it: parsed and checked (an invalid message is
 * dead-lettered, an invalid event among valid ones is refused and the rest kept), its
 * publisher checked against the endpoint it speaks for, and settled once written: acked, or
 * dead-lettered when some of its events could not be recorded. It holds result events or a
 * heartbeat.
 */
import type { Delivery } from '../../broker';
import { parseAgentMessage, type Heartbeat, type ResultEvent } from '../../domain';
import type { Logger } from '../../log';

export interface Accepted {
  delivery: Delivery;
  events: ResultEvent[];
  /** some of its events were invalid: dead-letter the message once the rest are recorded */
  keep: boolean;
}

/** A heartbeat taken from an agent, to record with the others of its batch. */
export interface HeardBeat {
  delivery: Delivery;
  heartbeat: Heartbeat;
}

/** Why a message for `endpoint` cannot be trusted, or null when it can. */
export function untrusted(
  delivery: Delivery,
  endpoint: string,
  agentUserPrefix: string | null,
): string | null {
  if (agentUserPrefix === null) return null;
  const expected = `${agentUserPrefix}${endpoint}`;
  if (delivery.userId === expected) return null;
  return `message for endpoint ${endpoint} published by broker user ${JSON.stringify(
    delivery.userId,
  )}, not ${JSON.stringify(expected)}`;
}

/**
 * The message's events to record or its heartbeat, or null when there is nothing to record (the
 * delivery is then dead-lettered): not JSON, no valid event, or published by another
 * endpoint's broker user when `agentUserPrefix` says who may publish for an endpoint.
 */
export function acceptMessage(
  delivery: Delivery,
  agentUserPrefix: string | null,
  log: Logger,
): Accepted | HeardBeat | null {
  let parsed: ReturnType<typeof parseAgentMessage>;
  try {
    parsed = parseAgentMessage(delivery.content);
  } catch (err) {
    log.warn('dead-lettering an invalid message from an agent', { err });
    delivery.deadLetter();
    return null;
  }
  if (parsed.kind === 'heartbeat') {
    const { heartbeat } = parsed;
    const distrust = untrusted(delivery, heartbeat.endpoint, agentUserPrefix);
    if (distrust === null) return { delivery, heartbeat };
    log.warn('dead-lettering a heartbeat from the wrong broker user', { reason: distrust });
    delivery.deadLetter();
    return null;
  }
  const { events, invalid } = parsed.message;
  if (invalid.length > 0) {
    log.warn('refusing invalid result events', { problems: invalid, recording: events.length });
  }
  if (events.length === 0) {
    delivery.deadLetter();
    return null;
  }
  // one endpoint per message (checked when parsing), so its first event speaks for all
  const distrust = untrusted(delivery, (events[0] as ResultEvent).endpoint, agentUserPrefix);
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
