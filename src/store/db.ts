/**
 * The knex handle: MySQL/MariaDB through mysql2 (UTC, utf8mb4), or a SQLite file through
 * better-sqlite3 for the embedded single-machine mode. Also the one place that decides which
 * driver errors mean "database unavailable" (503) and which are worth a retry.
 */
import knex, { type Knex } from 'knex';
import { UnavailableError } from '../domain';
import type { DatabaseConfig } from '../config/types';
import { silentLogger, type Logger } from '../log';
import { ensureSqliteDirectory, sqliteKnexConfig } from './sqlite';

export type Db = Knex;

interface MysqlConnection {
  query(sql: string, callback: (err: Error | null) => void): void;
}

interface MysqlConnectionOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export function parseMysqlUrl(url: string): MysqlConnectionOptions {
  const parsed = new URL(url);
  return {
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port === '' ? 3306 : Number(parsed.port),
    user: decodeURIComponent(parsed.username || 'root'),
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')),
  };
}

export type Engine = 'mysql' | 'sqlite';

/** The engine a `database.url` names: `mysql://…`, or `sqlite:PATH` / `sqlite:///absolute`. */
export function databaseEngine(url: string): Engine {
  if (url.startsWith('mysql://')) return 'mysql';
  if (url.startsWith('sqlite:')) return 'sqlite';
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(url)?.[0] ?? '(none)';
  throw new Error(`database url scheme ${scheme} is not supported: use mysql:// or sqlite:`);
}

/** The engine behind a knex handle or transaction. */
export function engineOf(db: Knex): Engine {
  return db.client.config.client === 'better-sqlite3' ? 'sqlite' : 'mysql';
}

/**
 * Lock the selected rows until the transaction ends: FOR UPDATE [SKIP LOCKED] on MySQL. SQLite
 * has no row locks and needs none here: its one connection runs one transaction at a time.
 */
export function forUpdate<Q extends Knex.QueryBuilder>(
  trx: Knex,
  query: Q,
  options: { skipLocked?: boolean } = {},
): Q {
  if (engineOf(trx) === 'sqlite') return query;
  const locked = query.forUpdate();
  return (options.skipLocked === true ? locked.skipLocked() : locked) as Q;
}

/** per pool (its config object, which its transactions share): does INSERT … RETURNING work */
const returningSupport = new WeakMap<object, Promise<boolean>>();

/**
 * Whether this database answers INSERT … RETURNING: SQLite and MariaDB 10.5 and later do, MySQL
 * does not. Asked once per pool.
 */
export function supportsReturning(db: Knex): Promise<boolean> {
  if (engineOf(db) === 'sqlite') return Promise.resolve(true);
  const key = db.client.config as object;
  let known = returningSupport.get(key);
  if (known === undefined) {
    known = db
      .raw('SELECT VERSION() AS version')
      .then(([rows]: [Array<{ version: string }>]) => mariadbWithReturning(rows[0]?.version ?? ''));
    // a failed probe is asked again next time
    known.catch(() => returningSupport.delete(key));
    returningSupport.set(key, known);
  }
  return known;
}

/**
 * Take this answer instead of asking the database: MySQL's way on MariaDB, for a test of the
 * path MySQL takes.
 */
export function assumeReturning(db: Knex, supported: boolean): void {
  returningSupport.set(db.client.config as object, Promise.resolve(supported));
}

/** "10.11.19-MariaDB-0+deb12u1" → true; MySQL's "8.0.36" or MariaDB before 10.5 → false */
export function mariadbWithReturning(version: string): boolean {
  const match = /^(\d+)\.(\d+)\..*mariadb/i.exec(version);
  if (match === null) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 10 || (major === 10 && minor >= 5);
}

/**
 * Insert rows and read back these columns of each, in one round trip: INSERT … RETURNING, where
 * `supportsReturning` said the database has it.
 */
