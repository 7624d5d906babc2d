/**
 * What an operator does to a task after it was created: cancel it (or some of its endpoints),
 * and retry the endpoints that did not succeed as a new round. Each is one transaction that
 * changes the rows and writes to the outbox what the agents must be told (a cancel, the new
 * round), so a server that dies after answering loses nothing: the relay publishes it.
 * Both are idempotent: the same request again changes nothing more.
 */
import {
  CANCELLED_STATE,
  ConflictError,
  ValidationError,
  isHeldTask,
  isTerminalResponse,
  isTerminalTask,
  pendingState,
  type ResponseStatus,
} from '../domain';
import { withTransaction, type Db } from './db';
import {
  Changes,
  commitChanges,
  historyOf,
  lockTasks,
  rowToState,
  settleTask,
  stateToRow,
  type TaskChange,
} from './locked-tasks';
import type { ResponseRow, TaskRow } from './rows';

export interface ActionOutcome {
  task: TaskRow;
  /** false when the request changed nothing (already cancelled, already retried) */
  changed: boolean;
  changes: TaskChange[];
}

/** Outcomes a retry runs again by default: everything final but DONE. */
const RETRIED_BY_DEFAULT: ReadonlySet<ResponseStatus> = new Set([
  'FAILED',
  'TIMED_OUT',
  'UNDELIVERED',
  'CANCELLED',
]);

async function lockOne(trx: Parameters<typeof lockTasks>[0], taskId: number) {
  const locked = await lockTasks(trx, [taskId]);
  const task = locked.tasks.get(taskId);
  if (task === undefined) throw new Error(`task ${taskId} vanished`);
  const rows = [...locked.rows.values()];
  return { task, rows };
}

/** The rows `endpoints` name (null: all), each of which must be the task's. */
function named(rows: readonly ResponseRow[], endpoints: readonly string[] | null): ResponseRow[] {
  if (endpoints === null) return [...rows];
  return endpoints.map((endpoint, i) => {
    const row = rows.find((candidate) => candidate.endpoint === endpoint);
    if (row === undefined) {
      throw new ValidationError(
        `endpoints[${i}] ${JSON.stringify(endpoint)} is not an endpoint of this task`,
        `endpoints[${i}]`,
      );
    }
    return row;
  });
}

/**
 * Cancel the task's endpoints that are not final yet (all, or those named): one that has not
 * received the task is CANCELLED at once; one running it is asked to stop, and reports
 * CANCELLED (or DONE, if it finished first) — the sweeper cancels it if it does not answer. A
 * cancel goes to the agents through the outbox. A final task is left as it is. A task not yet
 * released (SCHEDULED) is never published once cancelled as a whole.
 */
export async function cancelTask(
  db: Db,
  taskId: number,
  request: { endpoints: string[] | null; reason: string },
  now = new Date(),
): Promise<ActionOutcome> {
  return withTransaction(db, async (trx) => {
    const { task, rows } = await lockOne(trx, taskId);
    const targets = named(rows, request.endpoints).filter(
      (row) => !isTerminalResponse(row.status) && row.cancel_requested_at === null,
    );
    // a task not released yet is cancelled as a whole, rows or not (a broadcast has none)
    const wholeHeld = isHeldTask(task.status) && request.endpoints === null;
    if (isTerminalTask(task.status) || (targets.length === 0 && !wholeHeld)) {
      return { task, changed: false, changes: [] };
    }
    const changes = new Changes();
    const tell: string[] = [];
    const reason = `cancelled: ${request.reason}`;
    const current = rows.map((row) => {
      if (!targets.includes(row)) return row;
      // a copy may wait in its queue (sent), or a run go on (received): its agent is told
      if (row.deliver_by !== null || row.status !== 'PENDING') tell.push(row.endpoint);
      const updated =
        row.status === 'PENDING'
          ? stateToRow(
              row,
              { ...rowToState(row), ...CANCELLED_STATE, errmsg: reason, finishedAt: now },
              now,
            )
          : { ...row, cancel_requested_at: now, cancel_reason: reason, last_modified_time: now };
      changes.row(updated, row);
      return updated;
    });
    if (request.endpoints === null) task.cancel_reason = request.reason;
    if (wholeHeld) changes.touched.add(taskId);
    if (tell.length > 0) {
      changes.outbox.push({
        task_id: taskId,
        body: {
          kind: 'cancel',
          round: task.round,
          endpoints: request.endpoints === null ? null : tell,
          reason: request.reason,
        },
        next_attempt_at: now,
      });
    }
    settleTask(task, current, changes, now, null);
    if (wholeHeld) {
      // never published: nothing to tell the agents, nothing left for the scheduler
      Object.assign(task, { status: 'CANCELLED', finished_at: task.finished_at ?? now });
    }
    await commitChanges(trx, changes);
    return { task, changed: true, changes: changes.summary() };
  });
}

/**
 * Run again, as a new round, the task's endpoints that did not succeed (FAILED, TIMED_OUT,
 * UNDELIVERED, CANCELLED), or those named. Their outcomes so far go to the history; the task is
 * decided again from each endpoint's latest round. Only a final task is retried; a retry
 * request while the round it opened runs (`round` says which round it retries, the latest
 * final one by default) changes nothing, so two clients pressing "retry" make one round.
 */
export async function retryTask(
  db: Db,
  taskId: number,
  request: { endpoints: string[] | null; round: number | null },
  now = new Date(),
): Promise<ActionOutcome> {
  return withTransaction(db, async (trx) => {
    const { task, rows } = await lockOne(trx, taskId);
    const from = request.round ?? (isTerminalTask(task.status) ? task.round : task.round - 1);
    if (!isTerminalTask(task.status)) {
      // the round this request means to retry was retried already: nothing more to do
      if (task.round > 1 && from === task.round - 1) return { task, changed: false, changes: [] };
      throw new ConflictError(
        `the task is ${task.status}: retry it once it is final`,
        'task_not_final',
      );
    }
    if (from !== task.round) {
      throw new ConflictError(
        `round ${from} is not the task's latest (${task.round})`,
        'round_not_latest',
      );
    }
    const chosen = named(rows, request.endpoints);
    if (request.endpoints !== null) {
      const done = chosen.find((row) => row.status === 'DONE');
      if (done !== undefined) {
        throw new ConflictError(
          `${done.endpoint} is DONE: only endpoints that did not succeed are retried`,
          'nothing_to_retry',
        );
      }
    }
    const targets = chosen.filter((row) => RETRIED_BY_DEFAULT.has(row.status));
    if (targets.length === 0) {
      throw new ConflictError(
        'nothing to retry: every endpoint named is DONE or still running',
        'nothing_to_retry',
      );
    }
    const round = task.round + 1;
    const changes = new Changes();
    const current = rows.map((row) => {
      if (!targets.includes(row)) return row;
      changes.history.push(historyOf(row, now));
      const fresh = stateToRow(
        {
          ...row,
          round,
          wave: 1,
          deliver_by: null,
          cancel_requested_at: null,
          cancel_reason: null,
        },
        pendingState(),
        now,
      );
      changes.row(fresh, row);
      return fresh;
    });
    Object.assign(task, {
      round,
      wave: 1,
      status: 'CREATED',
      finished_at: null,
      cancel_reason: null,
      stopped_reason: null,
    });
    changes.outbox.push({
      task_id: taskId,
      body: { kind: 'task', round, wave: 1, endpoints: targets.map((row) => row.endpoint) },
      next_attempt_at: now,
    });
    settleTask(task, current, changes, now, null);
    await commitChanges(trx, changes);
    return { task, changed: true, changes: changes.summary() };
  });
}
