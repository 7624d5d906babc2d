/**
 * Figures for the metrics, read when Prometheus scrapes: one small query each, on indexes or on
 * tables that stay small (the outbox holds what the broker has not confirmed, the registry one
 * row per endpoint).
 */
import type { Db } from './db';

export interface OutboxStats {
  depth: number;
  /** when the oldest row was made, or became due (a wave's pause); null when empty */
  oldest: Date | null;
}

export interface EndpointCounts {
  online: number;
  offline: number;
  stopped: number;
}

/** MIN() of a DATETIME: a Date from mysql2, epoch milliseconds from SQLite. */
function toDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  const date = new Date(typeof value === 'string' && !/^\d+$/.test(value) ? value : Number(value));
  return Number.isNaN(date.getTime()) ? null : date;
}

export async function outboxStats(db: Db): Promise<OutboxStats> {
  const [row] = (await db('outbox').select(
    db.raw('COUNT(*) AS depth'),
    db.raw('MIN(created_at) AS oldest'),
  )) as Array<{ depth: unknown; oldest: unknown }>;
  return { depth: Number(row?.depth ?? 0), oldest: toDate(row?.oldest) };
}

/** The registry's endpoints by status, by the server's clock (as GET /endpoints says them). */
export async function endpointCounts(db: Db, now = new Date()): Promise<EndpointCounts> {
  const [row] = (await db('endpoints').select(
    db.raw('SUM(CASE WHEN stopped_at IS NOT NULL THEN 1 ELSE 0 END) AS stopped'),
    db.raw('SUM(CASE WHEN stopped_at IS NULL AND offline_at > ? THEN 1 ELSE 0 END) AS online', [
      now,
    ]),
    db.raw('COUNT(*) AS total'),
  )) as Array<{ stopped: unknown; online: unknown; total: unknown }>;
  const stopped = Number(row?.stopped ?? 0);
  const online = Number(row?.online ?? 0);
  return { online, stopped, offline: Number(row?.total ?? 0) - stopped - online };
}
