/**
 * Shared by the recorder and the sweeper: convert response rows to domain state and back, lock a
 * set of tasks with their rows, write changed rows, and recompute task status.
 * Lock order is always tasks (by id) then their response rows, so the two never deadlock.
 */
import type { Knex } from 'knex';
import {
  aggregateStatus,
  isTerminalTask,
  pendingState,
  type ResponseState,
  type TaskStatus,
} from '../domain';
import { forUpdate } from './db';
import { parseJsonColumn, taskEndpoints, type ResponseRow, type TaskRow } from './rows';

export function rowToState(row: ResponseRow): ResponseState {
  return {
    status: row.status,
    errnr: row.errnr,
    errmsg: row.errmsg,
    payload: parseJsonColumn(row.payload),
    progress: parseJsonColumn(row.progress),
    attempt: row.attempt,
    agent: parseJsonColumn(row.agent),
    startTime: row.start_time,
    lastEventAt: row.last_event_at,
    lastHeardAt: row.last_heard_at,
    finishedAt: row.finished_at,
  };
}

export function stateToRow(
  base: Pick<ResponseRow, 'task_id' | 'endpoint' | 'expected'>,
  state: ResponseState,
  now: Date,
): ResponseRow {
  return {
    task_id: base.task_id,
    endpoint: base.endpoint,
    expected: Boolean(base.expected),
    status: state.status,
    errnr: state.errnr,
    errmsg: state.errmsg,
    payload: state.payload === null ? null : JSON.stringify(state.payload),
    progress: state.progress === null ? null : JSON.stringify(state.progress),
    attempt: state.attempt,
    agent: state.agent === null ? null : JSON.stringify(state.agent),
    start_time: state.startTime,
    last_event_at: state.lastEventAt,
    last_heard_at: state.lastHeardAt,
    finished_at: state.finishedAt,
    last_modified_time: now,
  };
}

export function newUnexpectedRow(taskId: number, endpoint: string, now: Date): ResponseRow {
  return stateToRow({ task_id: taskId, endpoint, expected: false }, pendingState(), now);
}

export const rowKey = (taskId: number, endpoint: string): string => `${taskId}\u0000${endpoint}`;

export interface LockedTasks {
  tasks: Map<number, TaskRow>;
  rows: Map<string, ResponseRow>;
}

/** SELECT … FOR UPDATE the tasks and all their response rows (SQLite: no locks needed). */
export async function lockTasks(trx: Knex.Transaction, taskIds: number[]): Promise<LockedTasks> {
  const ids = [...new Set(taskIds)].sort((a, b) => a - b);
  const tasks = (await forUpdate(trx, trx('tasks').whereIn('id', ids).orderBy('id'))) as TaskRow[];
  const found = tasks.map((t) => Number(t.id));
  const rows =
    found.length === 0
      ? []
      : ((await forUpdate(
          trx,
          trx('task_responses').whereIn('task_id', found).orderBy(['task_id', 'id']),
        )) as ResponseRow[]);
  return {
    tasks: new Map(tasks.map((t) => [Number(t.id), t])),
    rows: new Map(rows.map((r) => [rowKey(Number(r.task_id), r.endpoint), r])),
  };
}

/** Response rows grouped by their task's id, in the order given. */
export function rowsByTask(rows: Iterable<ResponseRow>): Map<number, ResponseRow[]> {
  const byTask = new Map<number, ResponseRow[]>();
  for (const row of rows) {
    const taskId = Number(row.task_id);
    const list = byTask.get(taskId);
    if (list === undefined) byTask.set(taskId, [row]);
    else list.push(row);
  }
  return byTask;
}

const UPSERT_CHUNK = 500;
/**
 * Bytes of one statement, about. MySQL refuses a statement over max_allowed_packet (4 MiB by
 * default on MySQL 5.7, 16 MiB on MariaDB, 64 MiB on MySQL 8), and the refusal would repeat for
 * as long as the batch did; a row over this budget goes alone (a payload is at most 1 MiB).
 */
const UPSERT_CHUNK_BYTES = 2 * 1024 * 1024;
/** a row's columns besides its texts, escaped, with room to spare */
const ROW_OVERHEAD_BYTES = 400;

const UPDATABLE_COLUMNS = [
  'status',
  'errnr',
  'errmsg',
  'payload',
  'progress',
  'attempt',
  'agent',
  'start_time',
  'last_event_at',
  'last_heard_at',
  'finished_at',
  'last_modified_time',
] as const;

