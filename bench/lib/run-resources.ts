/**
 * What a run needs and leaves behind: where the services and the bench's own scripts are, unique
 * names for what a run creates, and the scratch resources (databases, exchange/queue prefixes,
 * directories) it must remove again.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { ROOT } from '../../test/support/child-processes';
import { deleteBrokerNames } from '../../test/support/services';

export const AGENTS_HOST = join(ROOT, 'dist', 'bench', 'agents.js');
/** the source directory: noop.js is plain JavaScript and is not compiled */
export const HANDLERS_DIR = join(ROOT, 'bench', 'handlers');
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

/**
 * The node flags the shipped unit starts an agent with (deploy/tasker-agent@.service), so the
 * bench measures agents as they are deployed.
 */
export function deployedAgentNodeArgs(): string[] {
  const unit = readFileSync(join(ROOT, 'deploy', 'tasker-agent@.service'), 'utf8');
  const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1];
  const words = (execStart ?? '').split(/\s+/);
  const script = words.findIndex((word) => word.endsWith('main.js'));
  if (script < 1) throw new Error('deploy/tasker-agent@.service: no ExecStart=node … main.js');
  return words.slice(1, script);
}

/** The bench's services; the tests read TEST_MYSQL_URL and TEST_AMQP_URL instead. */
export const MYSQL_ROOT = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const AMQP_URL = process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** One run's name stem: every database starts with `tasker_<stem>`, every exchange/queue with `<stem>`. */
export const RUN_ID = `bench${randomBytes(3).toString('hex')}`;

export function dbName(part: string): string {
  return `tasker_${RUN_ID}_${part}`;
}

export function prefixFor(part: string): string {
  return `${RUN_ID}${part}`;
}

export function mysqlUrl(database: string): string {
  return `${MYSQL_ROOT}/${database}`;
}

/** A connection to the server without a default database. */
export async function mysqlRoot(database?: string): Promise<mysql.Connection> {
  const url = new URL(MYSQL_ROOT);
  return mysql.createConnection({
    host: url.hostname,
    port: url.port === '' ? 3306 : Number(url.port),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    ...(database === undefined ? {} : { database }),
    supportBigNumbers: true,
  });
}

const createdDbs = new Set<string>();
const scratchDirs = new Set<string>();

/** A new directory under the system temp directory, removed by cleanupRun at the latest. */
export function scratchDir(stem: string): string {
  const dir = mkdtempSync(join(tmpdir(), stem));
  scratchDirs.add(dir);
  return dir;
}

export function removeScratchDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  scratchDirs.delete(dir);
}

export async function createDatabase(name: string): Promise<void> {
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`);
  const conn = await mysqlRoot();
  try {
    createdDbs.add(name);
    await conn.query(
      `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
  } finally {
    await conn.end();
  }
}

export async function dropDatabase(name: string): Promise<void> {
  const conn = await mysqlRoot();
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
    createdDbs.delete(name);
  } finally {
    await conn.end();
  }
}

/** Remove everything this run created: its databases, broker names and scratch directories. */
export async function cleanupRun(log: (line: string) => void): Promise<void> {
  for (const dir of [...scratchDirs]) removeScratchDir(dir);
  for (const name of [...createdDbs]) {
    try {
      await dropDatabase(name);
    } catch (err) {
      log(`could not drop database ${name}: ${String(err)}`);
    }
  }
  try {
    const removed = await deleteBrokerNames(RUN_ID, AMQP_URL);
    if (removed > 0) log(`deleted ${removed} queues/exchanges named ${RUN_ID}*`);
  } catch (err) {
    log(`could not delete queues/exchanges ${RUN_ID}*: ${String(err)}`);
  }
}
