/**
 * What every change of a task's rows goes through (recorded results, deadlines, cancels,
 * retries, waves): lock the tasks with their rows, turn rows into domain state and back, gather
 * the changes of one transaction (rows, history, outbox rows, tasks), decide each touched task
 * again (status, counts, version, its rollout's next step), and write it all.
 * Lock order is always tasks (by id) then their response rows, so writers never deadlock.
 */
import type { Knex } from 'knex';
import {
  CANCELLED_STATE,
  aggregateStatus,
  isHeldTask,
  isTerminalResponse,
  isTerminalTask,
  nextRolloutStep,
  pendingState,
  type ResponseState,
  type ResponseStatus,
  type Rollout,
  type Share,
  type TaskStatus,
} from '../domain';
import { forUpdate } from './db';
import {
  parseJsonColumn,
  taskEndpoints,
  type HistoryRow,
  type OutboxBody,
  type OutputRow,
  type ResponseRow,
  type TaskRow,
} from './rows';

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
    outputBytes: row.output_bytes === null ? null : Number(row.output_bytes),
    nextAttemptAt: row.next_attempt_at ?? null,
  };
}

/** Where a row stands in its task, which its state does not say. */
export type Placement = Pick<
  ResponseRow,
  | 'task_id'
  | 'endpoint'
  | 'expected'
  | 'round'
  | 'wave'
  | 'deliver_by'
  | 'cancel_requested_at'
  | 'cancel_reason'
>;

export function stateToRow(base: Placement, state: ResponseState, now: Date): ResponseRow {
  return {
    task_id: base.task_id,
    endpoint: base.endpoint,
    expected: Boolean(base.expected),
    round: base.round,
    wave: base.wave,
    deliver_by: base.deliver_by,
    cancel_requested_at: base.cancel_requested_at,
    cancel_reason: base.cancel_reason,
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
    output_bytes: state.outputBytes,
    next_attempt_at: state.nextAttemptAt,
  };
}

/** The row of an endpoint that answered a task without being addressed. */
export function newUnexpectedRow(task: TaskRow, endpoint: string, now: Date): ResponseRow {
  return stateToRow(
    {
      task_id: Number(task.id),
      endpoint,
      expected: false,
      round: task.round,
      wave: task.wave,
      deliver_by: task.deliver_by,
      cancel_requested_at: null,
      cancel_reason: null,
    },
    pendingState(),
    now,
  );
}