export async function insertReturning<T extends object>(
  trx: Knex,
  table: string,
  rows: readonly object[],
  columns: readonly string[],
): Promise<T[]> {
  if (engineOf(trx) === 'sqlite') {
    return (await trx(table)
      .insert(rows)
      .returning([...columns])) as T[];
  }
  const { sql, bindings } = trx(table).insert(rows).toSQL();
  const [returned] = (await trx.raw(
    `${sql} RETURNING ${columns.map((column) => `\`${column}\``).join(', ')}`,
    bindings,
  )) as [T[]];
  return returned;
}

function knexLog(log: Logger): Knex.Config['log'] {
  // knex prints pool and driver trouble with console.log; keep it in our structured log
  return {
    warn: (message: unknown) => log.debug('knex warning', { message: String(message) }),
    error: (message: unknown) => log.warn('knex error', { message: String(message) }),
    deprecate: (message: unknown) => log.debug('knex deprecation', { message: String(message) }),
    debug: (message: unknown) => log.debug('knex debug', { message: String(message) }),
  };
}

export function createDb(
  config: DatabaseConfig,
  overrides: { database?: string; log?: Logger } = {},
): Db {
  const log = overrides.log ?? silentLogger;
  if (databaseEngine(config.url) === 'sqlite') {
    return knex({ log: knexLog(log), ...sqliteKnexConfig(config) });
  }
  const conn = parseMysqlUrl(config.url);
  return knex({
    log: knexLog(log),
    client: 'mysql2',
    // an error names the statement with its placeholders, not the values (payloads, messages)
    compileSqlOnError: false,
    connection: {
      ...conn,
      database: overrides.database ?? conn.database,
      charset: 'utf8mb4',
      timezone: 'Z',
      dateStrings: false,
      supportBigNumbers: true,
      bigNumberStrings: false,
      connectTimeout: config.acquireTimeoutMs,
    },
    pool: {
      min: config.poolMin,
      max: config.poolMax,
      // READ COMMITTED for the whole session rather than a SET before every transaction: no gap
      // locks, so claiming rows with SKIP LOCKED does not deadlock across servers
      afterCreate: (conn: MysqlConnection, done: (err: Error | null, conn: unknown) => void) => {
        conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', (err) =>
          done(err, conn),
        );
      },
    },
    acquireConnectionTimeout: config.acquireTimeoutMs,
  });
}

/**
 * Create the configured database if it is missing (needs CREATE privilege); for SQLite, the
 * file's directory (the file itself comes with the first connection).
 */
export async function ensureDatabase(config: DatabaseConfig): Promise<void> {
  if (databaseEngine(config.url) === 'sqlite') {
    ensureSqliteDirectory(config.url);
    return;
  }
  const { database } = parseMysqlUrl(config.url);
  if (!/^[A-Za-z0-9_$]{1,64}$/.test(database)) {
    throw new Error(`database name ${JSON.stringify(database)} is not a plain identifier`);
  }
  const server = createDb({ ...config, poolMin: 0, poolMax: 1 }, { database: '' });
  try {
    await server.raw(
      `CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
  } finally {
    await server.destroy();
  }
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_SERVER_SHUTDOWN',
  'ER_CON_COUNT_ERROR',
  'ER_ACCESS_DENIED_ERROR',
  'ER_BAD_DB_ERROR',
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  // SQLite: the file cannot be opened, read or written, or stayed locked through every retry
  'SQLITE_CANTOPEN',
  'SQLITE_IOERR',
  'SQLITE_READONLY',
  'SQLITE_FULL',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
]);

const RETRYABLE_CODES = new Set([
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
]);

/**
 * The driver's error code. better-sqlite3 reports SQLite's extended codes
 * (SQLITE_IOERR_SHORT_READ, SQLITE_BUSY_SNAPSHOT); with `family` they are cut to the primary
 * code (SQLITE_IOERR, SQLITE_BUSY).
 */
function errorCode(err: unknown, family = false): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return undefined;
  return family && code.startsWith('SQLITE_') ? /^SQLITE_[A-Z]+/.exec(code)?.[0] : code;
}

/** Deadlock or lock wait (SQLite: the file busy): the transaction can simply run again. */
export function isRetryableTxnError(err: unknown): boolean {
  return RETRYABLE_CODES.has(errorCode(err, true) ?? '');
}

