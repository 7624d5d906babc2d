/**
 * Phase 6: operating at scale.
 *
 * listing: a million tasks (two responses each) cloned in SQL from one posted through the API,
 * then each filter of GET /<type> timed through the server, and the query behind it EXPLAINed.
 *
 * heartbeats: endpoints beating every 15 s (10,000 → about 667 heartbeats a second) published to
 * the results exchange as agents publish them, while tasks run through real agents at a steady
 * rate. Measured: the server's and MariaDB's CPU per heartbeat, registry rows written, and the
 * tasks' POST → DONE latency with the heartbeats and without them.
 */
import * as amqp from 'amqplib';
import { brokerNames } from '../../src/broker';
import { loadConfig } from '../../src/config';
import { HEARTBEAT_VERSION, type Heartbeat } from '../../src/domain';
import { createDb, listTasksQuery, type TaskFilter } from '../../src/store';
import { sleep } from '../../test/support/waiting';
import { startCpuMeter, servicePids, type CpuShare } from '../lib/cpu-meter';
import { startDbMeter } from '../lib/db-meter';
import { endpointNames, keepAliveAgent, request, timedGets } from '../lib/http-load';
import { TYPE, startStack, type StackOptions } from '../lib/phase-stack';
import { AMQP_URL, mysqlUrl } from '../lib/run-resources';
import { latency, type Latency } from '../lib/stats';

export interface ListingOptions {
  tasks: number;
  gets: number;
  stack: StackOptions;
  progress: (line: string) => void;
}

export interface ListingQuery {
  name: string;
  path: string;
  rows: number;
  latency: Latency;
  /** EXPLAIN of the query behind it: the table, key and rows examined of each step */
  explain: string[];
}

export interface ListingPhase {
  tasks: number;
  responses: number;
  fill_ms: number;
  queries: ListingQuery[];
}

/** Columns of `table` other than id, for cloning a row. */
async function columnsOf(sql: StackSql, table: string): Promise<string[]> {
  const [rows] = await sql.query(
    'SELECT column_name AS c FROM information_schema.columns ' +
      'WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position',
    [table],
  );
  return (rows as Array<{ c: string }>).map((row) => row.c).filter((c) => c !== 'id');
}

type StackSql = Awaited<ReturnType<typeof startStack>>['sql'];

const STATUSES = ['DONE', 'DONE', 'DONE', 'FAILED', 'INCOMPLETE', 'CANCELLED', 'DONE', 'DONE'];

