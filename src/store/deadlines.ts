/**
 * The sweeper's write: tasks whose `sweep_at` has come are checked for deadlines. A PENDING
 * row past its delivery deadline becomes UNDELIVERED; a RECEIVED, RUNNING or RETRYING row silent for
 * longer than the handler's execution timeout plus a grace period becomes TIMED_OUT; one whose
 * cancel its endpoint did not answer within the grace period becomes CANCELLED. Safe with
 * several servers: each claims its tasks with FOR UPDATE SKIP LOCKED.
 */
import {
  isWorking,
  markSilentTimeout,
  markUndelivered,
  type ResponseState,
  type TaskStatus,
} from '../domain';
import { forUpdate, withTransaction, type Db } from './db';
import {
  Changes,
  commitChanges,
  lockTasks,
  rowToState,
  rowsByTask,
  settleTask,
  stateToRow,
  type TaskChange,
} from './locked-tasks';
import type { ResponseRow, TaskRow } from './rows';

export interface SweepOutcome {
  tasks: number;
  undelivered: number;
  timedOut: number;
  cancelled: number;
  finished: Array<{ id: number; status: TaskStatus }>;
  /** the tasks that changed, as now stored, with their rows that changed */
  changed: TaskChange[];
}

/** What a row's deadlines make of it at `now`, and when to look at it next (null: never). */
function sweepRow(
  row: ResponseRow,
  task: TaskRow,
  now: Date,
  timeoutGraceMs: number,
): {
  next: ResponseState | null;
  kind: 'undelivered' | 'timedOut' | 'cancelled' | null;
  due: number | null;
} {
  const state = rowToState(row);
  const at = now.getTime();
  if (state.status === 'PENDING') {
    // a row whose wave or round waits to be sent has no deadline yet
    if (row.deliver_by === null) return { next: null, kind: null, due: null };
    if (row.deliver_by.getTime() > at) {
      return { next: null, kind: null, due: row.deliver_by.getTime() };
    }
    return { next: markUndelivered(state, row.deliver_by), kind: 'undelivered', due: null };
  }
  if (!isWorking(state.status)) {
    return { next: null, kind: null, due: null };
  }
  if (row.cancel_requested_at !== null) {
    const due = row.cancel_requested_at.getTime() + timeoutGraceMs;
    if (due > at) return { next: null, kind: null, due };
    const reason = row.cancel_reason ?? 'cancelled';
    return {
      next: {
        ...state,
        status: 'CANCELLED',
        errmsg: `${reason} (the endpoint did not confirm the cancel within ${Math.round(timeoutGraceMs / 1000)} s)`,
        finishedAt: now,
      },
      kind: 'cancelled',
      due: null,
    };
  }
  const limitMs = task.execution_timeout_ms + timeoutGraceMs;
  // on the server's clock: an agent's clock running ahead would delay the timeout, one
  // running behind would bring it forward (rows from before last_heard_at use their event)
  const silentSince = state.lastHeardAt ?? state.lastEventAt ?? state.startTime;
  if (silentSince === null) return { next: null, kind: null, due: null };
  const due = silentSince.getTime() + limitMs;
  if (due > at) return { next: null, kind: null, due };
  return { next: markSilentTimeout(state, now, limitMs), kind: 'timedOut', due: null };
}

export async function sweepDeadlines(
  db: Db,
  options: { now?: Date; limit?: number; timeoutGraceMs: number },
): Promise<SweepOutcome> {
  const now = options.now ?? new Date();
  return withTransaction(db, async (trx) => {
    const due = (await forUpdate(
      trx,
      trx('tasks')
        .select('id')
        .where('sweep_at', '<=', now)
        .orderBy('sweep_at')
        .limit(options.limit ?? 100),
      { skipLocked: true },
    )) as Array<Pick<TaskRow, 'id'>>;
    const outcome: SweepOutcome = {
      tasks: due.length,
      undelivered: 0,
      timedOut: 0,
      cancelled: 0,
      finished: [],
      changed: [],
    };
    if (due.length === 0) return outcome;
    const locked = await lockTasks(
      trx,
      due.map((t) => Number(t.id)),
    );
    const rowsOf = rowsByTask(locked.rows.values());
    const changes = new Changes();
    for (const task of locked.tasks.values()) {
      // an open broadcast is decided at its delivery deadline
      let nextSweep: number | null =
        task.deliver_by.getTime() > now.getTime() ? task.deliver_by.getTime() : null;
      const rows = (rowsOf.get(Number(task.id)) ?? []).map((row) => {
        const swept = sweepRow(row, task, now, options.timeoutGraceMs);
        if (swept.due !== null) nextSweep = Math.min(nextSweep ?? swept.due, swept.due);
        if (swept.next === null || swept.kind === null) return row;
        outcome[swept.kind] += 1;
        const updated = stateToRow(row, swept.next, now);
        changes.row(updated, row);
        return updated;
      });
      const before = task.status;
      const limitMs = task.execution_timeout_ms + options.timeoutGraceMs;
      const status = settleTask(
        task,
        rows,
        changes,
        now,
        new Date(nextSweep ?? now.getTime() + limitMs),
      );
      if (status !== before) outcome.finished.push({ id: Number(task.id), status });
    }
    await commitChanges(trx, changes);
    outcome.changed = changes.summary();
    return outcome;
  });
}