/** Write changed rows (new unexpected ones included) in as few statements as possible. */
export async function writeRows(trx: Knex.Transaction, rows: ResponseRow[]): Promise<void> {
  for (const chunk of upsertChunks(rows)) {
    await trx('task_responses')
      .insert(chunk.map(({ id: _id, ...rest }) => rest))
      .onConflict(['task_id', 'endpoint'])
      .merge([...UPDATABLE_COLUMNS]);
  }
}

/** Rows in statement-sized groups: at most UPSERT_CHUNK rows and about UPSERT_CHUNK_BYTES. */
function upsertChunks(rows: readonly ResponseRow[]): ResponseRow[][] {
  const chunks: ResponseRow[][] = [];
  let chunk: ResponseRow[] = [];
  let bytes = 0;
  for (const row of rows) {
    const size = rowBytes(row);
    if (chunk.length > 0 && (chunk.length >= UPSERT_CHUNK || bytes + size > UPSERT_CHUNK_BYTES)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(row);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * A row's size in a statement, at most: its texts as UTF-16 code units times 3 (the most UTF-8
 * or escaping needs for one), and the rest.
 */
function rowBytes(row: ResponseRow): number {
  const chars =
    (row.payload?.length ?? 0) +
    (row.errmsg?.length ?? 0) +
    (row.progress?.length ?? 0) +
    (row.agent?.length ?? 0);
  return chars * 3 + ROW_OVERHEAD_BYTES;
}

/**
 * Recompute one locked task's status and counts from all its rows. Changes are applied to `task`
 * in memory and reported by `changed`; `writeTaskStates` stores them.
 */
export function recomputeTask(
  task: TaskRow,
  rows: ResponseRow[],
  now: Date,
  nextSweepAt: Date | null,
): { status: TaskStatus; changed: boolean } {
  const addressed = taskEndpoints(task) !== null;
  const { status, counts } = aggregateStatus({
    current: task.status,
    addressed,
    deadlinePassed: task.deliver_by.getTime() <= now.getTime(),
    responses: rows.map((r) => ({ status: r.status, expected: Boolean(r.expected) })),
  });
  const terminal = isTerminalTask(status);
  const countsText = JSON.stringify(counts);
  const sweepAt = terminal ? null : (nextSweepAt ?? task.sweep_at);
  const changes: Partial<TaskRow> = {};
  if (status !== task.status) changes.status = status;
  if (countsText !== task.counts) changes.counts = countsText;
  if (terminal && task.finished_at === null) changes.finished_at = now;
  if (status !== 'CREATED' && task.sent_at === null) changes.sent_at = now;
  if ((sweepAt?.getTime() ?? null) !== (task.sweep_at?.getTime() ?? null))
    changes.sweep_at = sweepAt;
  if (Object.keys(changes).length === 0) return { status, changed: false };
  changes.updated_at = now;
  Object.assign(task, changes);
  return { status, changed: true };
}

const TASK_STATE_COLUMNS = [
  'status',
  'counts',
  'sent_at',
  'sweep_at',
  'finished_at',
  'updated_at',
] as const satisfies ReadonlyArray<keyof TaskRow>;
const TASK_STATE_CHUNK = 100;

/**
 * Store the status columns of recomputed tasks: one UPDATE … SET col = CASE id … END per
 * hundred tasks instead of a statement (and a round trip) per task.
 */
export async function writeTaskStates(trx: Knex.Transaction, tasks: TaskRow[]): Promise<void> {
  for (let i = 0; i < tasks.length; i += TASK_STATE_CHUNK) {
    const chunk = tasks.slice(i, i + TASK_STATE_CHUNK);
    const bindings: Knex.Value[] = [];
    const sets = TASK_STATE_COLUMNS.map((column) => {
      const cases = chunk.map((task) => {
        bindings.push(task.id, task[column]);
        return 'WHEN ? THEN ?';
      });
      return `${column} = CASE id ${cases.join(' ')} ELSE ${column} END`;
    });
    for (const task of chunk) bindings.push(task.id);
    const ids = chunk.map(() => '?').join(', ');
    await trx.raw(`UPDATE tasks SET ${sets.join(', ')} WHERE id IN (${ids})`, bindings);
  }
}
