/**
 * The store against the real MariaDB and against a SQLite file, with the same tests: accepting
 * tasks, recording events idempotently and forward-only, settling deadlines, and relaying the
 * outbox. Then what is particular to SQLite: the file, migrations, timestamps.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import {
  createDb,
  databaseEngine,
  ensureDatabase,
  isDatabaseUnavailable,
  migrateLatest,
  migrateRollback,
  migrationStatus,
  type Db,
  createTask,
  findTask,
  TaskWriter,
  type CreateResult,
  sentMarker,
  markSent,
  recordResultEvents,
  findResponse,
  relayDueTasks,
  releaseDueTasks,
  releaseReadyTasks,
  cancelTask,
  createSchedule,
  describeSchedule,
  fireDueSchedules,
  setSchedulePaused,
  updateSchedule,
  sweepDeadlines,
  endpointCounts,
  outboxStats,
  findEndpointRow,
  forgetEndpoint,
  listEndpoints,
  recordHeartbeats,
  registryOf,
  selectEndpoints,
  type EndpointFilter,
  type NewTask,
  type Publishers,
  type TaskRow,
} from '../../src/store';
import { sqliteFile } from '../../src/config';
import {
  assumeReturning,
  forUpdate,
  mariadbWithReturning,
  supportsReturning,
} from '../../src/store/db';
import { TIMESTAMP_COLUMNS } from '../../src/store/sqlite';
import {
  ConflictError,
  RESULT_LIMITS,
  UnavailableError,
  type ScheduleSpec,
} from '../../src/domain';
import type { TaskTypeConfig } from '../../src/config';
import { createLogger, type Logger } from '../../src/log';
import type { DatabaseConfig } from '../../src/config/types';
import { createTestStack } from '../support/stack';
import { heartbeat, resultEvent as event } from '../support/messages';
import { migrations } from '../../migrations';

interface StoreFixture {
  db: Db;
  cleanup(): Promise<void>;
}

/** A fresh database on the real MariaDB. */
async function mariadb(): Promise<StoreFixture> {
  const testStack = await createTestStack();
  return { db: testStack.db, cleanup: () => testStack.cleanup() };
}

const POOL = { poolMin: 0, poolMax: 1, acquireTimeoutMs: 2000, createDatabase: false };

function sqliteConfig(file: string): DatabaseConfig {
  return { url: `sqlite://${file}`, ...POOL };
}

function sqliteDb(file: string, log = createLogger('error', {}, () => undefined)): Db {
  return createDb(sqliteConfig(file), { log });
}

