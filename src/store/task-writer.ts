/**
 * Accepting tasks. A task, one PENDING response row per addressed endpoint, and its outbox row
 * are written in one transaction, so an accepted task is never without its rows nor forgotten by
 * the relay (a held task is written WAITING for its dependencies or SCHEDULED for its time,
 * without an outbox row: the scheduler writes it when it releases the task); under load, tasks
 * are written in groups.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Knex } from 'knex';
import { GroupCommit } from '../batch';
import {
  ConflictError,
  UnavailableError,
  countResponses,
  describeShare,
  pendingState,
  planWaves,
  type Rollout,
  selectorText,
  type Selector,
  type Share,
  type DependencyPolicy,
  type TaskRef,
  refText,
} from '../domain';
import {
  asStoreError,
  insertReturning,
  isDuplicateKey,
  supportsReturning,
  withTransaction,
  type Db,
} from './db';
import { stateToRow } from './locked-tasks';
import {
  parseJsonColumn,
  taskEndpoints,
  type OutboxBody,
  type ResponseRow,
  type TaskRow,
} from './rows';
import { findTaskRow } from './task-queries';

export interface NewTask {
  type: string;
  identifier: string;
  payload: unknown;
  /** addressed endpoints, or null for a broadcast to every subscriber */
  endpoints: string[] | null;
  deliverBy: Date;
  executionTimeoutMs: number;
  now: Date;
  /** the relay leaves the outbox row alone this long, while the request publishes it itself */
  outboxDelayMs: number;
  /** send in waves, or null for all at once */
  rollout?: Rollout | null;
  /** DONE endpoints that decide the task DONE, or null for all */
  successThreshold?: Share | null;
  /** 0 (routine) to 9 (most urgent); absent: 0 */
  priority?: number;
  /** the selector the endpoints were picked from the fleet by, kept for display */
  selector?: Selector | null;
  /**
   * hold the task SCHEDULED until then: no outbox row and no delivery deadline on its rows
   * until the scheduler releases it; its delivery window starts at the release
   */
  notBefore?: Date | null;
  /** hold the task WAITING until these stored tasks are final, in this order */
  after?: ReadonlyArray<TaskRef & { id: number }> | null;
  /** what a dependency that did not end DONE does to it (with `after`) */
  onDependencyFailure?: DependencyPolicy;
}

/** What the first publish of a task sends: its first wave, or all it addresses. */
export type FirstPublication = Extract<OutboxBody, { kind: 'task' }>;

export interface CreateResult {
  task: TaskRow;
  /** false when an identical task with this identifier already existed */
  created: boolean;
  /** a new task's first publish, and the outbox row that stands for it until confirmed */
  publication: FirstPublication;
  outboxId: number | null;
}

const INSERT_CHUNK = 500;

function sameEndpoints(a: string[] | null, b: string[] | null): boolean {
  if (a === null || b === null) return a === b;
  return isDeepStrictEqual([...a].sort(), [...b].sort());
}

/** The wave of each addressed endpoint, in their order: all 1 without a rollout. */
function wavesOf(input: NewTask): number[] {
  const count = input.endpoints?.length ?? 0;
  return input.rollout == null
    ? new Array<number>(count).fill(1)
    : planWaves(count, input.rollout.batch);
}

function firstPublication(input: NewTask): FirstPublication {
  const waves = wavesOf(input);
  const endpoints =
    input.rollout == null ? null : (input.endpoints ?? []).filter((_, i) => waves[i] === 1);
  return { kind: 'task', round: 1, wave: 1, endpoints };
}

/** Held WAITING until dependencies are final. */
const isWaiting = (input: NewTask): boolean => (input.after?.length ?? 0) > 0;
/** Held (WAITING, or SCHEDULED until a due time), rather than published at once. */
const isDelayed = (input: NewTask): boolean => input.notBefore != null || isWaiting(input);

/** `after` as stored and shown: its `<type>/<identifier>` list. */
const afterText = (input: NewTask): string | null =>
  isWaiting(input) ? JSON.stringify((input.after ?? []).map(refText)) : null;

