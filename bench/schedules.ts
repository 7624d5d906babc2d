/**
 * The scheduler's cost: 10,000 schedules due every minute (`--schedules N` to change it) on a
 * fresh MariaDB database, fired by one scheduler and then by two at once, as the server's loop
 * does it (`fireDueSchedules`, 100 schedules a transaction, each writing its task, rows and
 * outbox row). Prints how long one minute's runs take to make, in tasks per second and as a
 * share of the minute, and the SQL statements a run costs. No broker: the tasks stay in the
 * outbox. Run with `npm run bench:schedules`.
 */
import type { TaskTypeConfig } from '../src/config';
import { createDb, fireDueSchedules, migrateLatest, type Db } from '../src/store';
import { createDatabase, dbName, dropDatabase, mysqlRoot, mysqlUrl } from './lib/run-resources';

const MINUTE_MS = 60_000;
const INSERT_CHUNK = 500;

const TYPES: Record<string, TaskTypeConfig> = {
  noop: {
    name: 'noop',
    waitForEndpointsTimeoutMs: 60_000,
    executionTimeoutMs: 60_000,
    maxDeliveries: 5,
    rollout: null,
    successThreshold: null,
    retry: null,
    priority: 0,
  },
};

function argument(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
}

/** `count` schedules every minute, all first due at `t0` plus a minute, each for 2 endpoints. */
async function insertSchedules(db: Db, count: number, t0: Date): Promise<void> {
  const rows = Array.from({ length: count }, (_, i) => ({
    name: `s${i}`,
    type: 'noop',
    payload: JSON.stringify({ n: i }),
    endpoints: JSON.stringify([`e${i % 50}`, `e${(i + 1) % 50}`]),
    selector: null,
    every_ms: MINUTE_MS,
    cron: null,
    timezone: 'UTC',
    start_at: null,
    end_at: null,
    catch_up: 'skip',
    paused: false,
    next_run_at: new Date(t0.getTime() + MINUTE_MS),
    last_run_at: null,
    last_error: null,
    created_at: t0,
    updated_at: t0,
  }));
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    await db('schedules').insert(rows.slice(i, i + INSERT_CHUNK));
  }
}

async function questions(): Promise<number> {
  const sql = await mysqlRoot();
  try {
    const [rows] = await sql.query("SHOW GLOBAL STATUS LIKE 'Questions'");
    return Number((rows as Array<{ Value: string }>)[0]?.Value ?? 0);
  } finally {
    await sql.end();
  }
}

/** Fire every schedule due at `now` with `schedulers` loops at once; the time it took. */
async function fireMinute(
  db: Db,
  now: Date,
  schedulers: number,
): Promise<{ ms: number; fired: number }> {
  const started = performance.now();
  let fired = 0;
  const loop = async (): Promise<void> => {
    for (;;) {
      const outcome = await fireDueSchedules(db, TYPES, { now, limit: 100 });
      fired += outcome.fired;
      if (outcome.schedules === 0) return;
    }
  };
  await Promise.all(Array.from({ length: schedulers }, loop));
  return { ms: performance.now() - started, fired };
}

async function main(): Promise<void> {
  const count = argument('--schedules', 10_000);
  const database = dbName('schedules');
  await createDatabase(database);
  const db = createDb({
    url: mysqlUrl(database),
    poolMin: 0,
    poolMax: 4,
    acquireTimeoutMs: 10_000,
    createDatabase: false,
  });
  try {
    await migrateLatest(db);
    const t0 = new Date(Date.UTC(2026, 11, 1, 10, 0, 0));
    await insertSchedules(db, count, t0);
    const lines: string[] = [];
    for (const [minute, schedulers] of [
      [1, 1],
      [2, 2],
    ] as const) {
      const before = await questions();
      const { ms, fired } = await fireMinute(
        db,
        new Date(t0.getTime() + minute * MINUTE_MS + 1000),
        schedulers,
      );
      const statements = (await questions()) - before;
      if (fired !== count)
        throw new Error(`minute ${minute}: ${fired} of ${count} schedules fired`);
      lines.push(
        `${count} schedules due, ${schedulers} scheduler${schedulers > 1 ? 's' : ''}: ` +
          `${(ms / 1000).toFixed(1)} s (${Math.round((fired / ms) * 1000)} tasks/s, ` +
          `${((ms / MINUTE_MS) * 100).toFixed(0)} % of the minute), ` +
          `${(statements / fired).toFixed(1)} SQL statements a run`,
      );
    }
    const [tasks] = (await db('tasks').count({ n: '*' })) as Array<{ n: number }>;
    if (Number(tasks?.n) !== 2 * count) throw new Error(`${tasks?.n} tasks, not ${2 * count}`);
    for (const line of lines) process.stdout.write(`${line}\n`);
  } finally {
    await db.destroy();
    await dropDatabase(database);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