export async function listingPhase(options: ListingOptions): Promise<ListingPhase> {
  const { progress } = options;
  const stack = await startStack('listing', options.stack);
  const config = loadConfig({
    mode: 'test',
    env: {},
    flags: { 'database-url': mysqlUrl(stack.db) },
  });
  const db = createDb(config.database);
  try {
    // one real task, with its two response rows, as the template of every clone
    const agent = keepAliveAgent(1);
    const posted = await request(
      agent,
      `${stack.baseUrl}/${TYPE}`,
      'POST',
      JSON.stringify({ identifier: 'template', endpoints: ['e1', 'e2'], payload: {} }),
    );
    agent.destroy();
    if (posted.status !== 201) throw new Error(`POST template: ${posted.status} ${posted.body}`);
    progress(`listing: filling ${options.tasks.toLocaleString('en')} tasks in SQL`);
    const filled = performance.now();
    const taskColumns = await columnsOf(stack.sql, 'tasks');
    const templateId = (JSON.parse(posted.body) as { id: number }).id;
    // final tasks, a second apart, finished a second after their creation, nothing to sweep
    const created = `t.created_at - INTERVAL (${options.tasks} - s.seq) SECOND`;
    const override: Record<string, string> = {
      identifier: "CONCAT('bench-', LPAD(s.seq, 8, '0'))",
      status: `ELT(1 + s.seq % ${STATUSES.length}, ${STATUSES.map((s) => `'${s}'`).join(', ')})`,
      created_at: created,
      sent_at: created,
      finished_at: `${created} + INTERVAL 1 SECOND`,
      updated_at: `${created} + INTERVAL 1 SECOND`,
      sweep_at: 'NULL',
    };
    const responseColumns = await columnsOf(stack.sql, 'task_responses');
    const chunk = 100_000;
    for (let from = 1; from <= options.tasks; from += chunk) {
      const to = Math.min(options.tasks, from + chunk - 1);
      await stack.sql.query(
        `INSERT INTO tasks (${taskColumns.join(', ')}) ` +
          `SELECT ${taskColumns.map((c) => override[c] ?? `t.${c}`).join(', ')} ` +
          `FROM tasks t JOIN seq_${from}_to_${to} s WHERE t.type = ? AND t.identifier = 'template'`,
        [TYPE],
      );
      const [[ids]] = (await stack.sql.query(
        'SELECT MIN(id) AS first, MAX(id) AS last FROM tasks WHERE type = ? AND identifier BETWEEN ? AND ?',
        [TYPE, `bench-${String(from).padStart(8, '0')}`, `bench-${String(to).padStart(8, '0')}`],
      )) as unknown as [[{ first: number; last: number }]];
      for (const [slot, shift] of [
        ['e1', 0],
        ['e2', 500],
      ] as const) {
        const values: Record<string, string> = {
          task_id: 'n.id',
          endpoint: `CONCAT('e', 1 + (n.id + ${shift}) % 1000)`,
          status: 'n.status',
          errnr: "IF(n.status = 'DONE', 0, 1)",
          attempt: '1',
          start_time: 'n.created_at',
          finished_at: 'n.finished_at',
          last_modified_time: 'n.finished_at',
        };
        await stack.sql.query(
          `INSERT INTO task_responses (${responseColumns.join(', ')}) ` +
            `SELECT ${responseColumns.map((c) => values[c] ?? `r.${c}`).join(', ')} ` +
            'FROM tasks n JOIN task_responses r ON r.task_id = ? AND r.endpoint = ? ' +
            'WHERE n.id BETWEEN ? AND ?',
          [templateId, slot, ids.first, ids.last],
        );
      }
      progress(`listing: ${to.toLocaleString('en')} tasks`);
    }
    await stack.sql.query('ANALYZE TABLE tasks, task_responses');
    const fillMs = performance.now() - filled;
    const [[counts]] = (await stack.sql.query(
      'SELECT (SELECT COUNT(*) FROM tasks) AS tasks, (SELECT COUNT(*) FROM task_responses) AS responses',
    )) as unknown as [[{ tasks: number; responses: number }]];

    // a hundred identifiers share this prefix
    const prefix = `bench-${String(Math.floor(options.tasks / 2)).padStart(8, '0')}`.slice(0, -2);
    const middle = new Date(Date.now() - (options.tasks / 2) * 1000);
    const hourAfter = new Date(middle.getTime() + 3_600_000);
    const cases: Array<{ name: string; query: string; filter: Omit<TaskFilter, 'limit'> }> = [
      { name: 'newest first', query: '', filter: { type: TYPE } },
      {
        name: 'status=FAILED',
        query: 'status=FAILED',
        filter: { type: TYPE, statuses: ['FAILED'] },
      },
      {
        name: 'status=FAILED,INCOMPLETE, all types',
        query: 'status=FAILED,INCOMPLETE',
        filter: { statuses: ['FAILED', 'INCOMPLETE'] },
      },
      { name: 'endpoint=e7', query: 'endpoint=e7', filter: { type: TYPE, endpoint: 'e7' } },
      {
        name: 'identifier prefix',
        query: `identifier=${prefix}`,
        filter: { type: TYPE, identifierPrefix: prefix },
      },
      {
        name: 'an hour, half way back',
        query: `since=${middle.toISOString()}&until=${hourAfter.toISOString()}`,
        filter: { type: TYPE, since: middle, until: hourAfter },
      },
    ];
    const queries: ListingQuery[] = [];
    for (const test of cases) {
      const route = test.filter.type === undefined ? 'tasks' : TYPE;
      const path = `/${route}?${test.query}${test.query === '' ? '' : '&'}limit=50`;
      const { samples, bytes } = await timedGets(`${stack.baseUrl}${path}`, options.gets);
      const { sql, bindings } = listTasksQuery(db, { ...test.filter, limit: 50 })
        .toSQL()
        .toNative();
      const [plan] = await stack.sql.query(`EXPLAIN ${sql}`, [...bindings]);
      const explain = (plan as Array<Record<string, unknown>>).map(
        (step) =>
          `${String(step.table)}: ${String(step.type)} on ${String(step.key ?? '-')}, ` +
          `rows ${String(step.rows)}${step.Extra ? ` (${String(step.Extra)})` : ''}`,
      );
      const page = (await (await fetch(`${stack.baseUrl}${path}`)).json()) as { tasks: unknown[] };
      const rows = page.tasks.length;
      queries.push({ name: test.name, path, rows, latency: latency(samples), explain });
      progress(`listing: ${test.name}: median ${latency(samples).p50_ms} ms, ${bytes} bytes`);
    }
    return {
      tasks: Number(counts.tasks),
      responses: Number(counts.responses),
      fill_ms: Math.round(fillMs),
      queries,
    };
  } finally {
    await db.destroy();
    await stack.close();
  }
}

