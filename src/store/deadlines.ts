/**
 * The sweeper's write: tasks whose `sweep_at` has come are checked for deadlines. PENDING rows
 * past the delivery deadline become UNDELIVERED; RUNNING rows silent for longer than the
 * handler's execution timeout plus a grace period become TIMED_OUT. Safe with several servers:
 * each claims its tasks with FOR UPDATE SKIP LOCKED.
 */
import { markSilentTimeout, markUndelivered, type TaskStatus } from '../domain';
import { forUpdate, withTransaction, type Db } from './db';
import type { ResponseRow, TaskRow } from './rows';
import {
  lockTasks,
  recomputeTask,
  rowToState,
  rowsByTask,
  stateToRow,
  writeRows,
  writeTaskStates,
} from './locked-tasks';

export interface SweepOutcome {
  tasks: number;
  undelivered: number;
  timedOut: number;
  finished: Array<{ id: number; status: TaskStatus }>;
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
    const outcome: SweepOutcome = { tasks: due.length, undelivered: 0, timedOut: 0, finished: [] };
    if (due.length === 0) return outcome;
    const locked = await lockTasks(
      trx,
      due.map((t) => Number(t.id)),
    );
    const rowsOf = rowsByTask(locked.rows.values());
    const changedRows: ResponseRow[] = [];
    const changedTasks: TaskRow[] = [];
    for (const task of locked.tasks.values()) {
      const changed: ResponseRow[] = [];
      const limitMs = task.execution_timeout_ms + options.timeoutGraceMs;
      const deliveryPassed = task.deliver_by.getTime() <= now.getTime();
      let nextSweep: number | null = deliveryPassed ? null : task.deliver_by.getTime();
      const rows = (rowsOf.get(Number(task.id)) ?? []).map((row) => {
        const state = rowToState(row);
        let next = deliveryPassed ? markUndelivered(state, task.deliver_by) : null;
        if (next !== null) outcome.undelivered += 1;
        // on the server's clock: an agent's clock running ahead would delay the timeout, one
        // running behind would bring it forward (rows from before last_heard_at use their event)
        const silentSince = state.lastHeardAt ?? state.lastEventAt ?? state.startTime;
        if (next === null && silentSince !== null) {
          const deadline = silentSince.getTime() + limitMs;
          if (deadline <= now.getTime()) {
            next = markSilentTimeout(state, now, limitMs);
            if (next !== null) outcome.timedOut += 1;
          } else if (state.status === 'RECEIVED' || state.status === 'RUNNING') {
            nextSweep = nextSweep === null ? deadline : Math.min(nextSweep, deadline);
          }
        }
        if (next === null) return row;
        const updated = stateToRow(row, next, now);
        changed.push(updated);
        return updated;
      });
      const before = task.status;
      changedRows.push(...changed);
      const { status, changed: taskChanged } = recomputeTask(
        task,
        rows,
        now,
        new Date(nextSweep ?? now.getTime() + limitMs),
      );
      if (taskChanged) changedTasks.push(task);
      if (status !== before) outcome.finished.push({ id: Number(task.id), status });
    }
    await writeRows(trx, changedRows);
    await writeTaskStates(trx, changedTasks);
    return outcome;
  });
}
