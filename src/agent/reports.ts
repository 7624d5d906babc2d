/**
 * An agent's finished events go out in groups: while one message waits for the broker's
 * confirm, the events finished meanwhile gather and go together in the next. A busy agent then
 * publishes one message, and the recorder receives one delivery, for several tasks; an idle one
 * sends each event at once.
 */
import type { TaskBroker } from '../broker';
import type { ResultEvent } from '../domain';

interface Waiting {
  event: ResultEvent;
  bytes: number;
  sent: () => void;
  failed: (err: unknown) => void;
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
  private waiting: Waiting[] = [];
  private sending = false;

  constructor(
    private readonly broker: TaskBroker,
    private readonly limits: ReportLimits = LIMITS,
  ) {}

  /** Resolves once the broker confirmed the message that carried `event`. */
  send(event: ResultEvent): Promise<void> {
    const bytes =
      EVENT_OVERHEAD_BYTES +
      (JSON.stringify(event.payload)?.length ?? 0) +
      (event.errmsg?.length ?? 0);
    return new Promise((sent, failed) => {
      this.waiting.push({ event, bytes, sent, failed });
      if (!this.sending) void this.pump();
    });
  }

  private async pump(): Promise<void> {
    this.sending = true;
    while (this.waiting.length > 0) {
      const group = this.takeGroup();
      try {
        await this.broker.publishResults(group.map((entry) => entry.event));
        for (const entry of group) entry.sent();
      } catch (err) {
        for (const entry of group) entry.failed(err);
      }
    }
    this.sending = false;
  }

  private takeGroup(): Waiting[] {
    let bytes = 0;
    let count = 0;
    for (const entry of this.waiting) {
      if (
        count > 0 &&
        (count >= this.limits.maxEvents || bytes + entry.bytes > this.limits.maxBytes)
      ) {
        break;
      }
      bytes += entry.bytes;
      count += 1;
    }
    return this.waiting.splice(0, count);
  }
}
