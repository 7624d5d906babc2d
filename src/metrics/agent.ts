/**
 * An agent's own Prometheus metrics, served when `agent.metrics_listen` is set: how long its
 * handlers run, how many run now, and the runs that are retries (a delivery after an earlier
 * run of the same task on this endpoint did not report). A registry of its own, like the
 * server's.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const HANDLER_SECONDS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600];

export class AgentMetrics {
  readonly registry = new Registry();

  private readonly handlerSeconds = new Histogram({
    name: 'tasker_agent_handler_duration_seconds',
    help: "Handler runs by task type and the run's status, from start to outcome, in seconds",
    labelNames: ['type', 'status'] as const,
    buckets: HANDLER_SECONDS,
    registers: [this.registry],
  });

  private readonly retries = new Counter({
    name: 'tasker_agent_retries_total',
    help: 'Runs of a task this endpoint had started before (attempt 2 and up), by task type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  constructor(options: { running: () => number; defaultMetrics?: boolean }) {
    const { running } = options;
    new Gauge({
      name: 'tasker_agent_running',
      help: 'Handlers running now',
      registers: [this.registry],
      collect() {
        this.set(running());
      },
    });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  handlerRan(type: string, status: string, seconds: number): void {
    this.handlerSeconds.observe({ type, status }, seconds);
  }

  runStarted(type: string, attempt: number): void {
    if (attempt > 1) this.retries.inc({ type });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
