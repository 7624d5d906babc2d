/**
 * The scheduler's write: delayed tasks whose `not_before` has come are released. In one
 * transaction per batch, the due SCHEDULED tasks are claimed (FOR UPDATE SKIP LOCKED, so several
 * servers share them and none releases a task twice), become CREATED with their delivery
 * deadline starting now, and get the outbox row of their first publish, which the relay then
 * publishes with confirms. A crash before the commit leaves them SCHEDULED for the next pass.
 */
import { isTerminalResponse } from '../domain';
import { forUpdate, withTransaction, type Db } from './db';
import {
  Changes,
  commitChanges,
  lockTasks,
  rowsByTask,
  settleTask,
  taskRollout,
  type TaskChange,
} from './locked-tasks';
import { taskEndpoints, type ResponseRow, type TaskRow } from './rows';

export interface ReleaseOutcome {
  /** tasks released: now CREATED, their first publish in the outbox */
  released: number;
  /** the tasks that changed, as now stored, with their rows that changed */
  changed: TaskChange[];
}

/**
 * The endpoints a released task is first published to: null (as the task says) unless some were
 * cancelled while it waited or it rolls out in waves; then its first wave's endpoints still open.
 */
function firstEndpoints(task: TaskRow, rows: readonly ResponseRow[]): string[] | null {
  const open = rows.filter((row) => row.wave === 1 && !isTerminalResponse(row.status));
  if (taskRollout(task) === null && open.length === rows.length) return null;
  return open.map((row) => row.endpoint);
}

export async function releaseDueTasks(
  db: Db,
  options: { now?: Date; limit?: number } = {},
): Promise<ReleaseOutcome> {
  const now = options.now ?? new Date();
  return withTransaction(db, async (trx) => {
    const due = (await forUpdate(
      trx,
      trx('tasks')
        .select('id')
        .where({ status: 'SCHEDULED' })
        .where('not_before', '<=', now)
        .orderBy('not_before')
        .limit(options.limit ?? 100),
      { skipLocked: true },
    )) as Array<Pick<TaskRow, 'id'>>;
    const outcome: ReleaseOutcome = { released: 0, changed: [] };
    if (due.length === 0) return outcome;
    const locked = await lockTasks(
      trx,
      due.map((task) => Number(task.id)),
    );
    const rowsOf = rowsByTask(locked.rows.values());
    const changes = new Changes();
    for (const task of locked.tasks.values()) {
      if (task.status !== 'SCHEDULED') continue;
      const waitMs = task.wait_ms ?? task.deliver_by.getTime() - task.created_at.getTime();
      const deliverBy = new Date(now.getTime() + waitMs);
      const rows = (rowsOf.get(Number(task.id)) ?? []).map((row) => {
        if (row.wave !== 1 || isTerminalResponse(row.status)) return row;
        const started = { ...row, deliver_by: deliverBy, last_modified_time: now };
        changes.row(started);
        return started;
      });
      const endpoints = firstEndpoints(task, rows);
      const addressed = taskEndpoints(task) !== null;
      if (!addressed || endpoints === null || endpoints.length > 0) {
        changes.outbox.push({
          task_id: Number(task.id),
          body: { kind: 'task', round: 1, wave: 1, endpoints },
          next_attempt_at: now,
        });
      }
      task.status = 'CREATED';
      task.deliver_by = deliverBy;
      // a broadcast has no rows to say it changed
      changes.touched.add(Number(task.id));
      settleTask(task, rows, changes, now, deliverBy);
      outcome.released += 1;
    }
    await commitChanges(trx, changes);
    outcome.changed = changes.summary();
    return outcome;
  });
}