export function isDuplicateKey(err: unknown): boolean {
  const code = errorCode(err);
  return (
    code === 'ER_DUP_ENTRY' ||
    code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    code === 'SQLITE_CONSTRAINT_PRIMARYKEY'
  );
}

/**
 * The database refused the values themselves (too long, out of range, not a valid date): the
 * same rows would fail again however often they were retried. Lock, connection and schema
 * errors are not among these.
 */
const REFUSED_DATA_CODES = new Set([
  'ER_DATA_TOO_LONG',
  'ER_WARN_DATA_OUT_OF_RANGE',
  'ER_DATA_OUT_OF_RANGE',
  'ER_TRUNCATED_WRONG_VALUE',
  'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD',
  'ER_BAD_NULL_ERROR',
  'ER_INVALID_JSON_TEXT',
  'SQLITE_TOOBIG',
  'SQLITE_MISMATCH',
]);

export function isRefusedData(err: unknown): boolean {
  return REFUSED_DATA_CODES.has(errorCode(driverError(err)) ?? '');
}

/** The driver's error behind the 503-mapped one that `asStoreError` makes. */
function driverError(err: unknown): unknown {
  return err instanceof UnavailableError ? err.cause : err;
}

/**
 * The database can take no write just now, or not in this schema (a table missing, a right
 * revoked, read-only, full): every write would fail alike, whatever it held.
 */
const EVERY_WRITE_CODES = new Set([
  'ER_NO_SUCH_TABLE',
  'ER_BAD_FIELD_ERROR',
  'ER_TABLEACCESS_DENIED_ERROR',
  'ER_COLUMNACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_OPTION_PREVENTS_STATEMENT',
  'ER_READ_ONLY_MODE',
  'ER_CANT_LOCK',
  'ER_LOCK_TABLE_FULL',
  'ER_RECORD_FILE_FULL',
  'ER_DISK_FULL',
  'ER_OUT_OF_RESOURCES',
  'ER_OUTOFMEMORY',
  'ER_QUERY_INTERRUPTED',
  'ER_STATEMENT_TIMEOUT',
]);

export function failsEveryWrite(err: unknown): boolean {
  const cause = driverError(err);
  return (
    isDatabaseAway(err) ||
    isRetryableTxnError(cause) ||
    EVERY_WRITE_CODES.has(errorCode(cause) ?? '')
  );
}

/**
 * Not reachable or not answering in time, from the driver's error or the store's 503-mapped
 * one; not a statement over max_allowed_packet, which is its own size although the server
 * drops the connection for it.
 */
export function isDatabaseAway(err: unknown): boolean {
  const cause = driverError(err);
  if (errorCode(cause) === 'ER_NET_PACKET_TOO_LARGE') return false;
  return isDatabaseUnavailable(cause);
}

export function isDatabaseUnavailable(err: unknown): boolean {
  if (err instanceof knex.KnexTimeoutError) return true;
  if (err instanceof Error && err.name === 'KnexTimeoutError') return true;
  if (UNAVAILABLE_CODES.has(errorCode(err, true) ?? '')) return true;
  return (err as { fatal?: unknown } | null)?.fatal === true;
}

/** Rethrow driver failures that mean "the database is down" as 503-mapped errors. */
export function asStoreError(err: unknown): unknown {
  if (isDatabaseUnavailable(err)) {
    return new UnavailableError('database_unavailable', 'the database is unavailable', err);
  }
  return err;
}

/** Whether the database answers a query within `timeoutMs`. */
export async function pingDatabase(db: Db, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const answered = db.raw('SELECT 1').then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([answered, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Run `work` in a transaction, again on deadlock or lock-wait timeout. */
export async function withTransaction<T>(
  db: Db,
  work: (trx: Knex.Transaction) => Promise<T>,
  attempts = 5,
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await db.transaction(work);
    } catch (err) {
      if (attempt >= attempts || !isRetryableTxnError(err)) throw asStoreError(err);
      await new Promise((resolve) => setTimeout(resolve, 5 * attempt + Math.random() * 20));
    }
  }
}
