/**
 * Ceiling (b): what this MariaDB does with no tasker in the way. Multi-row INSERTs (autocommit,
 * so one commit per statement) of rows shaped like task_responses, from a few connections at
 * once, into a scratch table in a scratch database. Rows/s = rows inserted / wall time.
 */
import type { Connection } from 'mysql2/promise';
import { startCpuMeter, servicePids, type CpuShare } from '../lib/cpu-meter';
import { createDatabase, dbName, dropDatabase, mysqlRoot } from '../lib/run-resources';
import { rate } from '../lib/stats';

export interface MariaDbCeilingOptions {
  durationMs: number;
  rowsPerStatement: number;
  connections: number;
  progress: (line: string) => void;
}

export interface MariaDbCeiling {
  rows: number;
  statements: number;
  rows_per_s: number;
  statements_per_s: number;
  rows_per_statement: number;
  connections: number;
  elapsed_ms: number;
  cpu: Record<string, CpuShare>;
}

// task_responses as migrations/20261122000002 creates it (without the foreign key)
const TABLE = `CREATE TABLE scratch_responses (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  task_id BIGINT UNSIGNED NOT NULL,
  endpoint VARCHAR(64) COLLATE utf8mb4_nopad_bin NOT NULL,
  expected TINYINT(1) NOT NULL,
  status VARCHAR(16) NOT NULL,
  errnr INT NULL,
  errmsg TEXT NULL,
  payload LONGTEXT NULL,
  progress TEXT NULL,
  attempt INT UNSIGNED NOT NULL DEFAULT 0,
  agent TEXT NULL,
  start_time DATETIME(3) NULL,
  last_event_at DATETIME(3) NULL,
  finished_at DATETIME(3) NULL,
  last_modified_time DATETIME(3) NOT NULL,
  UNIQUE KEY scratch_task_endpoint (task_id, endpoint)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`;

const COLUMNS =
  'task_id, endpoint, expected, status, errnr, errmsg, payload, progress, attempt, agent, ' +
  'start_time, last_event_at, finished_at, last_modified_time';

export async function mariadbCeiling(options: MariaDbCeilingOptions): Promise<MariaDbCeiling> {
  const name = dbName('ceil');
  await createDatabase(name);
  const conns: Connection[] = [];
  try {
    for (let i = 0; i < options.connections; i += 1) conns.push(await mysqlRoot(name));
    await (conns[0] as Connection).query(TABLE);
    const agent = JSON.stringify({ hostname: 'bench', pid: 1, version: '0.1.0' });
    let nextTask = 1;
    let rows = 0;
    let statements = 0;
    const meter = startCpuMeter({ mariadb: servicePids().mariadb ?? [] });
    const started = performance.now();
    const stopAt = started + options.durationMs;
    let nextReport = started + 1000;
    const worker = async (conn: Connection): Promise<void> => {
      while (performance.now() < stopAt) {
        // one statement: `rowsPerStatement / 10` tasks × 10 endpoints
        const values: unknown[][] = [];
        const now = new Date();
        while (values.length < options.rowsPerStatement) {
          const taskId = nextTask;
          nextTask += 1;
          for (let e = 1; e <= 10 && values.length < options.rowsPerStatement; e += 1) {
            values.push([
              taskId,
              `e${e}`,
              1,
              'DONE',
              0,
              null,
              '{"ok":true}',
              null,
              1,
              agent,
              now,
              now,
              now,
              now,
            ]);
          }
        }
        await conn.query(`INSERT INTO scratch_responses (${COLUMNS}) VALUES ?`, [values]);
        rows += values.length;
        statements += 1;
        if (performance.now() >= nextReport) {
          nextReport += 1000;
          options.progress(`  mariadb ceiling: ${rows} rows`);
        }
      }
    };
    await Promise.all(conns.map((conn) => worker(conn)));
    const wall = performance.now() - started;
    const cpu = meter.stop();
    return {
      rows,
      statements,
      rows_per_s: rate(rows, wall),
      statements_per_s: rate(statements, wall),
      rows_per_statement: options.rowsPerStatement,
      connections: options.connections,
      elapsed_ms: Math.round(wall),
      cpu,
    };
  } finally {
    for (const conn of conns) await conn.end().catch(() => undefined);
    await dropDatabase(name);
  }
}
