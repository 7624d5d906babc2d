/**
 * The embedded engine: one SQLite file through better-sqlite3, for a single machine. What SQLite
 * needs beyond knex's defaults is settled here: the file's directory (src/config/urls.ts says
 * which file a url names), the connection's pragmas, and reading timestamps back as Dates (knex
 * stores Date bindings in SQLite as epoch milliseconds).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { DatabaseConfig } from '../config/types';
import { sqliteFile } from '../config/urls';

/**
 * Make the directory the SQLite file goes in (the file itself comes with the first connection);
 * returns the file.
 */
export function ensureSqliteDirectory(url: string): string {
  const file = sqliteFile(url);
  mkdirSync(path.dirname(file), { recursive: true });
  return file;
}

/**
 * Every DATETIME column of the schema (migrations/), by name. SQLite hands them back as numbers;
 * the store expects Dates, as mysql2 gives them. A test checks this list against the schema.
 */
export const TIMESTAMP_COLUMNS: ReadonlySet<string> = new Set([
  'created_at',
  'sent_at',
  'deliver_by',
  'sweep_at',
  'finished_at',
  'updated_at',
  'next_attempt_at',
  'start_time',
  'last_event_at',
  'last_heard_at',
  'last_modified_time',
  'cancel_requested_at',
  'recorded_at',
  'started_at',
  'first_seen_at',
  'last_seen_at',
  'offline_at',
  'stopped_at',
  'not_before',
  'start_at',
  'end_at',
  'next_run_at',
  'last_run_at',
  'backoff_applied_at',
]);

function reviveTimestamps(row: unknown): void {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) return;
  const record = row as Record<string, unknown>;
  for (const [key, value] of Object.entries(record)) {
    if (typeof value === 'number' && TIMESTAMP_COLUMNS.has(key)) record[key] = new Date(value);
  }
}

interface SqliteConnection {
  pragma(source: string): unknown;
}

/**
 * Per connection: WAL, so a reader in another process (the sqlite3 shell, `tasker migrate
 * --status`) neither blocks nor is blocked by the writer; foreign keys, which SQLite leaves off
 * by default, for the ON DELETE CASCADE of responses and outbox rows; a busy timeout, so a lock
 * another process holds is waited for rather than failing at once (better-sqlite3 happens to
 * default to both of these; spelled out so no driver default is relied on); and
 * synchronous=NORMAL, which in WAL mode still never corrupts the file but may lose the last
 * commits on power loss, in exchange for no fsync on every commit: fair for a single-machine
 * mode. The busy wait blocks the event loop (better-sqlite3 is synchronous), so it is for the
 * rare other process, not for contention inside this one.
 */
function applyPragmas(
  conn: SqliteConnection,
  done: (err: Error | null, conn: SqliteConnection) => void,
): void {
  try {
    conn.pragma('journal_mode = WAL');
    conn.pragma('foreign_keys = ON');
    conn.pragma('busy_timeout = 5000');
    conn.pragma('synchronous = NORMAL');
    done(null, conn);
  } catch (err) {
    done(err as Error, conn);
  }
}

/**
 * knex settings for a SQLite file, whose directory is made here if missing. One connection:
 * SQLite has one writer anyway, and with one connection knex runs one transaction at a time,
 * which is why the store takes no row locks here.
 */
export function sqliteKnexConfig(config: DatabaseConfig): Knex.Config {
  return {
    client: 'better-sqlite3',
    connection: { filename: ensureSqliteDirectory(config.url) },
    useNullAsDefault: true,
    pool: { min: 1, max: 1, afterCreate: applyPragmas },
    acquireConnectionTimeout: config.acquireTimeoutMs,
    postProcessResponse: (result: unknown) => {
      if (Array.isArray(result)) result.forEach(reviveTimestamps);
      else reviveTimestamps(result);
      return result;
    },
  };
}