/** A row as history keeps it when its round or attempt is closed. */
export function historyOf(row: ResponseRow, now: Date): HistoryRow {
  return {
    task_id: Number(row.task_id),
    endpoint: row.endpoint,
    round: row.round,
    attempt: row.attempt,
    status: row.status,
    errnr: row.errnr,
    errmsg: row.errmsg,
    payload: row.payload,
    progress: row.progress,
    agent: row.agent,
    start_time: row.start_time,
    finished_at: row.finished_at,
    recorded_at: now,
    output_bytes: row.output_bytes,
  };
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
  'round',
  'wave',
  'deliver_by',
  'cancel_requested_at',
  'cancel_reason',
  'output_bytes',
  'next_attempt_at',
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

/** The task's rollout, or null. */
export function taskRollout(task: Pick<TaskRow, 'rollout'>): Rollout | null {
  return parseJsonColumn<Rollout>(task.rollout);
}

/** The task's success threshold ("90%" or "5"), or null for all. */
export function taskThreshold(task: Pick<TaskRow, 'success_threshold'>): Share | null {
  const text = task.success_threshold;
  if (text === null) return null;
  return text.endsWith('%') ? { percent: Number(text.slice(0, -1)) } : { count: Number(text) };
}

/** An outbox row to insert: what to publish for a task, and not before when. */
export interface OutboxInsert {
  task_id: number;
  body: OutboxBody;
  next_attempt_at: Date;
}

/** Everything one transaction changes, written together by `commitChanges`. */
export class Changes {
  readonly rows = new Map<string, ResponseRow>();
  readonly history: HistoryRow[] = [];
  readonly outbox: OutboxInsert[] = [];
  /** what finished runs printed */
  readonly outputs: OutputRow[] = [];
  readonly tasks = new Set<TaskRow>();
  /** tasks whose rows changed: their version grows */
  readonly touched = new Set<number>();
  /** each changed row's status when the transaction found it (absent: a row it made) */
  private readonly rowStatusBefore = new Map<string, ResponseStatus>();
  /** each settled task's status when the transaction found it */
  private readonly taskStatusBefore = new Map<number, TaskStatus>();

  /** A row changed; `before` is the row as the transaction found it (none for a new row). */
  row(row: ResponseRow, before?: Pick<ResponseRow, 'status'>): void {
    const key = rowKey(Number(row.task_id), row.endpoint);
    if (!this.rows.has(key) && before !== undefined) this.rowStatusBefore.set(key, before.status);
    this.rows.set(key, row);
    this.touched.add(Number(row.task_id));
  }

  /** The task's status as the transaction found it, before settleTask decides it again. */
  taskFoundAs(taskId: number, status: TaskStatus): void {
    if (!this.taskStatusBefore.has(taskId)) this.taskStatusBefore.set(taskId, status);
  }

  /** Each task that changed, as now stored, with its rows that changed. */
  summary(): TaskChange[] {
    return [...this.tasks].map((task) => {
      const taskId = Number(task.id);
      const rows = [...this.rows.values()].filter((row) => Number(row.task_id) === taskId);
      const before = this.taskStatusBefore.get(taskId);
      const rowsBefore = new Map<string, ResponseStatus>();
      for (const row of rows) {
        const status = this.rowStatusBefore.get(rowKey(taskId, row.endpoint));
        if (status !== undefined) rowsBefore.set(row.endpoint, status);
      }
      return {
        task,
        rows,
        ...(before === undefined ? {} : { statusBefore: before }),
        rowStatusBefore: rowsBefore,
      };
    });
  }
}

/** A task as a transaction left it, with the rows of it that changed. */
export interface TaskChange {
  task: TaskRow;
  rows: ResponseRow[];
  /**
   * The task's status before the transaction, where it decided the task again (results,
   * deadlines, cancels, retries); absent where a change only publishes or creates it.
   */
  statusBefore?: TaskStatus;
  /** the status of each changed row before the transaction, by endpoint (absent: a new row) */
  rowStatusBefore?: ReadonlyMap<string, ResponseStatus>;
}

/**
 * Decide a locked task again from all its rows (`rows` is updated in place when a stopped
 * rollout cancels the waves it did not send): its rollout's next step, status, counts, version
 * and sweep time. Changes go into `changes`; returns the status.
 */
export function settleTask(
  task: TaskRow,
  rows: ResponseRow[],
  changes: Changes,
  now: Date,
  nextSweepAt: Date | null,
): TaskStatus {
  const taskId = Number(task.id);
  const before = { ...task };
  changes.taskFoundAs(taskId, task.status);
  const rollout = taskRollout(task);
  if (rollout !== null && task.stopped_reason === null && !isTerminalTask(task.status)) {
    const current = rows.filter((row) => row.round === task.round && row.expected);
    const step = nextRolloutStep(current, task.wave, rollout, current.length);
    if (step.kind === 'next') {
      task.wave = step.wave;
      const endpoints = current.filter((row) => row.wave === step.wave).map((row) => row.endpoint);
      changes.outbox.push({
        task_id: taskId,
        body: { kind: 'task', round: task.round, wave: step.wave, endpoints },
        next_attempt_at: new Date(now.getTime() + rollout.pauseMs),
      });
    } else if (step.kind === 'stop') {
      task.stopped_reason = step.reason;
      rows.forEach((row, i) => {
        if (row.round !== task.round || row.wave <= task.wave || row.status !== 'PENDING') return;
        const cancelled = stateToRow(
          row,
          { ...rowToState(row), ...CANCELLED_STATE, errmsg: step.reason, finishedAt: now },
          now,
        );
        rows[i] = cancelled;
        changes.row(cancelled, row);
      });
    }
  }
  const addressed = taskEndpoints(task) !== null;
  const { status, counts } = aggregateStatus({
    current: task.status,
    addressed,
    deadlinePassed: task.deliver_by.getTime() <= now.getTime(),
    responses: rows.map((r) => ({ status: r.status, expected: Boolean(r.expected) })),
    successThreshold: taskThreshold(task),
    stopped: task.stopped_reason !== null,
  });
  const terminal = isTerminalTask(status);
  const countsText = JSON.stringify(counts);
  const sweepAt = terminal ? null : (nextSweepAt ?? task.sweep_at);
  task.status = status;
  task.counts = countsText;
  if (terminal && task.finished_at === null) task.finished_at = now;
  // a task decided while still held (cancelled before its time) was never sent
  if (status !== 'CREATED' && !isHeldTask(before.status) && task.sent_at === null) {
    task.sent_at = now;
  }
  task.sweep_at = sweepAt;
  const changed =
    changes.touched.has(taskId) ||
    TASK_STATE_COLUMNS.some((column) => !sameValue(before[column], task[column]));
  if (changed) {
    task.version = before.version + 1;
    task.updated_at = now;
    changes.tasks.add(task);
  }
  return status;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  return a === b;
}

/** Whether every row of the task's latest round is final. */
export function allFinal(rows: readonly ResponseRow[]): boolean {
  return rows.every((row) => isTerminalResponse(row.status));
}

const TASK_STATE_COLUMNS = [
  'status',
  'counts',
  'sent_at',
  'deliver_by',
  'sweep_at',
  'finished_at',
  'updated_at',
  'version',
  'round',
  'wave',
  'cancel_reason',
  'stopped_reason',
] as const satisfies ReadonlyArray<keyof TaskRow>;
const TASK_STATE_CHUNK = 100;

/**
 * Store the state columns of settled tasks: one UPDATE … SET col = CASE id … END per hundred
 * tasks instead of a statement (and a round trip) per task.
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

/** Write everything a transaction changed. */
export async function commitChanges(trx: Knex.Transaction, changes: Changes): Promise<void> {
  await writeRows(trx, [...changes.rows.values()]);
  if (changes.history.length > 0) await trx('response_history').insert(changes.history);
  // one row a run: a duplicate finished event keeps the first
  for (const output of changes.outputs) {
    await trx('response_outputs')
      .insert(output)
      .onConflict(['task_id', 'endpoint', 'round', 'attempt'])
      .ignore();
  }
  if (changes.outbox.length > 0) {
    await trx('outbox').insert(
      changes.outbox.map((entry) => ({
        task_id: entry.task_id,
        kind: entry.body.kind,
        body: JSON.stringify(entry.body),
        attempts: 0,
        next_attempt_at: entry.next_attempt_at,
        last_error: null,
        created_at: entry.next_attempt_at,
      })),
    );
  }
  await writeTaskStates(trx, [...changes.tasks]);
}