/** A fresh SQLite file in a directory that does not exist yet. */
async function sqlite(): Promise<StoreFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'tasker-store-'));
  const db = sqliteDb(join(dir, 'data', 'tasker.sqlite3'));
  await migrateLatest(db);
  return {
    db,
    cleanup: async () => {
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let stack: StoreFixture;

interface TaskRowLike {
  identifier: string;
  payload: string;
}

interface OutboxLike {
  id: number;
  task_id: number;
}

let seq = 0;
function newTask(overrides: Partial<NewTask> = {}): NewTask {
  seq += 1;
  const now = new Date();
  return {
    type: 'worker',
    identifier: `store-${seq}`,
    payload: { n: seq },
    endpoints: ['e1', 'e2'],
    deliverBy: new Date(now.getTime() + 60_000),
    executionTimeoutMs: 30_000,
    now,
    outboxDelayMs: 0,
    ...overrides,
  };
}

/** Publishers whose task publish is `task`; a cancel is not expected. */
function publishing(task: (row: TaskRow) => Promise<void>): Publishers {
  return { task, cancel: () => Promise.reject(new Error('no cancel expected')) };
}

/** A task's first publish confirmed: its outbox row, as the intake would know it. */
async function createdWith(taskId: number): Promise<{ taskId: number; outboxId: number }> {
  const rows = (await stack.db('outbox').where({ task_id: taskId })) as Array<{ id: number }>;
  return { taskId, outboxId: Number(rows[0]?.id ?? 0) };
}

const rowsOf = (taskId: number) =>
  stack.db('task_responses').where({ task_id: taskId }).orderBy('id');

describe.each([
  ['MariaDB', mariadb],
  ['SQLite', sqlite],
])('store on %s', (engine, open) => {
  beforeAll(async () => {
    stack = await open();
  });
  afterAll(async () => {
    await stack.cleanup();
  });

  describe('createTask', () => {
    it('writes the task, one PENDING row per endpoint and an outbox row together', async () => {
      const input = newTask({ endpoints: ['a', 'b', 'c'] });
      const { task, created } = await createTask(stack.db, input);
      expect(created).toBe(true);
      expect(task.status).toBe('CREATED');
      // the id returned is the row's (knex returns the insert id differently per engine)
      const stored = (await stack.db('tasks').where({ id: task.id }).first()) as {
        identifier: string;
      };
      expect(stored.identifier).toBe(input.identifier);
      const rows = await rowsOf(task.id);
      expect(rows.map((r) => [r.endpoint, r.status, Boolean(r.expected)])).toEqual([
        ['a', 'PENDING', true],
        ['b', 'PENDING', true],
        ['c', 'PENDING', true],
      ]);
      expect(await stack.db('outbox').where({ task_id: task.id })).toHaveLength(1);
    });

    it('returns the existing task for the same identifier and body, in any endpoint order', async () => {
      const input = newTask({ payload: { a: 1, b: [1, 2] } });
      const first = await createTask(stack.db, input);
      const again = await createTask(stack.db, {
        ...input,
        payload: { b: [1, 2], a: 1 },
        endpoints: ['e2', 'e1'],
      });
      expect(again.created).toBe(false);
      expect(again.task.id).toBe(first.task.id);
      expect(await rowsOf(first.task.id)).toHaveLength(2);
    });

    it('refuses the same identifier with a different payload and writes nothing', async () => {
      const input = newTask();
      await createTask(stack.db, input);
      const before = await stack.db('task_responses').count({ n: '*' });
      await expect(
        createTask(stack.db, { ...input, payload: { other: true } }),
      ).rejects.toBeInstanceOf(ConflictError);
      await expect(createTask(stack.db, { ...input, endpoints: ['e1'] })).rejects.toBeInstanceOf(
        ConflictError,
      );
      expect(await stack.db('task_responses').count({ n: '*' })).toEqual(before);
    });

    it('treats identifiers byte for byte: case and trailing spaces make different tasks', async () => {
      const base = newTask({ identifier: 'Deploy' });
      const a = await createTask(stack.db, base);
      const b = await createTask(stack.db, { ...base, identifier: 'deploy', payload: 2 });
      const c = await createTask(stack.db, { ...base, identifier: 'Deploy ', payload: 3 });
      expect(new Set([a.task.id, b.task.id, c.task.id]).size).toBe(3);
    });

    it('treats endpoint names byte for byte too', async () => {
      const { task } = await createTask(stack.db, newTask({ endpoints: ['e', 'E', 'e '] }));
      const rows = await rowsOf(task.id);
      expect(rows.map((r) => r.endpoint)).toEqual(['e', 'E', 'e ']);
      const found = await stack.db('task_responses').where({ task_id: task.id, endpoint: 'e' });
      expect(found).toHaveLength(1);
    });

    it('reads timestamps back as Dates and booleans as 0/1', async () => {
      const { task } = await createTask(stack.db, newTask());
      const [row] = await rowsOf(task.id);
      expect(row.last_modified_time).toBeInstanceOf(Date);
      expect(row.expected).toBe(1);
      const taskRow = await stack.db('tasks').where({ id: task.id }).first();
      expect(taskRow.created_at).toBeInstanceOf(Date);
      expect(taskRow.sent_at).toBeNull();
    });

    it('round-trips emoji and metacharacters in identifier and payload exactly', async () => {
      const identifier = `💥'; DROP TABLE tasks; -- $(rm -rf /) ${seq}`;
      const payload = { cmd: '`reboot` && echo "x" | sh', emoji: '🚀👩‍💻', nul: 'a\u0000b' };
      await createTask(stack.db, newTask({ identifier, payload }));
      const found = await findTask(stack.db, 'worker', identifier);
      expect(found?.task.identifier).toBe(identifier);
      expect(found?.task.payload).toEqual(payload);
    });
  });

  describe('TaskWriter', () => {
    const ONE_GROUP_AT_A_TIME = {
      parallel: 1,
      maxTasks: 200,
      maxRows: 5000,
      maxPayloadBytes: 1 << 20,
      maxWaiting: 100,
    };

    /** Count the INSERTs into `tasks` while `work` runs. */
    async function countTaskInserts(work: () => Promise<unknown>): Promise<number> {
      let inserts = 0;
      const onQuery = (query: { sql: string }): void => {
        if (/^insert into [`"]?tasks[`"]?/i.test(query.sql)) inserts += 1;
      };
      stack.db.on('query', onQuery);
      try {
        await work();
      } finally {
        stack.db.off('query', onQuery);
      }
      return inserts;
    }

    it('writes concurrent tasks in groups, each with its own id, rows and outbox row', async () => {
      const writer = new TaskWriter(stack.db);
      const inputs = Array.from({ length: 40 }, (_, i) =>
        newTask({ endpoints: i % 2 === 0 ? ['a', 'b', 'c'] : null, payload: { i } }),
      );
      let results: CreateResult[] = [];
      const inserts = await countTaskInserts(async () => {
        results = await Promise.all(inputs.map((input) => writer.create(input)));
      });
      expect(inserts).toBeLessThanOrEqual(4);
      expect(new Set(results.map((r) => r.task.id)).size).toBe(40);
      for (const [i, { task, created, outboxId }] of results.entries()) {
        expect(created).toBe(true);
        const stored = (await stack.db('tasks').where({ id: task.id }).first()) as TaskRowLike;
        expect([stored.identifier, JSON.parse(stored.payload)]).toEqual([
          inputs[i]?.identifier,
          { i },
        ]);
        const rows = await rowsOf(task.id);
        expect(rows.map((r) => r.endpoint)).toEqual(i % 2 === 0 ? ['a', 'b', 'c'] : []);
        const outbox = (await stack.db('outbox').where({ task_id: task.id })) as OutboxLike[];
        expect(outbox.map((row) => Number(row.id))).toEqual([outboxId]);
      }
    });

    /** The statements a group of `count` new tasks is written with, by their first words. */
    async function groupStatements(db: Db, count: number): Promise<string[]> {
      const writer = new TaskWriter(db, ONE_GROUP_AT_A_TIME);
      const inputs = Array.from({ length: count }, (_, i) => newTask({ payload: { i } }));
      await supportsReturning(db);
      const statements: string[] = [];
      const onQuery = (query: { sql: string }): void => {
        statements.push(query.sql.split(' ').slice(0, 3).join(' ').toLowerCase());
      };
      db.on('query', onQuery);
      // the first is written alone; the others arrive while it is, and go as one group
      const first = writer.create(newTask());
      try {
        const results = await Promise.all(inputs.map((input) => writer.create(input)));
        await first;
        for (const [i, result] of results.entries()) {
          const stored = (await db('tasks').where({ id: result.task.id }).first()) as TaskRowLike;
          expect(JSON.parse(stored.payload)).toEqual({ i });
          const outbox = (await db('outbox').where({ task_id: result.task.id })) as OutboxLike[];
          expect(outbox.map((row) => Number(row.id))).toEqual([result.outboxId]);
        }
      } finally {
        db.off('query', onQuery);
      }
      // the group's inserts and reads, not this test's reads of what was stored
      return statements.filter((sql) => /^(insert|select `)/.test(sql));
    }

    it('writes a group with one INSERT a table and reads nothing back: the inserts return the ids', async () => {
      const statements = await groupStatements(stack.db, 5);
      const oneTable = [
        'insert into `tasks`',
        'insert into `task_responses`',
        'insert into `outbox`',
      ];
      // the first task alone, then the group of five
      expect(statements).toEqual([...oneTable, ...oneTable]);
    });

    if (engine === 'MariaDB') {
      it('writes a group as on MySQL, which has no INSERT … RETURNING: inserts, then reads of the ids', async () => {
        assumeReturning(stack.db, false);
        try {
          const statements = await groupStatements(stack.db, 5);
          expect(statements).toEqual([
            // the first task alone: its id is the insert's
            'insert into `tasks`',
            'insert into `task_responses`',
            'insert into `outbox`',
            'select `id`, `task_id`',
            // the group of five
            'insert into `tasks`',
            'select `id`, `identifier`',
            'insert into `task_responses`',
            'insert into `outbox`',
            'select `id`, `task_id`',
          ]);
        } finally {
          assumeReturning(stack.db, true);
        }
      });
    }

    it('gives each task of a group its own answer when one of them is a duplicate', async () => {
      const writer = new TaskWriter(stack.db);
      const existing = newTask();
      const first = await createTask(stack.db, existing);
      const conflicting = newTask({ identifier: newTask().identifier });
      await createTask(stack.db, conflicting);
      const fresh = newTask();
      const outcomes = await Promise.allSettled([
        writer.create(fresh),
        writer.create(existing),
        writer.create({ ...conflicting, payload: { other: true } }),
        writer.create(fresh),
      ]);
      const [created, same, refused, repeated] = outcomes;
      expect(created).toMatchObject({ status: 'fulfilled', value: { created: true } });
      expect(same).toMatchObject({
        status: 'fulfilled',
        value: { created: false, task: { id: first.task.id } },
      });
      expect(refused).toMatchObject({ status: 'rejected', reason: expect.any(ConflictError) });
      expect(repeated).toMatchObject({ status: 'fulfilled', value: { created: false } });
      const id = created?.status === 'fulfilled' ? created.value.task.id : -1;
      expect(repeated?.status === 'fulfilled' && repeated.value.task.id).toBe(id);
      expect(await rowsOf(id)).toHaveLength(2);
      expect(await stack.db('outbox').where({ task_id: id })).toHaveLength(1);
    });

    it('answers a retried identifier from the stored task and still writes the rest as one group', async () => {
      const writer = new TaskWriter(stack.db);
      const retried = newTask();
      const first = await createTask(stack.db, retried);
      const fresh = Array.from({ length: 6 }, () => newTask());
      let results: CreateResult[] = [];
      const inserts = await countTaskInserts(async () => {
        // the first two are written alone (the writer is idle); the rest form one group
        results = await Promise.all(
          [fresh[0], fresh[1], retried, ...fresh.slice(2)].map((input) =>
            writer.create(input as NewTask),
          ),
        );
      });
      // two alone, the failed group, and the group again without the retried identifier
      expect(inserts).toBe(4);
      expect(results[2]).toMatchObject({ created: false, task: { id: first.task.id } });
      expect(results.filter((r) => r.created)).toHaveLength(6);
    });

    it('refuses more tasks than it lets wait, with a 503-mapped error', async () => {
      const writer = new TaskWriter(stack.db, { ...ONE_GROUP_AT_A_TIME, maxWaiting: 2 });
      const outcomes = await Promise.allSettled(
        Array.from({ length: 4 }, () => writer.create(newTask())),
      );
      // one is being written, two wait, the fourth is refused
      expect(outcomes.map((o) => o.status)).toEqual([
        'fulfilled',
        'fulfilled',
        'fulfilled',
        'rejected',
      ]);
      expect(outcomes[3]).toMatchObject({ reason: expect.any(UnavailableError) });
    });

    it('keeps a group within its limits', async () => {
      const writer = new TaskWriter(stack.db, { ...ONE_GROUP_AT_A_TIME, maxTasks: 3 });
      const inputs = Array.from({ length: 10 }, () => newTask());
      const inserts = await countTaskInserts(() =>
        Promise.all(inputs.map((input) => writer.create(input))),
      );
      // one alone (the writer was idle), then groups of at most three
      expect(inserts).toBe(4);
    });
  });

  describe('recordResultEvents', () => {
    it("keeps a finished run's output apart: the row says how long, GET of the endpoint has it", async () => {
      const { task } = await createTask(stack.db, newTask());
      const text = '2026-11-30T00:00:00.000Z stdout deploying\n… 900 bytes left out …\n';
      const done = event(task.id, 'e1', { output: text, output_bytes: 1000 });
      await recordResultEvents(stack.db, [done]);
      // a duplicate of the finished event keeps the first output, and changes nothing
      expect(
        await recordResultEvents(stack.db, [{ ...done, output: 'another text', output_bytes: 9 }]),
      ).toMatchObject({ applied: 0, ignored: 1 });
      const found = await findTask(stack.db, 'worker', task.identifier);
      expect(found?.taskResponseList[0]).toMatchObject({ endpoint: 'e1', output_bytes: 1000 });
      expect(found?.taskResponseList[0]).not.toHaveProperty('output');
      expect(found?.taskResponseList[1]).toMatchObject({ endpoint: 'e2', output_bytes: null });
      const detail = await findResponse(stack.db, task.id, 'e1');
      expect(detail).toMatchObject({ output: text, output_bytes: 1000, history: [] });
      expect(await findResponse(stack.db, task.id, 'e2')).toMatchObject({ output: null });
    });

    it('moves rows forward, finishes the task, and ignores duplicates and stale events', async () => {
      const { task } = await createTask(stack.db, newTask());
      const t0 = Date.now();
      const at = (ms: number) => new Date(t0 + ms).toISOString();
      await recordResultEvents(stack.db, [
        event(task.id, 'e1', { event: 'received', status: 'RUNNING', at: at(1), errnr: null }),
      ]);
      let found = await findTask(stack.db, 'worker', task.identifier);
      expect(found?.task.status).toBe('SENT');
      expect(found?.taskResponseList[0]?.status).toBe('RUNNING');

      const done = event(task.id, 'e1', { at: at(2), payload: { ok: 1 } });
      const failed = event(task.id, 'e2', { status: 'FAILED', errnr: 32, errmsg: 'no', at: at(3) });
      const first = await recordResultEvents(stack.db, [done, failed]);
      expect(first.applied).toBe(2);
      // the same events again, and a stale 'received' after 'finished', change nothing
      const replay = await recordResultEvents(stack.db, [
        done,
        failed,
        event(task.id, 'e1', { event: 'received', status: 'RUNNING', at: at(4), errnr: null }),
      ]);
      expect(replay).toMatchObject({ applied: 0, ignored: 3 });

      found = await findTask(stack.db, 'worker', task.identifier);
      expect(found?.task.status).toBe('FAILED');
      expect(found?.task.counts).toMatchObject({ expected: 2, done: 1, failed: 1, pending: 0 });
      expect(found?.taskResponseList.map((r) => [r.endpoint, r.status, r.errnr, r.errmsg])).toEqual(
        [
          ['e1', 'DONE', 0, null],
          ['e2', 'FAILED', 32, 'no'],
        ],
      );
      expect(found?.taskResponseList[0]?.payload).toEqual({ ok: 1 });
      expect(await rowsOf(task.id)).toHaveLength(2);
    });

    it('writes each task of one batch its own status, counts and times, and no other task', async () => {
      // one after another, so that the ids (and the view below, ordered by id) follow this order
      const created = [];
      for (let i = 0; i < 4; i += 1) created.push((await createTask(stack.db, newTask())).task);
      const [done, failed, running, untouched] = created;
      if (!done || !failed || !running || !untouched) throw new Error('tasks not created');
      const now = new Date(Math.floor(Date.now() / 1000) * 1000 + 123);
      const outcome = await recordResultEvents(
        stack.db,
        [
          event(done.id, 'e1', {}),
          event(done.id, 'e2', {}),
          event(failed.id, 'e1', {}),
          event(failed.id, 'e2', { status: 'FAILED', errnr: 5 }),
          event(running.id, 'e2', { event: 'received', status: 'RUNNING', errnr: null }),
        ],
        now,
      );
      expect(outcome.applied).toBe(5);
      const rows = await stack
        .db('tasks')
        .whereIn('id', [done.id, failed.id, running.id, untouched.id])
        .orderBy('id');
      const view = rows.map((r: Record<string, unknown>) => ({
        status: r.status,
        counts: JSON.parse(String(r.counts)) as Record<string, number>,
        sent_at: (r.sent_at as Date | null)?.getTime() ?? null,
        finished_at: (r.finished_at as Date | null)?.getTime() ?? null,
        sweep_at: (r.sweep_at as Date | null)?.getTime() ?? null,
        updated_at: (r.updated_at as Date).getTime(),
      }));
      const deadline = untouched.deliver_by.getTime();
      expect(view).toEqual([
        {
          status: 'DONE',
          counts: expect.objectContaining({ done: 2, pending: 0 }),
          sent_at: now.getTime(),
          finished_at: now.getTime(),
          sweep_at: null,
          updated_at: now.getTime(),
        },
        {
          status: 'FAILED',
          counts: expect.objectContaining({ done: 1, failed: 1 }),
          sent_at: now.getTime(),
          finished_at: now.getTime(),
          sweep_at: null,
          updated_at: now.getTime(),
        },
        {
          status: 'SENT',
          counts: expect.objectContaining({ received: 1, pending: 2 }),
          sent_at: now.getTime(),
          finished_at: null,
          sweep_at: running.deliver_by.getTime(),
          updated_at: now.getTime(),
        },
        {
          status: 'CREATED',
          counts: expect.objectContaining({ pending: 2 }),
          sent_at: null,
          finished_at: null,
          sweep_at: deadline,
          updated_at: untouched.updated_at.getTime(),
        },
      ]);
    });

    it('writes a batch of payloads larger than one statement may be, all of them', async () => {
      // 24 endpoints x 1 MiB: 24 MiB, over MariaDB's default max_allowed_packet of 16 MiB
      const endpoints = Array.from({ length: 24 }, (_, i) => `big${i}`);
      const { task } = await createTask(stack.db, newTask({ endpoints }));
      const log = 'é'.repeat(RESULT_LIMITS.payloadBytes / 2 - 8);
      const outcome = await recordResultEvents(
        stack.db,
        endpoints.map((endpoint) => event(task.id, endpoint, { payload: { endpoint, log } })),
      );
      expect(outcome.applied).toBe(24);
      const rows = await rowsOf(task.id);
      expect(rows.map((r) => [r.endpoint, r.status])).toEqual(
        endpoints.map((endpoint) => [endpoint, 'DONE']),
      );
      for (const row of rows) {
        expect(JSON.parse(String(row.payload))).toEqual({ endpoint: row.endpoint, log });
      }
    });

    it('records an endpoint that was not addressed as unexpected without deciding the task', async () => {
      const { task } = await createTask(stack.db, newTask({ endpoints: ['e1'] }));
      await recordResultEvents(stack.db, [
        event(task.id, 'stranger', { status: 'FAILED', errnr: 9 }),
      ]);
      let found = await findTask(stack.db, 'worker', task.identifier);
      // an answer proves the broker had the task, but only e1 decides it
      expect(found?.task.status).toBe('SENT');
      expect(found?.taskResponseList.find((r) => r.endpoint === 'stranger')?.expected).toBe(false);
      await recordResultEvents(stack.db, [event(task.id, 'e1', {})]);
      found = await findTask(stack.db, 'worker', task.identifier);
      expect(found?.task.status).toBe('DONE');
      expect(found?.task.counts).toMatchObject({ expected: 1, done: 1, unexpected: 1 });
    });

    it('reports events for unknown tasks or the wrong type as orphaned', async () => {
      const { task } = await createTask(stack.db, newTask());
      const outcome = await recordResultEvents(stack.db, [
        event(99_999_999, 'e1', {}),
        event(task.id, 'e1', { type: 'backup' }),
      ]);
      expect(outcome.orphaned).toHaveLength(2);
      expect(outcome.applied).toBe(0);
    });
  });

  describe('sweepDeadlines', () => {
    it('marks endpoints that never got the task UNDELIVERED and the task INCOMPLETE', async () => {
      const past = new Date(Date.now() - 1000);
      const { task } = await createTask(stack.db, newTask({ deliverBy: past }));
      await recordResultEvents(stack.db, [event(task.id, 'e1', {})]);
      const outcome = await sweepDeadlines(stack.db, { timeoutGraceMs: 1000 });
      expect(outcome.finished).toContainEqual({ id: task.id, status: 'INCOMPLETE' });
      const found = await findTask(stack.db, 'worker', task.identifier);
      expect(found?.task.status).toBe('INCOMPLETE');
      expect(found?.task.counts).toMatchObject({ done: 1, undelivered: 1 });
      expect(found?.taskResponseList[1]).toMatchObject({ endpoint: 'e2', status: 'UNDELIVERED' });
    });

    it('lets a late result replace UNDELIVERED and re-decides the task', async () => {
      const { task } = await createTask(stack.db, newTask({ deliverBy: new Date(Date.now() - 1) }));
      await recordResultEvents(stack.db, [event(task.id, 'e1', {})]);
      await sweepDeadlines(stack.db, { timeoutGraceMs: 1000 });
      await recordResultEvents(stack.db, [event(task.id, 'e2', {})]);
      const found = await findTask(stack.db, 'worker', task.identifier);
      expect(found?.task.status).toBe('DONE');
    });

    it('times out an endpoint that went silent while running', async () => {
      const { task } = await createTask(
        stack.db,
        newTask({
          endpoints: ['e1'],
          executionTimeoutMs: 100,
          deliverBy: new Date(Date.now() + 50),
        }),
      );
      await recordResultEvents(stack.db, [
        event(task.id, 'e1', { event: 'received', status: 'RUNNING', errnr: null }),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await sweepDeadlines(stack.db, { timeoutGraceMs: 50 });
      const found = await findTask(stack.db, 'worker', task.identifier);
      expect(found?.taskResponseList[0]).toMatchObject({ status: 'TIMED_OUT', errnr: -1 });
      expect(found?.task.status).toBe('FAILED');
    });

    it("measures an endpoint's silence on the server's clock, whatever the agent's says", async () => {
      const running = (at: string) =>
        event(0, 'e1', { event: 'received', status: 'RUNNING', errnr: null, at });
      const timeoutMs = 1000;
      const graceMs = 500;
      const heard = new Date();
      // delivered: the sweeper looks at a task from its delivery deadline on
      const deliverBy = new Date(heard.getTime() + 10);
      const ahead = await createTask(
        stack.db,
        newTask({ endpoints: ['e1'], executionTimeoutMs: timeoutMs, deliverBy }),
      );
      const behind = await createTask(
        stack.db,
        newTask({ endpoints: ['e1'], executionTimeoutMs: timeoutMs, deliverBy }),
      );
      await recordResultEvents(
        stack.db,
        [
          // an agent whose clock runs ahead (or a forged date) must not put off the timeout
          { ...running('9999-12-31T23:59:59.000Z'), task_id: ahead.task.id },
          // nor one whose clock runs behind bring it forward
          {
            ...running(new Date(heard.getTime() - 3_600_000).toISOString()),
            task_id: behind.task.id,
          },
        ],
        heard,
      );
      const statusOf = async (identifier: string) =>
        (await findTask(stack.db, 'worker', identifier))?.taskResponseList[0]?.status;
      const before = new Date(heard.getTime() + timeoutMs + graceMs - 100);
      await sweepDeadlines(stack.db, { timeoutGraceMs: graceMs, now: before });
      expect(await statusOf(ahead.task.identifier)).toBe('RUNNING');
      expect(await statusOf(behind.task.identifier)).toBe('RUNNING');
      const after = new Date(heard.getTime() + timeoutMs + graceMs + 100);
      await sweepDeadlines(stack.db, { timeoutGraceMs: graceMs, now: after });
      expect(await statusOf(ahead.task.identifier)).toBe('TIMED_OUT');
      expect(await statusOf(behind.task.identifier)).toBe('TIMED_OUT');
      // and the start is never dated after it was recorded
      const found = await findTask(stack.db, 'worker', ahead.task.identifier);
      expect(found?.taskResponseList[0]?.start_time).toBe(heard.toISOString());
    });

    it('decides an open broadcast with no answers as INCOMPLETE once the deadline passed', async () => {
      const { task } = await createTask(
        stack.db,
        newTask({ endpoints: null, deliverBy: new Date(Date.now() - 1) }),
      );
      await sweepDeadlines(stack.db, { timeoutGraceMs: 1000 });
      const found = await findTask(stack.db, 'worker', task.identifier);
      expect(found?.task.status).toBe('INCOMPLETE');
      expect(found?.task.endpoints).toEqual([]);
    });
  });

  describe('outbox', () => {
    it('relays due rows, marks them SENT, and backs off rows the broker refused', async () => {
      await stack.db('outbox').delete();
      const ok = await createTask(stack.db, newTask());
      const refused = await createTask(stack.db, newTask());
      const published: number[] = [];
      const outcome = await relayDueTasks(
        stack.db,
        publishing(async (row) => {
          if (row.id === refused.task.id) throw new Error('broker said no');
          published.push(row.id);
        }),
      );
      expect(outcome).toMatchObject({ published: 1, failed: 1, expired: 0 });
      expect(outcome.changed.map((task) => [task.id, task.status])).toEqual([[ok.task.id, 'SENT']]);
      expect(published).toEqual([ok.task.id]);
      const [okRow] = await stack.db('tasks').where({ id: ok.task.id });
      expect(okRow.status).toBe('SENT');
      const left = await stack.db('outbox');
      expect(left).toHaveLength(1);
      expect(left[0]).toMatchObject({
        task_id: refused.task.id,
        attempts: 1,
        last_error: 'broker said no',
      });
      expect(new Date(left[0].next_attempt_at).getTime()).toBeGreaterThan(Date.now());
    });

    it('counts the outbox and dates its oldest row, for the metrics', async () => {
      await stack.db('outbox').delete();
      expect(await outboxStats(stack.db)).toEqual({ depth: 0, oldest: null });
      const oldest = new Date(Date.parse('2026-11-30T12:00:00.250Z'));
      await createTask(stack.db, newTask({ now: new Date(oldest.getTime() + 5000) }));
      await createTask(stack.db, newTask({ now: oldest }));
      expect(await outboxStats(stack.db)).toEqual({ depth: 2, oldest });
    });

    it('drops outbox rows of tasks past their delivery deadline without publishing', async () => {
      await stack.db('outbox').delete();
      const { task } = await createTask(stack.db, newTask({ deliverBy: new Date(Date.now() - 1) }));
      const outcome = await relayDueTasks(
        stack.db,
        publishing(() => Promise.reject(new Error('not called'))),
      );
      expect(outcome).toEqual({ published: 0, failed: 0, expired: 1, changed: [] });
      const [row] = await stack.db('tasks').where({ id: task.id });
      expect(row.status).toBe('CREATED');
    });

    it('markSent clears the row and never moves a finished task back to SENT', async () => {
      const { task } = await createTask(stack.db, newTask({ endpoints: ['e1'] }));
      await recordResultEvents(stack.db, [event(task.id, 'e1', {})]);
      await markSent(stack.db, [await createdWith(task.id)]);
      const [row] = await stack.db('tasks').where({ id: task.id });
      expect(row.status).toBe('DONE');
      expect(await stack.db('outbox').where({ task_id: task.id })).toHaveLength(0);
    });

    it('marks concurrent confirms SENT in shared transactions', async () => {
      const mark = sentMarker(stack.db);
      const tasks = await Promise.all(
        Array.from({ length: 30 }, () => createTask(stack.db, newTask())),
      );
      const ids = tasks.map((t) => t.task.id);
      await Promise.all(tasks.map((t) => mark({ taskId: t.task.id, outboxId: t.outboxId ?? 0 })));
      const rows = await stack.db('tasks').whereIn('id', ids).select('status', 'sent_at');
      expect(rows.every((r) => r.status === 'SENT' && r.sent_at !== null)).toBe(true);
      expect(await stack.db('outbox').whereIn('task_id', ids)).toHaveLength(0);
    });

    it('lets two relays share the work without publishing a row twice', async () => {
      await stack.db('outbox').delete();
      for (let i = 0; i < 20; i += 1) await createTask(stack.db, newTask());
      const seen: number[] = [];
      const slowPublish = async (row: { id: number }) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        seen.push(row.id);
      };
      const [a, b] = await Promise.all([
        relayDueTasks(stack.db, publishing(slowPublish), { limit: 15 }),
        relayDueTasks(stack.db, publishing(slowPublish), { limit: 15 }),
      ]);
      expect(a.published + b.published).toBe(20);
      expect(new Set(seen).size).toBe(seen.length);
    });

    // MySQL only: SKIP LOCKED across two connections; SQLite's one connection serialises them
    if (engine === 'MariaDB') {
      it('lets a second relay take other rows while the first holds its own', async () => {
        await stack.db('outbox').delete();
        for (let i = 0; i < 6; i += 1) await createTask(stack.db, newTask());
        let claimed!: () => void;
        let release!: () => void;
        const firstClaimed = new Promise<void>((resolve) => (claimed = resolve));
        const held = new Promise<void>((resolve) => (release = resolve));
        const first = relayDueTasks(
          stack.db,
          publishing(async () => {
            claimed();
            await held;
          }),
          { limit: 3 },
        );
        await firstClaimed;
        // without SKIP LOCKED this would wait on the first relay's rows until the test times out
        const second = await relayDueTasks(
          stack.db,
          publishing(() => Promise.resolve()),
          { limit: 10 },
        );
        release();
        expect(second.published).toBe(3);
        expect((await first).published).toBe(3);
      });

      it('marks SENT without waiting for a task the recorder holds, which moves it on itself', async () => {
        const { task: held } = await createTask(stack.db, newTask());
        const { task: free } = await createTask(stack.db, newTask());
        let locked!: () => void;
        let release!: () => void;
        const isLocked = new Promise<void>((resolve) => (locked = resolve));
        const released = new Promise<void>((resolve) => (release = resolve));
        const holder = stack.db.transaction(async (trx) => {
          await trx('tasks').where({ id: held.id }).forUpdate();
          locked();
          await released;
        });
        await isLocked;
        // without SKIP LOCKED this would wait for the holder until the test times out
        await markSent(stack.db, [await createdWith(held.id), await createdWith(free.id)]);
        release();
        await holder;
        const status = async (id: number) =>
          ((await stack.db('tasks').where({ id }).first()) as { status: string }).status;
        expect(await status(free.id)).toBe('SENT');
        expect(await status(held.id)).toBe('CREATED');
        expect(await stack.db('outbox').whereIn('task_id', [held.id, free.id])).toEqual([]);
        // the holder was recording an answer, which proves the broker had the task
        await recordResultEvents(stack.db, [event(held.id, 'e1', {})]);
        expect(await status(held.id)).toBe('SENT');
      });
    }
  });

  describe('delayed tasks', () => {
    /** a task due `inMs` from now, published to whatever the relay's publisher records */
    const delayed = (inMs: number, overrides: Partial<NewTask> = {}): NewTask => {
      const now = new Date();
      return newTask({
        now,
        deliverBy: new Date(now.getTime() + 60_000),
        notBefore: new Date(now.getTime() + inMs),
        ...overrides,
      });
    };
    const taskRow = async (id: number): Promise<TaskRow> =>
      (await stack.db('tasks').where({ id }).first()) as TaskRow;

    it('stores a delayed task SCHEDULED, without an outbox row or a delivery deadline', async () => {
      const input = delayed(3_600_000);
      const { task, outboxId } = await createTask(stack.db, input);
      expect(task.status).toBe('SCHEDULED');
      expect(outboxId).toBeNull();
      const row = await taskRow(task.id);
      expect(row.status).toBe('SCHEDULED');
      expect(row.not_before).toEqual(input.notBefore);
      expect(row.sweep_at).toBeNull();
      // its delivery window is kept, and counts from its release
      expect(Number(row.wait_ms)).toBe(60_000);
      expect(await stack.db('outbox').where({ task_id: task.id })).toHaveLength(0);
      const rows = await rowsOf(task.id);
      expect(rows.map((r) => [r.status, r.deliver_by])).toEqual([
        ['PENDING', null],
        ['PENDING', null],
      ]);
      // the sweeper leaves it alone, whatever the time
      const swept = await sweepDeadlines(stack.db, {
        now: new Date(Date.now() + 7_200_000),
        timeoutGraceMs: 1000,
      });
      expect(swept.changed.map((change) => change.task.id)).not.toContain(task.id);
    });

    it('releases a task once due: CREATED, deadline from then, its publish in the outbox', async () => {
      await stack.db('outbox').delete();
      const input = delayed(5_000);
      const { task } = await createTask(stack.db, input);
      const early = await releaseDueTasks(stack.db, { now: new Date(Date.now() + 1_000) });
      expect(early.changed.map((change) => change.task.id)).not.toContain(task.id);
      expect((await taskRow(task.id)).status).toBe('SCHEDULED');

      const releasedAt = new Date((input.notBefore as Date).getTime() + 2_000);
      const outcome = await releaseDueTasks(stack.db, { now: releasedAt });
      const change = outcome.changed.find((entry) => entry.task.id === task.id);
      expect(change?.task).toMatchObject({ status: 'CREATED', version: 1 });
      const row = await taskRow(task.id);
      expect(row.status).toBe('CREATED');
      expect(row.deliver_by).toEqual(new Date(releasedAt.getTime() + 60_000));
      expect(row.sweep_at).toEqual(row.deliver_by);
      const rows = await rowsOf(task.id);
      expect(rows.map((r) => r.deliver_by)).toEqual([row.deliver_by, row.deliver_by]);
      const outbox = await stack.db('outbox').where({ task_id: task.id });
      expect(outbox).toHaveLength(1);
      expect(JSON.parse(outbox[0].body)).toEqual({
        kind: 'task',
        round: 1,
        wave: 1,
        endpoints: null,
      });

      // released once: a second pass finds nothing more of it
      const again = await releaseDueTasks(stack.db, { now: releasedAt });
      expect(again.changed.map((entry) => entry.task.id)).not.toContain(task.id);
      expect(await stack.db('outbox').where({ task_id: task.id })).toHaveLength(1);

      const published: Array<[number, string]> = [];
      await relayDueTasks(
        stack.db,
        {
          task: async (stored, _body, deliverBy) => {
            published.push([stored.id, deliverBy.toISOString()]);
          },
          cancel: () => Promise.reject(new Error('no cancel expected')),
        },
        { now: releasedAt },
      );
      expect(published).toEqual([[task.id, (row.deliver_by as Date).toISOString()]]);
      expect((await taskRow(task.id)).status).toBe('SENT');
    });

    it('cancels a SCHEDULED task whole, addressed or broadcast: never published', async () => {
      const addressed = await createTask(stack.db, delayed(10_000));
      const broadcast = await createTask(stack.db, delayed(10_000, { endpoints: null }));
      for (const { task } of [addressed, broadcast]) {
        const outcome = await cancelTask(stack.db, task.id, {
          endpoints: null,
          reason: 'not needed',
        });
        expect(outcome.changed).toBe(true);
        expect(outcome.task).toMatchObject({ status: 'CANCELLED', cancel_reason: 'not needed' });
        const row = await taskRow(task.id);
        expect(row.status).toBe('CANCELLED');
        expect(row.finished_at).not.toBeNull();
        expect(row.sent_at).toBeNull();
      }
      expect((await rowsOf(addressed.task.id)).map((r) => [r.status, r.errmsg])).toEqual([
        ['CANCELLED', 'cancelled: not needed'],
        ['CANCELLED', 'cancelled: not needed'],
      ]);
      const later = await releaseDueTasks(stack.db, { now: new Date(Date.now() + 60_000) });
      const ids = later.changed.map((change) => change.task.id);
      expect(ids).not.toContain(addressed.task.id);
      expect(ids).not.toContain(broadcast.task.id);
      const outbox = await stack
        .db('outbox')
        .whereIn('task_id', [addressed.task.id, broadcast.task.id]);
      expect(outbox).toHaveLength(0);
    });

    it('publishes a released task only to the endpoints not cancelled while it waited', async () => {
      const { task } = await createTask(
        stack.db,
        delayed(10_000, { endpoints: ['d1', 'd2', 'd3'] }),
      );
      const partial = await cancelTask(stack.db, task.id, { endpoints: ['d2'], reason: 'down' });
      expect(partial.task.status).toBe('SCHEDULED');
      await releaseDueTasks(stack.db, { now: new Date(Date.now() + 60_000) });
      const outbox = await stack.db('outbox').where({ task_id: task.id });
      expect(JSON.parse(outbox[0].body)).toMatchObject({ endpoints: ['d1', 'd3'] });
      const rows = await rowsOf(task.id);
      expect(rows.map((r) => [r.endpoint, r.status, r.deliver_by === null])).toEqual([
        ['d1', 'PENDING', false],
        ['d2', 'CANCELLED', true],
        ['d3', 'PENDING', false],
      ]);
    });

    it('releases each due task once when two schedulers run at the same time', async () => {
      const due = await Promise.all(
        Array.from({ length: 40 }, () => createTask(stack.db, delayed(1_000))),
      );
      const at = new Date(Date.now() + 30_000);
      const [a, b] = await Promise.all([
        releaseDueTasks(stack.db, { now: at, limit: 30 }),
        releaseDueTasks(stack.db, { now: at, limit: 30 }),
      ]);
      const mine = new Set(due.map((created) => created.task.id));
      const released = [...a.changed, ...b.changed]
        .map((change) => change.task.id)
        .filter((id) => mine.has(id));
      const rest = await releaseDueTasks(stack.db, { now: at });
      const all = [...released, ...rest.changed.map((c) => c.task.id).filter((id) => mine.has(id))];
      expect(all.sort()).toEqual([...mine].sort());
      const outbox = await stack.db('outbox').whereIn('task_id', [...mine]);
      expect(outbox).toHaveLength(40);
    });
  });

  describe('dependencies', () => {
    /** a task that comes after `dependencies`, by their stored rows */
    const after = (dependencies: TaskRow[], overrides: Partial<NewTask> = {}): NewTask =>
      newTask({
        endpoints: ['c1'],
        after: dependencies.map((task) => ({
          id: task.id,
          type: task.type,
          identifier: task.identifier,
        })),
        ...overrides,
      });
    const taskRow = async (id: number): Promise<TaskRow> =>
      (await stack.db('tasks').where({ id }).first()) as TaskRow;
    const released = (outcome: { changed: Array<{ task: TaskRow }> }): number[] =>
      outcome.changed.map((change) => change.task.id);

    it('holds a task WAITING until every dependency is final, then releases it with their results', async () => {
      const a = (await createTask(stack.db, newTask({ endpoints: ['a1', 'a2'] }))).task;
      const b = (await createTask(stack.db, newTask({ endpoints: ['b1'] }))).task;
      const { task, outboxId } = await createTask(stack.db, after([a, b]));
      expect(task.status).toBe('WAITING');
      expect(outboxId).toBeNull();
      const links = await stack
        .db('task_dependencies')
        .where({ task_id: task.id })
        .orderBy('position');
      expect(links.map((link) => Number(link.depends_on_id))).toEqual([a.id, b.id]);
      expect((await rowsOf(task.id)).map((r) => [r.status, r.deliver_by])).toEqual([
        ['PENDING', null],
      ]);

      await recordResultEvents(stack.db, [
        event(a.id, 'a1', { payload: { from: 'a1' } }),
        event(a.id, 'a2', { payload: { from: 'a2' } }),
      ]);
      // b is still open
      expect(released(await releaseReadyTasks(stack.db))).not.toContain(task.id);
      expect((await taskRow(task.id)).status).toBe('WAITING');

      await recordResultEvents(stack.db, [event(b.id, 'b1', { payload: [1, 2, 3] })]);
      const outcome = await releaseReadyTasks(stack.db);
      expect(released(outcome)).toContain(task.id);
      const row = await taskRow(task.id);
      expect(row.status).toBe('CREATED');
      expect(JSON.parse(String(row.dependencies))).toEqual([
        {
          type: 'worker',
          identifier: a.identifier,
          status: 'DONE',
          responses: [
            { endpoint: 'a1', status: 'DONE', errnr: 0, errmsg: null, payload: { from: 'a1' } },
            { endpoint: 'a2', status: 'DONE', errnr: 0, errmsg: null, payload: { from: 'a2' } },
          ],
        },
        {
          type: 'worker',
          identifier: b.identifier,
          status: 'DONE',
          responses: [
            { endpoint: 'b1', status: 'DONE', errnr: 0, errmsg: null, payload: [1, 2, 3] },
          ],
        },
      ]);
      const outbox = await stack.db('outbox').where({ task_id: task.id });
      expect(outbox).toHaveLength(1);
      expect((await rowsOf(task.id))[0].deliver_by).toEqual(row.deliver_by);
      // released once
      expect(released(await releaseReadyTasks(stack.db))).not.toContain(task.id);
    });

    it('cancels a waiting task, with the reason, when a dependency failed and its policy is cancel', async () => {
      const a = (await createTask(stack.db, newTask({ endpoints: ['a1'] }))).task;
      const { task } = await createTask(stack.db, after([a]));
      await recordResultEvents(stack.db, [
        event(a.id, 'a1', { status: 'FAILED', errnr: 3, errmsg: 'no' }),
      ]);
      const outcome = await releaseReadyTasks(stack.db);
      expect(outcome.cancelled).toBeGreaterThanOrEqual(1);
      const row = await taskRow(task.id);
      expect(row).toMatchObject({
        status: 'CANCELLED',
        cancel_reason: `dependency worker/${a.identifier} ended FAILED`,
        sent_at: null,
      });
      expect((await rowsOf(task.id)).map((r) => [r.status, r.errmsg])).toEqual([
        ['CANCELLED', `cancelled: dependency worker/${a.identifier} ended FAILED`],
      ]);
      expect(await stack.db('outbox').where({ task_id: task.id })).toHaveLength(0);
    });

    it('runs a waiting task whose policy is run, whatever its dependencies ended', async () => {
      const a = (await createTask(stack.db, newTask({ endpoints: ['a1'] }))).task;
      const { task } = await createTask(stack.db, after([a], { onDependencyFailure: 'run' }));
      await cancelTask(stack.db, a.id, { endpoints: null, reason: 'stop' });
      await releaseReadyTasks(stack.db);
      const row = await taskRow(task.id);
      expect(row.status).toBe('CREATED');
      expect(row.on_dependency_failure).toBe('run');
      expect(JSON.parse(String(row.dependencies))[0]).toMatchObject({ status: 'CANCELLED' });
    });

    it('holds a task whose dependencies are done SCHEDULED until its not_before', async () => {
      const a = (await createTask(stack.db, newTask({ endpoints: ['a1'] }))).task;
      const notBefore = new Date(Date.now() + 60_000);
      const { task } = await createTask(stack.db, after([a], { notBefore }));
      expect(task.status).toBe('WAITING');
      await recordResultEvents(stack.db, [event(a.id, 'a1')]);
      await releaseReadyTasks(stack.db);
      expect((await taskRow(task.id)).status).toBe('SCHEDULED');
      expect(await stack.db('outbox').where({ task_id: task.id })).toHaveLength(0);
      await releaseDueTasks(stack.db, { now: new Date(notBefore.getTime() + 1) });
      expect((await taskRow(task.id)).status).toBe('CREATED');
      expect(await stack.db('outbox').where({ task_id: task.id })).toHaveLength(1);
    });

    it('cancels a WAITING task as a whole: never published', async () => {
      const a = (await createTask(stack.db, newTask({ endpoints: ['a1'] }))).task;
      const { task } = await createTask(stack.db, after([a], { endpoints: null }));
      const outcome = await cancelTask(stack.db, task.id, { endpoints: null, reason: 'no' });
      expect(outcome.task.status).toBe('CANCELLED');
      await recordResultEvents(stack.db, [event(a.id, 'a1')]);
      expect(released(await releaseReadyTasks(stack.db))).not.toContain(task.id);
      expect(await stack.db('outbox').where({ task_id: task.id })).toHaveLength(0);
    });

    it('releases each ready task once when two schedulers run at the same time', async () => {
      const a = (await createTask(stack.db, newTask({ endpoints: ['a1'] }))).task;
      const waiting = await Promise.all(
        Array.from({ length: 30 }, () => createTask(stack.db, after([a]))),
      );
      await recordResultEvents(stack.db, [event(a.id, 'a1')]);
      const mine = new Set(waiting.map((created) => created.task.id));
      const [x, y] = await Promise.all([
        releaseReadyTasks(stack.db, { limit: 20 }),
        releaseReadyTasks(stack.db, { limit: 20 }),
      ]);
      const rest = await releaseReadyTasks(stack.db);
      const all = [...released(x), ...released(y), ...released(rest)].filter((id) => mine.has(id));
      expect(all.sort()).toEqual([...mine].sort());
      expect(await stack.db('outbox').whereIn('task_id', [...mine])).toHaveLength(30);
    });
  });

  describe('schedules', () => {
    const TYPES: Record<string, TaskTypeConfig> = {
      worker: {
        name: 'worker',
        waitForEndpointsTimeoutMs: 60_000,
        executionTimeoutMs: 30_000,
        maxDeliveries: 5,
        rollout: null,
        successThreshold: null,
        retry: null,
        priority: 0,
      },
    };
    let scheduleSeq = 0;
    const spec = (overrides: Partial<ScheduleSpec> = {}): ScheduleSpec => {
      scheduleSeq += 1;
      return {
        name: `every-minute-${scheduleSeq}`,
        type: 'worker',
        payload: { n: 1 },
        endpoints: ['s1'],
        selector: null,
        everyMs: 60_000,
        cron: null,
        timezone: 'UTC',
        startAt: null,
        endAt: null,
        catchUp: 'skip',
        backoff: null,
        ...overrides,
      };
    };
    const t0 = new Date('2026-12-01T10:00:00.000Z');
    const at = (seconds: number): Date => new Date(t0.getTime() + seconds * 1000);
    const tasksOf = async (name: string): Promise<string[]> =>
      (
        (await stack
          .db('tasks')
          .where('identifier', '>=', `${name}@`)
          .where('identifier', '<', `${name}A`)
          .orderBy('id')) as TaskRow[]
      ).map((task) => task.identifier);
    /** fire as the scheduler does, but only what `name` makes counts */
    const fire = async (now: Date) => fireDueSchedules(stack.db, TYPES, { now });

    it('fires every interval, one task per due time, named after the schedule and the time', async () => {
      const { row, created } = await createSchedule(stack.db, spec(), t0);
      expect(created).toBe(true);
      expect(row.next_run_at).toEqual(at(60));
      await fire(at(30));
      expect(await tasksOf(row.name)).toEqual([]);
      await fire(at(61));
      await fire(at(62));
      await fire(at(125));
      expect(await tasksOf(row.name)).toEqual([
        `${row.name}@2026-12-01T10:01:00.000Z`,
        `${row.name}@2026-12-01T10:02:00.000Z`,
      ]);
      const [task] = (await stack
        .db('tasks')
        .where({ identifier: `${row.name}@2026-12-01T10:01:00.000Z` })) as TaskRow[];
      expect(task).toMatchObject({ status: 'CREATED', type: 'worker' });
      expect(JSON.parse(task?.payload ?? '')).toEqual({ n: 1 });
      expect(await stack.db('outbox').where({ task_id: task?.id })).toHaveLength(1);
      expect(await rowsOf(Number(task?.id))).toHaveLength(1);
      const described = await describeSchedule(stack.db, row.name, { nextRuns: 3, recentTasks: 5 });
      expect(described.next_runs).toEqual([
        '2026-12-01T10:03:00.000Z',
        '2026-12-01T10:04:00.000Z',
        '2026-12-01T10:05:00.000Z',
      ]);
      expect(described.recent_tasks.map((t) => t.identifier)).toEqual([
        `${row.name}@2026-12-01T10:02:00.000Z`,
        `${row.name}@2026-12-01T10:01:00.000Z`,
      ]);
    });

    it('makes no second task for a due time whose task exists (a crash before the advance)', async () => {
      const { row } = await createSchedule(stack.db, spec(), t0);
      await fire(at(61));
      // as if the schedule had not been moved on with its task
      await stack
        .db('schedules')
        .where({ id: row.id })
        .update({ next_run_at: at(60) });
      await fire(at(62));
      expect(await tasksOf(row.name)).toEqual([`${row.name}@2026-12-01T10:01:00.000Z`]);
      const moved = await stack.db('schedules').where({ id: row.id }).first();
      expect(moved.next_run_at).toEqual(at(120));
    });

    it('fires each due schedule once when two schedulers run at the same time', async () => {
      const names = [];
      for (let i = 0; i < 12; i += 1)
        names.push((await createSchedule(stack.db, spec(), t0)).row.name);
      await Promise.all([
        fireDueSchedules(stack.db, TYPES, { now: at(61), limit: 8 }),
        fireDueSchedules(stack.db, TYPES, { now: at(61), limit: 8 }),
      ]);
      await fire(at(61));
      for (const name of names) {
        expect(await tasksOf(name)).toEqual([`${name}@2026-12-01T10:01:00.000Z`]);
      }
    });

    it('after three missed intervals makes one task under "one", none under "skip"', async () => {
      const one = (await createSchedule(stack.db, spec({ catchUp: 'one' }), t0)).row;
      const skip = (await createSchedule(stack.db, spec({ catchUp: 'skip' }), t0)).row;
      // due at 10:01; the server was down until 10:04:10
      const outcome = await fire(at(250));
      expect(outcome.skipped).toBeGreaterThanOrEqual(3 + 4);
      expect(await tasksOf(one.name)).toEqual([`${one.name}@2026-12-01T10:04:00.000Z`]);
      expect(await tasksOf(skip.name)).toEqual([]);
      for (const name of [one.name, skip.name]) {
        const row = await stack.db('schedules').where({ name }).first();
        expect(row.next_run_at).toEqual(at(300));
      }
      await fire(at(301));
      expect(await tasksOf(skip.name)).toEqual([`${skip.name}@2026-12-01T10:05:00.000Z`]);
    });

    it('pauses and resumes without making up the runs due meanwhile; stops after end_at', async () => {
      const { row } = await createSchedule(stack.db, spec({ endAt: at(400) }), t0);
      await setSchedulePaused(stack.db, row.name, true, at(10));
      await fire(at(200));
      expect(await tasksOf(row.name)).toEqual([]);
      const resumed = await setSchedulePaused(stack.db, row.name, false, at(200));
      expect(resumed.next_run_at).toEqual(at(240));
      await fire(at(241));
      await fire(at(301));
      await fire(at(361));
      expect(await tasksOf(row.name)).toEqual([
        `${row.name}@2026-12-01T10:04:00.000Z`,
        `${row.name}@2026-12-01T10:05:00.000Z`,
        `${row.name}@2026-12-01T10:06:00.000Z`,
      ]);
      const ended = await stack.db('schedules').where({ id: row.id }).first();
      expect(ended.next_run_at).toBeNull();
    });

    it('backs off after a FAILED run, up to its maximum, and goes back to every after DONE', async () => {
      const { row } = await createSchedule(
        stack.db,
        spec({ backoff: { factor: 2, maxMs: 180_000 } }),
        t0,
      );
      const finish = async (due: string, status: 'DONE' | 'FAILED') => {
        const [task] = (await stack
          .db('tasks')
          .where({ identifier: `${row.name}@${due}` })) as TaskRow[];
        await recordResultEvents(stack.db, [
          event(Number(task?.id), 's1', { status, errnr: status === 'DONE' ? 0 : 1 }),
        ]);
      };
      const stored = () => stack.db('schedules').where({ id: row.id }).first();
      await fire(at(61));
      await finish('2026-12-01T10:01:00.000Z', 'FAILED');
      // the failure doubles the interval: nothing at 10:02, the next at 10:03
      await fire(at(121));
      expect((await stored()).next_run_at).toEqual(at(180));
      expect(Number((await stored()).interval_ms)).toBe(120_000);
      await fire(at(181));
      await finish('2026-12-01T10:03:00.000Z', 'FAILED');
      // doubled again, but at most 3 minutes
      await fire(at(301));
      expect((await stored()).next_run_at).toEqual(at(360));
      await fire(at(361));
      await finish('2026-12-01T10:06:00.000Z', 'DONE');
      await fire(at(541));
      expect(Number((await stored()).interval_ms)).toBe(60_000);
      await fire(at(601));
      expect(await tasksOf(row.name)).toEqual([
        `${row.name}@2026-12-01T10:01:00.000Z`,
        `${row.name}@2026-12-01T10:03:00.000Z`,
        `${row.name}@2026-12-01T10:06:00.000Z`,
        `${row.name}@2026-12-01T10:09:00.000Z`,
        `${row.name}@2026-12-01T10:10:00.000Z`,
      ]);
    });

    it('refuses another schedule of the same name (409), answers the same one (200), and updates', async () => {
      const first = spec();
      await createSchedule(stack.db, first, t0);
      expect((await createSchedule(stack.db, first, t0)).created).toBe(false);
      await expect(
        createSchedule(stack.db, { ...first, everyMs: 120_000 }, t0),
      ).rejects.toBeInstanceOf(ConflictError);
      const updated = await updateSchedule(
        stack.db,
        { ...first, everyMs: null, cron: '30 * * * *' },
        at(10),
      );
      expect(updated.next_run_at).toEqual(new Date('2026-12-01T10:30:00.000Z'));
    });
  });

  describe('endpoint registry', () => {
    const at = (ms: number) => new Date(Date.parse('2026-11-30T12:00:00Z') + ms);
    const names = (page: { endpoints: Array<{ name: string }> }) =>
      page.endpoints.map((e) => e.name);
    const ANY: EndpointFilter = {
      type: null,
      labels: {},
      statuses: null,
      version: null,
      handlerVersion: null,
    };
    beforeAll(async () => {
      await stack.db('endpoints').delete();
      // r1 web 15 s beats, r2 web stopped, r3 db on another version, r4 silent since long
      await recordHeartbeats(
        stack.db,
        [
          heartbeat('r1'),
          heartbeat('r3', { labels: { role: 'db' }, version: '0.9.0', handlers: { worker: '2' } }),
        ],
        at(0),
      );
      await recordHeartbeats(stack.db, [heartbeat('r2', { phase: 'goodbye' })], at(0));
      await recordHeartbeats(stack.db, [heartbeat('r4', { types: ['backup'] })], at(-3_600_000));
    });

    it('says online until three beats are missed, offline after, stopped after a goodbye', async () => {
      const page = await listEndpoints(stack.db, ANY, { limit: 10, after: null }, at(44_999));
      expect(Object.fromEntries(page.endpoints.map((e) => [e.name, e.status]))).toEqual({
        r1: 'online',
        r2: 'stopped',
        r3: 'online',
        r4: 'offline',
      });
      const later = await listEndpoints(stack.db, ANY, { limit: 10, after: null }, at(45_000));
      expect(later.endpoints.find((e) => e.name === 'r1')).toMatchObject({
        status: 'offline',
        since: at(45_000).toISOString(),
      });
    });

    it('counts endpoints by status for the metrics, as the list says them', async () => {
      expect(await endpointCounts(stack.db, at(44_999))).toEqual({
        online: 2,
        offline: 1,
        stopped: 1,
      });
      expect(await endpointCounts(stack.db, at(45_000))).toEqual({
        online: 0,
        offline: 3,
        stopped: 1,
      });
    });

    it('filters by type, labels, status and versions, summing up every match', async () => {
      const list = (filter: Partial<EndpointFilter>) =>
        listEndpoints(stack.db, { ...ANY, ...filter }, { limit: 10, after: null }, at(1000));
      expect(names(await list({ type: 'backup' }))).toEqual(['r4']);
      expect(names(await list({ labels: { role: 'web' } }))).toEqual(['r1', 'r2', 'r4']);
      expect(names(await list({ statuses: ['online'] }))).toEqual(['r1', 'r3']);
      expect(names(await list({ version: '0.9.0' }))).toEqual(['r3']);
      expect(names(await list({ type: 'worker', handlerVersion: '2' }))).toEqual(['r3']);
      const { summary } = await list({});
      expect(summary).toEqual({
        total: 4,
        statuses: { online: 2, offline: 1, stopped: 1 },
        versions: { '1.0.0': 3, '0.9.0': 1 },
        handlers: { worker: { 'sha256:0123456789ab': 3, '2': 1 } },
      });
    });

    it('pages by name, the summary always of every match', async () => {
      const first = await listEndpoints(stack.db, ANY, { limit: 3, after: null }, at(0));
      expect(names(first)).toEqual(['r1', 'r2', 'r3']);
      expect(first.next).toBe('r3');
      const second = await listEndpoints(stack.db, ANY, { limit: 3, after: 'r3' }, at(0));
      expect(names(second)).toEqual(['r4']);
      expect(second.next).toBeNull();
      expect(second.summary.total).toBe(4);
    });

    it('picks endpoints by selector, and says which it has never seen', async () => {
      const now = at(1000);
      expect(await selectEndpoints(stack.db, 'worker', '*', now)).toEqual(['r1', 'r2', 'r3']);
      expect(
        await selectEndpoints(
          stack.db,
          'worker',
          { labels: { role: 'web' }, status: 'online' },
          now,
        ),
      ).toEqual(['r1']);
      expect(
        await selectEndpoints(stack.db, 'backup', { labels: { role: 'db' }, status: null }, now),
      ).toEqual([]);
      const registry = await registryOf(stack.db, ['r1', 'r4', 'nobody'], now);
      expect(registry.get('r1')).toMatchObject({ status: 'online' });
      expect(registry.get('r4')).toMatchObject({ status: 'offline' });
      expect(registry.get('nobody')).toEqual({ status: 'never_seen' });
    });

    it('keeps first_seen_at through a restart, updates the rest, and forgets on request', async () => {
      const before = await findEndpointRow(stack.db, 'r2');
      await recordHeartbeats(
        stack.db,
        [heartbeat('r2', { phase: 'hello', labels: { role: 'db' }, pid: 7 })],
        at(5000),
      );
      const after = await findEndpointRow(stack.db, 'r2');
      expect(after?.first_seen_at).toEqual(before?.first_seen_at);
      expect(after).toMatchObject({ labels: '{"role":"db"}', pid: 7, stopped_at: null });
      expect(await forgetEndpoint(stack.db, 'r2')).toBe(true);
      expect(await forgetEndpoint(stack.db, 'r2')).toBe(false);
    });
  });
});

const dueRows = (db: Db) =>
  db('outbox').select('id').where('next_attempt_at', '<=', new Date(0)).limit(5);

describe('SQLite only', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tasker-sqlite-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A migrated SQLite file in this test's directory, destroyed after `work`. */
  async function withSqlite(work: (db: Db, file: string) => Promise<void>, log?: Logger) {
    const file = join(dir, 'tasker.sqlite3');
    const db = sqliteDb(file, log);
    try {
      await migrateLatest(db);
      await work(db, file);
    } finally {
      await db.destroy();
    }
  }

  it('creates the directory and the file on first start; migrating again changes nothing', async () => {
    const file = join(dir, 'a', 'b', 'tasker.sqlite3');
    await ensureDatabase(sqliteConfig(file));
    expect(existsSync(join(dir, 'a', 'b'))).toBe(true);
    expect(existsSync(file)).toBe(false);
    const db = sqliteDb(file);
    try {
      expect(await migrateLatest(db)).toHaveLength(migrations.length);
      expect(existsSync(file)).toBe(true);
      expect(await db.raw('PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
      expect(await db.raw('PRAGMA synchronous')).toEqual([{ synchronous: 1 }]); // NORMAL
      expect(await migrateLatest(db)).toEqual([]);
      expect((await migrationStatus(db)).pending).toEqual([]);
    } finally {
      await db.destroy();
    }
  });

  it('rolls every migration back and applies them again', () =>
    withSqlite(async (db) => {
      expect(await migrateRollback(db, true)).toHaveLength(migrations.length);
      expect(await db.schema.hasTable('tasks')).toBe(false);
      expect(await db.schema.hasTable('outbox')).toBe(false);
      expect(await migrateLatest(db)).toHaveLength(migrations.length);
      expect(await db.schema.hasTable('task_responses')).toBe(true);
    }));

  it('keeps timestamps to the millisecond and compares them with Dates', () =>
    withSqlite(async (db) => {
      const deliverBy = new Date('2030-01-02T03:04:05.678Z');
      const { task } = await createTask(db, newTask({ deliverBy }));
      const found = await findTask(db, 'worker', task.identifier);
      expect(found?.task.deliver_by).toBe('2030-01-02T03:04:05.678Z');
      const [row] = await db('tasks').where('deliver_by', '<=', deliverBy);
      expect(row.deliver_by).toEqual(deliverBy);
      expect(await db('tasks').where('deliver_by', '<', deliverBy)).toEqual([]);
    }));

  it('reads back as Dates every DATETIME column of the schema', () =>
    withSqlite(async (db) => {
      const columns: string[] = [];
      for (const table of ['tasks', 'task_responses', 'outbox']) {
        const info = (await db.raw(`PRAGMA table_info(${table})`)) as Array<{
          name: string;
          type: string;
        }>;
        columns.push(...info.filter((c) => c.type === 'datetime').map((c) => c.name));
      }
      expect(columns.length).toBeGreaterThan(5);
      expect(columns.filter((c) => !TIMESTAMP_COLUMNS.has(c))).toEqual([]);
    }));

  it('enforces foreign keys: deleting a task removes its responses and outbox row', () =>
    withSqlite(async (db) => {
      const { task } = await createTask(db, newTask());
      await db('tasks').where({ id: task.id }).delete();
      expect(await db('task_responses').where({ task_id: task.id })).toEqual([]);
      expect(await db('outbox').where({ task_id: task.id })).toEqual([]);
      await expect(
        db('outbox').insert({
          task_id: 12345,
          attempts: 0,
          next_attempt_at: new Date(),
          created_at: new Date(),
        }),
      ).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_FOREIGNKEY' });
    }));

  it('runs the relay, the sweeper and the recorder without knex warnings (no row locks)', async () => {
    const lines: string[] = [];
    await withSqlite(
      async (db) => {
        const { task } = await createTask(db, newTask({ deliverBy: new Date(Date.now() - 1) }));
        await relayDueTasks(
          db,
          publishing(() => Promise.resolve()),
        );
        await recordResultEvents(db, [event(task.id, 'e1', {})]);
        expect((await sweepDeadlines(db, { timeoutGraceMs: 1000 })).tasks).toBe(1);
      },
      createLogger('debug', {}, (line) => lines.push(line)),
    );
    expect(lines.filter((line) => line.includes('knex'))).toEqual([]);
  });

  it('waits for a write lock another process holds instead of failing', () =>
    withSqlite(async (db, file) => {
      const holder = spawn(process.execPath, [
        '-e',
        `const db = new (require(${JSON.stringify(require.resolve('better-sqlite3'))}))(${JSON.stringify(file)});
         db.exec('BEGIN IMMEDIATE'); console.log(Date.now());
         setTimeout(() => { db.exec('COMMIT'); db.close(); }, 500);`,
      ]);
      // when the holder took the lock, by its own clock: this process may see it later
      const lockedAt = await new Promise<number>((resolve, reject) => {
        holder.stdout.once('data', (data: Buffer) => resolve(Number(data.toString())));
        holder.once('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
      });
      const { created } = await createTask(db, newTask());
      expect(created).toBe(true);
      // the lock is let go 500 ms after it was taken
      expect(Date.now() - lockedAt).toBeGreaterThanOrEqual(450);
    }));

  it('reports a file that cannot be opened as the database being unavailable', async () => {
    const notAFile = join(dir, 'is-a-directory');
    mkdirSync(notAFile);
    const db = sqliteDb(notAFile);
    try {
      const failure = findTask(db, 'worker', 'x');
      await expect(failure).rejects.toBeInstanceOf(UnavailableError);
      await expect(db.raw('SELECT 1')).rejects.toMatchObject({ code: 'SQLITE_CANTOPEN' });
      expect(isDatabaseUnavailable(await db.raw('SELECT 1').catch((err: unknown) => err))).toBe(
        true,
      );
    } finally {
      await db.destroy();
    }
  });

  it('takes sqlite:PATH from the working directory and sqlite:///PATH as absolute', () => {
    expect(sqliteFile('sqlite:var/tasker.sqlite3')).toBe(resolvePath('var/tasker.sqlite3'));
    expect(sqliteFile('sqlite:///srv/tasker/db.sqlite3')).toBe('/srv/tasker/db.sqlite3');
    expect(sqliteFile('sqlite:///srv/my%20data/db.sqlite3')).toBe('/srv/my data/db.sqlite3');
    expect(() => sqliteFile('sqlite://var/tasker.sqlite3')).toThrow(/names a host \(var\)/);
    expect(() => sqliteFile('sqlite:')).toThrow(/names no file/);
    expect(databaseEngine('sqlite:var/tasker.sqlite3')).toBe('sqlite');
    expect(databaseEngine('mysql://root@127.0.0.1/tasker')).toBe('mysql');
  });

  it('takes no row locks, as its one connection serialises transactions', async () => {
    const db = sqliteDb(join(dir, 'tasker.sqlite3'));
    try {
      const locked = forUpdate(db, dueRows(db), { skipLocked: true });
      expect(locked.toString()).toBe(dueRows(db).toString());
    } finally {
      await db.destroy();
    }
  });

  it('names the scheme it does not know', () => {
    expect(() => databaseEngine('postgres://db/tasker')).toThrow(
      'database url scheme postgres: is not supported: use mysql:// or sqlite:',
    );
    expect(() => createDb({ url: 'sqlite3:x.db', ...POOL })).toThrow(
      'database url scheme sqlite3: is not supported',
    );
  });
});

describe('INSERT … RETURNING', () => {
  it('is taken on MariaDB 10.5 and later, never on MySQL', () => {
    expect(mariadbWithReturning('10.11.19-MariaDB-0+deb12u1')).toBe(true);
    expect(mariadbWithReturning('10.5.0-MariaDB')).toBe(true);
    expect(mariadbWithReturning('11.4.2-MariaDB-ubu2404')).toBe(true);
    expect(mariadbWithReturning('10.4.32-MariaDB')).toBe(false);
    expect(mariadbWithReturning('8.0.36')).toBe(false);
    expect(mariadbWithReturning('8.4.0-0ubuntu0.24.04.1')).toBe(false);
  });
});

describe('row locks on MySQL', () => {
  it('keeps the MySQL statements as they were: FOR UPDATE [SKIP LOCKED]', async () => {
    // no connection is made: the statements are only compiled
    const db = createDb({ url: 'mysql://root@127.0.0.1:3306/none', ...POOL });
    try {
      expect(forUpdate(db, dueRows(db), { skipLocked: true }).toString()).toBe(
        dueRows(db).forUpdate().skipLocked().toString(),
      );
      expect(forUpdate(db, dueRows(db)).toString()).toMatch(/ for update$/);
    } finally {
      await db.destroy();
    }
  });
});
