/**
 * What an agent says of itself to the endpoint registry: a hello once it consumes, a beat every
 * interval, a goodbye once it stopped. They travel like results, through the broker (the agent
 * never touches the database); one that cannot be sent is logged and the next one tries again.
 */
import { hostname } from 'node:os';
import type { TaskBroker } from '../broker';
import { HEARTBEAT_VERSION, type Heartbeat } from '../domain';
import type { Logger } from '../log';
import { VERSION } from '../package';

export interface HeartbeatOptions {
  endpoint: string;
  types: readonly string[];
  labels: Readonly<Record<string, string>>;
  intervalMs: number;
  broker: TaskBroker;
  log: Logger;
  /** each task type's handler version */
  handlers(): ReadonlyMap<string, string>;
  /** handlers running now, and at most at once */
  load(): { running: number; capacity: number };
}

/** how long a goodbye may take before stopping goes on without it */
const GOODBYE_TIMEOUT_MS = 5000;

export class HeartbeatSender {
  private readonly startedAt = new Date().toISOString();
  private timer: NodeJS.Timeout | null = null;
  private sending: Promise<void> | null = null;
  private stopped = false;
  /** the last heartbeat could not be sent */
  private failing = false;

  constructor(private readonly options: HeartbeatOptions) {}

  /** Say hello, then beat every interval. */
  start(): void {
    if (this.stopped || this.timer !== null) return;
    void this.send('hello');
    this.schedule();
  }

  /** Stop beating and say goodbye; resolves once the broker confirmed it, or gave up. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.sending;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.send('goodbye'),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, GOODBYE_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  /** The next beat in 90–100 % of the interval: agents started together drift apart. */
  private schedule(): void {
    const delay = this.options.intervalMs * (0.9 + Math.random() * 0.1);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      // a beat still waiting for its confirm is not doubled
      if (this.sending === null) void this.send('beat');
      this.schedule();
    }, delay);
    this.timer.unref();
  }

  private send(phase: Heartbeat['phase']): Promise<void> {
    const sending = this.options.broker
      .publishHeartbeat(this.heartbeat(phase))
      .then(
        () => {
          if (this.failing) this.options.log.info('heartbeats go through again');
          this.failing = false;
        },
        (err: unknown) => {
          // once per outage: the broker's own log says the rest
          if (!this.failing) {
            this.options.log.warn('could not send a heartbeat; the next ones try again', {
              phase,
              err,
            });
          }
          this.failing = true;
        },
      )
      .finally(() => {
        if (this.sending === sending) this.sending = null;
      });
    this.sending = sending;
    return sending;
  }

  heartbeat(phase: Heartbeat['phase']): Heartbeat {
    const { endpoint, types, labels, intervalMs } = this.options;
    return {
      v: HEARTBEAT_VERSION,
      kind: 'heartbeat',
      endpoint,
      phase,
      types: [...types],
      labels: { ...labels },
      version: VERSION,
      handlers: Object.fromEntries(this.options.handlers()),
      hostname: hostname(),
      pid: process.pid,
      started_at: this.startedAt,
      ...this.options.load(),
      interval_ms: intervalMs,
      at: new Date().toISOString(),
    };
  }
}