export interface HeartbeatOptions {
  endpoints: number;
  intervalMs: number;
  /** how long each half (with and without heartbeats) runs */
  durationMs: number;
  /** tasks a second through the real agents, in both halves */
  taskRate: number;
  stack: StackOptions;
  progress: (line: string) => void;
}

export interface HeartbeatHalf {
  tasks: number;
  /** POST answered → task DONE in SQL */
  done: Latency;
  cpu: Record<string, CpuShare>;
}

export interface HeartbeatPhase {
  endpoints: number;
  heartbeats: number;
  heartbeats_per_s: number;
  registry_rows: number;
  /** MariaDB statements and commits per heartbeat (the tasks' share subtracted) */
  db_per_heartbeat: { statements: number; commits: number };
  /** server CPU ms per heartbeat (the tasks' share subtracted) */
  server_cpu_ms_per_heartbeat: number | null;
  mariadb_cpu_ms_per_heartbeat: number | null;
  without: HeartbeatHalf;
  with: HeartbeatHalf;
}

const AGENTS = 4;

/** Post `rate` tasks a second for `durationMs` to the agents; the POST → DONE latency of each. */
async function steadyTasks(
  stack: Awaited<ReturnType<typeof startStack>>,
  label: string,
  rate: number,
  durationMs: number,
): Promise<number[]> {
  const agent = keepAliveAgent(8);
  const ids: Array<{ identifier: string; at: number }> = [];
  const started = performance.now();
  let n = 0;
  while (performance.now() - started < durationMs) {
    n += 1;
    const identifier = `${label}-${n}`;
    const res = await request(
      agent,
      `${stack.baseUrl}/${TYPE}`,
      'POST',
      JSON.stringify({ identifier, endpoints: endpointNames(AGENTS, 'a'), payload: {} }),
    );
    if (res.status !== 201) throw new Error(`POST ${identifier}: ${res.status} ${res.body}`);
    ids.push({ identifier, at: Date.now() });
    const due = started + (n * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
  agent.destroy();
  // when each became DONE: its updated_at, by the database's clock (the same machine's)
  const samples: number[] = [];
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [rows] = await stack.sql.query(
      'SELECT identifier, status, updated_at FROM tasks WHERE identifier LIKE ?',
      [`${label}-%`],
    );
    const found = rows as Array<{ identifier: string; status: string; updated_at: Date }>;
    if (found.length === ids.length && found.every((row) => row.status === 'DONE')) {
      const at = new Map(ids.map((id) => [id.identifier, id.at]));
      for (const row of found)
        samples.push(row.updated_at.getTime() - (at.get(row.identifier) ?? 0));
      return samples;
    }
    if (Date.now() > deadline) throw new Error(`${label}: tasks not DONE within 60 s`);
    await sleep(250);
  }
}

function heartbeatOf(endpoint: string, intervalMs: number): Heartbeat {
  return {
    v: HEARTBEAT_VERSION,
    kind: 'heartbeat',
    endpoint,
    phase: 'beat',
    types: [TYPE],
    labels: { role: 'web', dc: `dc${endpoint.length % 3}` },
    version: '0.1.0',
    handlers: { [TYPE]: '1' },
    hostname: `${endpoint}.example.com`,
    pid: 4242,
    started_at: new Date(Date.now() - 60_000).toISOString(),
    running: 0,
    capacity: 4,
    interval_ms: intervalMs,
    at: new Date().toISOString(),
  };
}

export async function heartbeatPhase(options: HeartbeatOptions): Promise<HeartbeatPhase> {
  const { progress } = options;
  const stack = await startStack('heartbeats', options.stack);
  const host = await stack.startAgentHost('agents', endpointNames(AGENTS, 'a'), AGENTS);
  const roles = { server: [stack.server.pid], agents: [host.pid ?? 0], ...servicePids() };
  const connection = await amqp.connect(AMQP_URL);
  try {
    await steadyTasks(stack, 'warmup', options.taskRate, 2000);
    progress(`heartbeats: ${options.taskRate} tasks/s for ${options.durationMs / 1000} s alone`);
    let cpu = startCpuMeter(roles);
    let dbMeter = await startDbMeter();
    const aloneSamples = await steadyTasks(stack, 'alone', options.taskRate, options.durationMs);
    const without: HeartbeatHalf = {
      tasks: aloneSamples.length,
      done: latency(aloneSamples),
      cpu: cpu.stop(),
    };
    const dbAlone = await dbMeter.stop();

    const rate = (options.endpoints * 1000) / options.intervalMs;
    progress(
      `heartbeats: the same with ${options.endpoints.toLocaleString('en')} endpoints beating ` +
        `every ${options.intervalMs / 1000} s (${Math.round(rate)}/s)`,
    );
    const channel = await connection.createConfirmChannel();
    const exchange = brokerNames.resultsExchange(stack.prefix);
    const names = endpointNames(options.endpoints, 'fleet');
    let published = 0;
    let beating = true;
    const beats = (async () => {
      const started = performance.now();
      while (beating) {
        // a tenth of a second's worth at a time, paced against the clock
        const due = Math.floor(((performance.now() - started) / 1000) * rate);
        while (published < due) {
          const endpoint = names[published % names.length] as string;
          channel.publish(
            exchange,
            '',
            Buffer.from(JSON.stringify(heartbeatOf(endpoint, options.intervalMs))),
            {
              expiration: String(options.intervalMs),
              contentType: 'application/json',
              type: 'heartbeat.beat',
            },
          );
          published += 1;
        }
        await channel.waitForConfirms();
        await sleep(100);
      }
    })();
    await sleep(1000);
    const beatsBefore = published;
    cpu = startCpuMeter(roles);
    dbMeter = await startDbMeter();
    const loadedSamples = await steadyTasks(stack, 'loaded', options.taskRate, options.durationMs);
    const loadedCpu = cpu.stop();
    const dbLoaded = await dbMeter.stop();
    const heartbeats = published - beatsBefore;
    beating = false;
    await beats;
    await channel.close();
    await sleep(1000);
    // the endpoints seen so far: each beats once per interval
    const [[{ n: registryRows }]] = (await stack.sql.query(
      'SELECT COUNT(*) AS n FROM endpoints',
    )) as unknown as [[{ n: number }]];

    const perBeat = (key: 'server' | 'mariadb'): number | null => {
      const extra = (loadedCpu[key]?.cpu_s ?? 0) - (without.cpu[key]?.cpu_s ?? 0);
      return heartbeats === 0 ? null : Math.round((extra * 1000 * 1000) / heartbeats) / 1000;
    };
    const dbDelta = (name: string): number =>
      heartbeats === 0
        ? 0
        : Math.round((((dbLoaded[name] ?? 0) - (dbAlone[name] ?? 0)) / heartbeats) * 100) / 100;
    return {
      endpoints: options.endpoints,
      heartbeats,
      heartbeats_per_s: Math.round(rate),
      registry_rows: Number(registryRows),
      db_per_heartbeat: { statements: dbDelta('Questions'), commits: dbDelta('Com_commit') },
      server_cpu_ms_per_heartbeat: perBeat('server'),
      mariadb_cpu_ms_per_heartbeat: perBeat('mariadb'),
      without,
      with: { tasks: loadedSamples.length, done: latency(loadedSamples), cpu: loadedCpu },
    };
  } finally {
    await connection.close().catch(() => undefined);
    await host.stop('SIGTERM', 10_000);
    await stack.close();
  }
}
