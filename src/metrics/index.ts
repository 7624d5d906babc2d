/**
 * The server's Prometheus metrics: one registry per server process (never prom-client's global
 * one, so that several servers can run in one process, as the tests do), the metrics it holds,
 * and the few calls the server's parts make to move them. What the database knows (the outbox,
 * the registry of endpoints) is read when scraped, through a probe (probe.ts). Every metric and
 * its labels are listed in docs/metrics.md.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { AgentMetrics } from './agent';
export { CachedProbe } from './probe';

/** What a scrape reads from the database, or null when it did not answer. */
export interface DatabaseSnapshot {
  outboxDepth: number;
  /** seconds since the oldest outbox row was made or became due; 0 when the outbox is empty */
  outboxOldestAgeSeconds: number;
  endpoints: { online: number; offline: number; stopped: number };
}

/** Seconds since `started`, a reading of process.hrtime.bigint(): for timing what metrics observe. */
export function secondsSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** The durable steps a request waits for, in a row, to accept a task and answer it SENT. */
export type AcceptStep = 'write' | 'publish' | 'mark';

const SECONDS_FAST = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const SECONDS_SLOW = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const HTTP_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const BATCH_SIZES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

export class ServerMetrics {
  readonly registry = new Registry();
  /** the gauges read from the database, rendered only when it answered */
  private readonly fromDatabase = new Registry();
  private databaseAnswered = false;

  private readonly tasksCreated = new Counter({
    name: 'tasker_tasks_created_total',
    help: 'Tasks this server accepted, by task type (a client retrying one it already has is not counted)',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  private readonly tasksFinished = new Counter({
    name: 'tasker_tasks_finished_total',
    help: 'Tasks this server saw become final, by task type and final status',
    labelNames: ['type', 'status'] as const,
    registers: [this.registry],
  });

  private readonly responses = new Counter({
    name: 'tasker_responses_total',
    help: "Endpoints' responses this server moved to a status, by task type and that status",
    labelNames: ['type', 'status'] as const,
    registers: [this.registry],
  });

  private readonly publishSeconds = new Histogram({
    name: 'tasker_publish_confirm_seconds',
    help: "From publishing a task or cancel to the broker's confirm (or the failure), in seconds",
    labelNames: ['kind', 'outcome'] as const,
    buckets: SECONDS_FAST,
    registers: [this.registry],
  });

  private readonly acceptSeconds = new Histogram({
    name: 'tasker_task_accept_step_seconds',
    help: "The durable steps of accepting a task, in a row: write (its commit), publish (to the broker's confirm), mark (SENT committed)",
    labelNames: ['step'] as const,
    buckets: SECONDS_FAST,
    registers: [this.registry],
  });

  /** each step's series, looked up once rather than on every POST */
  private readonly acceptStepSeries = {
    write: this.acceptSeconds.labels('write'),
    publish: this.acceptSeconds.labels('publish'),
    mark: this.acceptSeconds.labels('mark'),
  };

  private readonly recorderLag = new Histogram({
    name: 'tasker_recorder_lag_seconds',
    help: "Age of a result event when the recorder committed it (the agent's clock to the server's)",
    buckets: SECONDS_SLOW,
    registers: [this.registry],
  });

  private readonly recorderBatch = new Histogram({
    name: 'tasker_recorder_batch_messages',
    help: 'Messages from agents (result events and heartbeats) the recorder took in one batch',
    buckets: BATCH_SIZES,
    registers: [this.registry],
  });

  private readonly recorderEvents = new Counter({
    name: 'tasker_recorder_events_total',
    help: 'Result events the recorder committed: applied, ignored (stale or repeated), orphaned (unknown task)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  private readonly httpSeconds = new Histogram({
    name: 'tasker_http_request_duration_seconds',
    help: "HTTP requests by method, route pattern and status, until the answer's end, in seconds",
    labelNames: ['method', 'route', 'status'] as const,
    buckets: HTTP_SECONDS,
    registers: [this.registry],
  });

  private readonly databaseUp = new Gauge({
    name: 'tasker_database_up',
    help: "1 when the database answered this scrape's queries (or a recent one's), else 0",
    registers: [this.registry],
  });

  private readonly outboxDepth = new Gauge({
    name: 'tasker_outbox_depth',
    help: 'Rows in the outbox: tasks, waves, rounds and cancels the broker has not confirmed',
    registers: [this.fromDatabase],
  });

  private readonly outboxOldest = new Gauge({
    name: 'tasker_outbox_oldest_age_seconds',
    help: 'Seconds since the oldest outbox row was made or became due; 0 when empty',
    registers: [this.fromDatabase],
  });

  private readonly endpoints = new Gauge({
    name: 'tasker_endpoints',
    help: 'Endpoints in the registry, by status (online, offline, stopped)',
    labelNames: ['status'] as const,
    registers: [this.fromDatabase],
  });

  constructor(options: { watchers?: () => number; defaultMetrics?: boolean } = {}) {
    const { watchers } = options;
    if (watchers !== undefined) {
      new Gauge({
        name: 'tasker_watchers',
        help: 'Clients of this server waiting for news of tasks (long polls and event streams)',
        registers: [this.registry],
        collect() {
          this.set(watchers());
        },
      });
    }
    // the process's CPU, memory, event loop and garbage collection, with their usual names
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  taskCreated(type: string): void {
    this.tasksCreated.inc({ type });
  }

  taskFinished(type: string, status: string): void {
    this.tasksFinished.inc({ type, status });
  }

  responseMoved(type: string, status: string): void {
    this.responses.inc({ type, status });
  }

  published(kind: string, outcome: 'confirmed' | 'failed', seconds: number): void {
    this.publishSeconds.observe({ kind, outcome }, seconds);
  }

  /** One durable step of accepting a task, as the request waited for it. */
  acceptStep(step: AcceptStep, seconds: number): void {
    this.acceptStepSeries[step].observe(seconds);
  }

  recorderBatchTaken(messages: number): void {
    this.recorderBatch.observe(messages);
  }

  /** A committed batch: how many events did what, and how old each applied event was. */
  eventsCommitted(
    outcome: { applied: number; ignored: number; orphaned: number },
    ageSeconds: readonly number[],
  ): void {
    for (const [name, count] of Object.entries(outcome)) {
      if (count > 0) this.recorderEvents.inc({ outcome: name }, count);
    }
    for (const age of ageSeconds) this.recorderLag.observe(Math.max(0, age));
  }

  httpRequest(method: string, route: string, status: number, seconds: number): void {
    this.httpSeconds.observe({ method, route, status: String(status) }, seconds);
  }

  /**
   * Set the gauges read from the database; null says it did not answer, and they are left out
   * of the scrape (a last value would pass for a current one, a 0 for an empty outbox).
   */
  database(snapshot: DatabaseSnapshot | null): void {
    this.databaseAnswered = snapshot !== null;
    this.databaseUp.set(snapshot === null ? 0 : 1);
    if (snapshot === null) return;
    this.outboxDepth.set(snapshot.outboxDepth);
    this.outboxOldest.set(snapshot.outboxOldestAgeSeconds);
    for (const [status, count] of Object.entries(snapshot.endpoints)) {
      this.endpoints.set({ status }, count);
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition format. */
  async render(): Promise<string> {
    const own = await this.registry.metrics();
    return this.databaseAnswered ? `${own}\n${await this.fromDatabase.metrics()}` : own;
  }
}
