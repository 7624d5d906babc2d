/**
 * An agent's finished events go out in groups: while one message waits for the broker's
 * confirm, the events finished meanwhile gather and go together in the next. A busy agent then
 * publishes one message, and the recorder receives one delivery, for several tasks; an idle one
 * sends each event at once.
 */
import { GroupCommit } from '../batch';
import type { TaskBroker } from '../broker';
import type { ResultEvent } from '../domain';

interface Report {
  event: ResultEvent;
  bytes: number;
}

export interface ReportLimits {
  /** events in one message */
  maxEvents: number;
  /** roughly the bytes of one message: handlers' payloads can be large */
  maxBytes: number;
}

const LIMITS: ReportLimits = { maxEvents: 100, maxBytes: 256 * 1024 };
/** what an event takes besides its payload and errmsg, generously */
const EVENT_OVERHEAD_BYTES = 600;

export class ReportSender {
  private readonly reports: GroupCommit<Report>;

  constructor(broker: TaskBroker, limits: ReportLimits = LIMITS) {
    this.reports = new GroupCommit<Report>(
      (group) => broker.publishResults(group.map((report) => report.event)),
      { take: (waiting) => takeGroup(waiting, limits) },
    );
  }

  /** Resolves once the broker confirmed the message that carried `event`. */
  send(event: ResultEvent): Promise<void> {
    const bytes =
      EVENT_OVERHEAD_BYTES +
      (JSON.stringify(event.payload)?.length ?? 0) +
      (event.errmsg?.length ?? 0);
    return this.reports.add({ event, bytes });
  }
}

/** The oldest reports that fit one message (the first always does). */
function takeGroup(waiting: readonly Report[], limits: ReportLimits): number[] {
  const group: number[] = [];
  let bytes = 0;
  for (const [i, report] of waiting.entries()) {
    const full = group.length >= limits.maxEvents || bytes + report.bytes > limits.maxBytes;
    if (group.length > 0 && full) break;
    bytes += report.bytes;
    group.push(i);
  }
  return group;
}
