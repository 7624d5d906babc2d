/**
 * Where the server's parts move the metrics (src/metrics): committed changes counted into
 * tasks finished and responses by status, publishes timed to their confirm, and the figures
 * read from the database when Prometheus scrapes, kept a few seconds.
 */
import { isTerminalTask } from '../domain';
import { CachedProbe, secondsSince, type DatabaseSnapshot, type ServerMetrics } from '../metrics';
import { endpointCounts, outboxStats, type Db, type Publishers, type TaskChange } from '../store';

/** scrapes within this share one read of the database */
const PROBE_TTL_MS = 5000;
/** a scrape waits no longer for the database (Prometheus's own timeout is 10 s by default) */
const PROBE_TIMEOUT_MS = 1000;

/**
 * Count what committed changes did: a task that became final (a late fact that changes which
 * final state is not counted again; a retried task that ends again is), and each response row
 * that moved to another status (the rows a task is written with, PENDING, are not).
 */
export function countChanges(metrics: ServerMetrics, changes: readonly TaskChange[]): void {
  for (const { task, rows, statusBefore, rowStatusBefore } of changes) {
    if (
      statusBefore !== undefined &&
      !isTerminalTask(statusBefore) &&
      isTerminalTask(task.status)
    ) {
      metrics.taskFinished(task.type, task.status);
    }
    for (const row of rows) {
      if (rowStatusBefore?.get(row.endpoint) !== row.status) {
        metrics.responseMoved(task.type, row.status);
      }
    }
  }
}

/** The same publishers, each publish timed from its start to the broker's confirm. */
export function timedPublishers(publish: Publishers, metrics: ServerMetrics): Publishers {
  const timed = async <T>(kind: string, send: () => Promise<T>): Promise<T> => {
    const started = process.hrtime.bigint();
    try {
      const result = await send();
      metrics.published(kind, 'confirmed', secondsSince(started));
      return result;
    } catch (err) {
      metrics.published(kind, 'failed', secondsSince(started));
      throw err;
    }
  };
  return {
    task: (task, body, deliverBy) => timed('task', () => publish.task(task, body, deliverBy)),
    cancel: (task, body) => timed('cancel', () => publish.cancel(task, body)),
  };
}

/** A scrape: the figures of the database (read or kept), then every metric as text. */
export function metricsScraper(metrics: ServerMetrics, db: Db): () => Promise<string> {
  const probe = databaseProbe(db);
  return async () => {
    metrics.database(await probe.get());
    return metrics.render();
  };
}

/** What a scrape reads from the database: the outbox and the registry, one query each. */
export function databaseProbe(db: Db): CachedProbe<DatabaseSnapshot> {
  return new CachedProbe(
    async () => {
      const now = new Date();
      const [outbox, endpoints] = await Promise.all([outboxStats(db), endpointCounts(db, now)]);
      const ageMs = outbox.oldest === null ? 0 : now.getTime() - outbox.oldest.getTime();
      return {
        outboxDepth: outbox.depth,
        outboxOldestAgeSeconds: Math.max(0, ageMs) / 1000,
        endpoints,
      };
    },
    { ttlMs: PROBE_TTL_MS, timeoutMs: PROBE_TIMEOUT_MS },
  );
}