function taskRow(input: NewTask): Omit<TaskRow, 'id'> {
  const pending = (input.endpoints ?? []).map(() => ({
    status: 'PENDING' as const,
    expected: true,
  }));
  const waitMs = Math.max(0, input.deliverBy.getTime() - input.now.getTime());
  // until released, a delayed task's deadline is where it would be if released on time
  const deliverBy =
    input.notBefore == null ? input.deliverBy : new Date(input.notBefore.getTime() + waitMs);
  return {
    type: input.type,
    identifier: input.identifier,
    status: isWaiting(input) ? 'WAITING' : isDelayed(input) ? 'SCHEDULED' : 'CREATED',
    payload: JSON.stringify(input.payload ?? null),
    endpoints: input.endpoints === null ? null : JSON.stringify(input.endpoints),
    counts: JSON.stringify(countResponses(pending)),
    execution_timeout_ms: input.executionTimeoutMs,
    created_at: input.now,
    sent_at: null,
    deliver_by: deliverBy,
    // the sweeper has nothing to do for a task not yet released
    sweep_at: isDelayed(input) ? null : deliverBy,
    finished_at: null,
    updated_at: input.now,
    version: 0,
    round: 1,
    wait_ms: waitMs,
    rollout: input.rollout == null ? null : JSON.stringify(input.rollout),
    wave: 1,
    success_threshold:
      input.successThreshold == null ? null : describeShare(input.successThreshold),
    cancel_reason: null,
    stopped_reason: null,
    priority: input.priority ?? 0,
    selector: input.selector == null ? null : selectorText(input.selector),
    not_before: input.notBefore ?? null,
    after: afterText(input),
    on_dependency_failure: isWaiting(input) ? (input.onDependencyFailure ?? 'cancel') : null,
    dependencies: null,
  };
}

function pendingResponses(taskId: number, input: NewTask): ResponseRow[] {
  const pending = pendingState();
  const waves = wavesOf(input);
  return (input.endpoints ?? []).map((endpoint, i) => {
    const wave = waves[i] ?? 1;
    return stateToRow(
      {
        task_id: taskId,
        endpoint,
        expected: true,
        round: 1,
        wave,
        // a later wave's deadline starts when the wave is sent, a delayed task's at its release
        deliver_by: wave === 1 && !isDelayed(input) ? input.deliverBy : null,
        cancel_requested_at: null,
        cancel_reason: null,
      },
      pending,
      input.now,
    );
  });
}

function outboxRow(taskId: number, input: NewTask): { task_id: number } & Record<string, unknown> {
  return {
    task_id: taskId,
    kind: 'task',
    body: JSON.stringify(firstPublication(input)),
    attempts: 0,
    next_attempt_at: new Date(input.now.getTime() + input.outboxDelayMs),
    last_error: null,
    created_at: input.now,
  };
}

async function insertChunked(
  trx: Knex.Transaction,
  table: string,
  rows: readonly object[],
): Promise<void> {
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    await trx(table).insert(rows.slice(i, i + INSERT_CHUNK));
  }
}

/**
 * Write new tasks, their PENDING response rows and outbox rows in one transaction, with one
 * multi-row INSERT per table. All or nothing: a duplicate identifier fails the whole group.
 */
async function insertTasks(
  db: Db,
  inputs: readonly NewTask[],
  rows: ReadonlyArray<Omit<TaskRow, 'id'>> = inputs.map(taskRow),
): Promise<CreateResult[]> {
  return withTransaction(db, (trx) => writeNewTasks(trx, inputs, rows));
}

/** Write new tasks inside a transaction the caller holds (a schedule's run is one). */
export async function writeNewTasks(
  trx: Knex.Transaction,
  inputs: readonly NewTask[],
  rows: ReadonlyArray<Omit<TaskRow, 'id'>> = inputs.map(taskRow),
): Promise<CreateResult[]> {
  // asked once per pool; the answer picks how ids come back for tasks and outbox rows alike
  const returning = await supportsReturning(trx);
  const ids = await insertTaskRows(trx, rows, returning);
  const responses = inputs.flatMap((input, i) => pendingResponses(ids[i] as number, input));
  await insertChunked(trx, 'task_responses', responses);
  await insertChunked(
    trx,
    'task_dependencies',
    inputs.flatMap((input, i) =>
      (input.after ?? []).map((dependency, position) => ({
        task_id: ids[i] as number,
        depends_on_id: dependency.id,
        position,
      })),
    ),
  );
  // a held task gets its outbox row from the scheduler, when it is released
  const outboxOf = await insertOutboxRows(
    trx,
    inputs.flatMap((input, i) => (isDelayed(input) ? [] : [outboxRow(ids[i] as number, input)])),
    returning,
  );
  return rows.map((row, i) => ({
    task: { ...row, id: ids[i] as number },
    created: true,
    publication: firstPublication(inputs[i] as NewTask),
    outboxId: outboxOf.get(ids[i] as number) ?? null,
  }));
}

/**
 * Insert task rows; their ids, in their order. One statement where the database returns what it
 * inserted (`returning`: MariaDB, SQLite); else the insert and a read of the ids.
 */
async function insertTaskRows(
  trx: Knex.Transaction,
  rows: ReadonlyArray<Omit<TaskRow, 'id'>>,
  returning: boolean,
): Promise<number[]> {
  if (rows.length === 1) return ((await trx('tasks').insert(rows)) as number[]).map(Number);
  if (!returning) {
    await trx('tasks').insert(rows);
    return idsOf(trx, rows);
  }
  const returned = await insertReturning<Pick<TaskRow, 'id' | 'type' | 'identifier'>>(
    trx,
    'tasks',
    rows,
    ['id', 'type', 'identifier'],
  );
  const byKey = new Map(returned.map((row) => [taskKey(row.type, row.identifier), Number(row.id)]));
  return rows.map((row) => idOf(byKey, row));
}

type OutboxId = { id: number; task_id: number };

/** Insert new tasks' outbox rows (none of them has another yet); their ids by task id. */
async function insertOutboxRows(
  trx: Knex.Transaction,
  rows: ReadonlyArray<{ task_id: number }>,
  returning: boolean,
): Promise<Map<number, number>> {
  if (rows.length === 0) return new Map();
  const inserted: OutboxId[] = [];
  if (returning) {
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const chunk = rows.slice(i, i + INSERT_CHUNK);
      inserted.push(...(await insertReturning<OutboxId>(trx, 'outbox', chunk, ['id', 'task_id'])));
    }
  } else {
    await insertChunked(trx, 'outbox', rows);
    const taskIds = rows.map((row) => row.task_id);
    inserted.push(
      ...((await trx('outbox').select('id', 'task_id').whereIn('task_id', taskIds)) as OutboxId[]),
    );
  }
  return new Map(inserted.map((row) => [Number(row.task_id), Number(row.id)]));
}

type TaskName = Pick<TaskRow, 'type' | 'identifier'>;

/** The ids of those of these tasks that are stored, by taskKey (one range read per task type). */
async function storedIds(db: Knex, names: readonly TaskName[]): Promise<Map<string, number>> {
  const byKey = new Map<string, number>();
  for (const type of new Set(names.map((n) => n.type))) {
    const identifiers = names.filter((n) => n.type === type).map((n) => n.identifier);
    const found = (await db('tasks')
      .select('id', 'identifier')
      .where({ type })
      .whereIn('identifier', identifiers)) as Array<Pick<TaskRow, 'id' | 'identifier'>>;
    for (const row of found) byKey.set(taskKey(type, row.identifier), Number(row.id));
  }
  return byKey;
}

/** The ids of rows just inserted together, in their order. */
async function idsOf(trx: Knex.Transaction, rows: readonly TaskName[]): Promise<number[]> {
  const byKey = await storedIds(trx, rows);
  return rows.map((row) => idOf(byKey, row));
}

function idOf(byKey: ReadonlyMap<string, number>, row: TaskName): number {
  const id = byKey.get(taskKey(row.type, row.identifier));
  if (id === undefined)
    throw new Error(`task ${row.type}/${row.identifier} not found after insert`);
  return id;
}

const taskKey = (type: string, identifier: string): string => `${type}\u0000${identifier}`;

/**
 * Accept one task: write it, or, when a task with this identifier exists, return that one if
 * its payload and endpoints are the same and refuse it (409) if not.
 */
export async function createTask(db: Db, input: NewTask): Promise<CreateResult> {
  try {
    const [result] = await insertTasks(db, [input]);
    return result as CreateResult;
  } catch (err) {
    if (!isDuplicateKey(err)) throw asStoreError(err);
  }
  return existingTask(db, input);
}

async function existingTask(db: Db, input: NewTask): Promise<CreateResult> {
  const existing = await findTaskRow(db, input.type, input.identifier);
  if (existing === null) {
    throw new Error(`task ${input.type}/${input.identifier} vanished after a duplicate-key error`);
  }
  const samePayload = isDeepStrictEqual(parseJsonColumn(existing.payload), input.payload ?? null);
  const sameOptions =
    existing.after === afterText(input) &&
    existing.rollout === (input.rollout == null ? null : JSON.stringify(input.rollout)) &&
    existing.success_threshold ===
      (input.successThreshold == null ? null : describeShare(input.successThreshold)) &&
    Number(existing.priority ?? 0) === (input.priority ?? 0);
  // picked by a selector: the same selector, whatever it matches now
  const sameTargets =
    input.selector == null
      ? existing.selector === null && sameEndpoints(taskEndpoints(existing), input.endpoints)
      : existing.selector === selectorText(input.selector);
  if (!samePayload || !sameTargets || !sameOptions) {
    throw new ConflictError(
      `a ${input.type} task with identifier ${JSON.stringify(input.identifier)} already exists ` +
        'with a different payload, endpoint list or selector, rollout, success threshold or after',
    );
  }
  return { task: existing, created: false, publication: firstPublication(input), outboxId: null };
}

interface Waiting {
  input: NewTask;
  /** the row to insert, made once: its payload text also gives the group's size */
  row: Omit<TaskRow, 'id'>;
  key: string;
  rows: number;
  bytes: number;
}

export interface TaskWriterLimits {
  /** groups written at the same time */
  parallel: number;
  /** tasks in one group */
  maxTasks: number;
  /** response rows in one group (a task with more is written alone) */
  maxRows: number;
  /** payload bytes in one group, well under MariaDB's max_allowed_packet */
  maxPayloadBytes: number;
  /** tasks waiting to be written; more are refused with 503 (the database is too slow) */
  maxWaiting: number;
}

const WRITER_LIMITS: TaskWriterLimits = {
  parallel: 2,
  maxTasks: 200,
  maxRows: 5000,
  maxPayloadBytes: 4 * 1024 * 1024,
  maxWaiting: 10_000,
};

/** Tasks of a failed group written one by one at the same time, so they leave the pool some room. */
const ONE_BY_ONE_PARALLEL = 4;

type Settled = PromiseSettledResult<CreateResult>;

/**
 * Accepts tasks in groups (GroupCommit): tasks that arrive while a group is being written go
 * into the next, which writes them in one transaction with one statement per table. Under load
 * that turns some 5 round trips and a commit per task into 6 and one per group; an idle server
 * writes each task at once. A group that fails on identifiers that already exist (a client
 * retrying) answers those from the stored tasks and writes the rest as a group again; any other
 * failure writes its tasks one by one, so one task's outcome never becomes another's.
 */
export class TaskWriter {
  private readonly groups: GroupCommit<Waiting, CreateResult>;

  constructor(
    private readonly db: Db,
    private readonly limits: TaskWriterLimits = WRITER_LIMITS,
  ) {
    this.groups = new GroupCommit((group) => this.write(group), {
      parallel: limits.parallel,
      take: (waiting) => this.takeGroup(waiting),
    });
  }

  create(input: NewTask): Promise<CreateResult> {
    if (this.groups.size >= this.limits.maxWaiting) {
      return Promise.reject(
        new UnavailableError(
          'database_unavailable',
          `${this.groups.size} tasks are waiting for the database; try again shortly`,
        ),
      );
    }
    const row = taskRow(input);
    return this.groups.add({
      input,
      row,
      key: taskKey(input.type, input.identifier),
      rows: input.endpoints?.length ?? 0,
      bytes: Buffer.byteLength(row.payload),
    });
  }

  /** The next group in arrival order, within the limits; a repeated identifier waits. */
  private takeGroup(waiting: readonly Waiting[]): number[] {
    const { maxTasks, maxRows, maxPayloadBytes } = this.limits;
    const group: number[] = [];
    const keys = new Set<string>();
    let rows = 0;
    let bytes = 0;
    for (const [i, entry] of waiting.entries()) {
      if (group.length >= maxTasks) break;
      const fits =
        group.length === 0 ||
        (rows + entry.rows <= maxRows && bytes + entry.bytes <= maxPayloadBytes);
      if (!fits || keys.has(entry.key)) continue;
      group.push(i);
      keys.add(entry.key);
      rows += entry.rows;
      bytes += entry.bytes;
    }
    return group;
  }

  private async write(group: Waiting[], retry = true): Promise<Settled[]> {
    if (group.length > 1) {
      try {
        const created = await insertTasks(
          this.db,
          group.map((entry) => entry.input),
          group.map((entry) => entry.row),
        );
        return created.map((value) => ({ status: 'fulfilled', value }));
      } catch (err) {
        if (retry && isDuplicateKey(err)) {
          const stored = await storedIds(
            this.db,
            group.map((entry) => entry.row),
          ).catch(() => null);
          if (stored !== null && stored.size > 0) {
            const known = group.filter((entry) => stored.has(entry.key));
            const fresh = group.filter((entry) => !stored.has(entry.key));
            const [old, created] = await Promise.all([
              oneByOne(known, (input) => existingTask(this.db, input)),
              this.write(fresh, false),
            ]);
            const byEntry = new Map<Waiting, Settled>();
            known.forEach((entry, i) => byEntry.set(entry, old[i] as Settled));
            fresh.forEach((entry, i) => byEntry.set(entry, created[i] as Settled));
            return group.map((entry) => byEntry.get(entry) as Settled);
          }
        }
      }
    }
    return oneByOne(group, (input) => createTask(this.db, input));
  }
}

/** Each entry written on its own, a few at a time; each settles alone. */
async function oneByOne(
  entries: readonly Waiting[],
  write: (input: NewTask) => Promise<CreateResult>,
): Promise<Settled[]> {
  const settled: Settled[] = new Array<Settled>(entries.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < entries.length; i = next++) {
      const entry = entries[i] as Waiting;
      settled[i] = await write(entry.input).then(
        (value): Settled => ({ status: 'fulfilled', value }),
        (reason: unknown): Settled => ({ status: 'rejected', reason }),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(ONE_BY_ONE_PARALLEL, entries.length) }, worker));
  return settled;
}
