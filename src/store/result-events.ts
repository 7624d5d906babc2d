/**
 * The recorder's write: apply a batch of result events in one transaction. Idempotent: an event
 * that would move a row back, or repeats what is stored, changes nothing.
 */
import { applyResultEvent, type ResultEvent } from '../domain';
import { withTransaction, type Db } from './db';
import type { ResponseRow, TaskRow } from './rows';
import {
  lockTasks,
  newUnexpectedRow,
  recomputeTask,
  rowKey,
  rowToState,
  rowsByTask,
  stateToRow,
  writeRows,
  writeTaskStates,
} from './locked-tasks';

export interface RecordOutcome {
  applied: number;
  /** stale or duplicate events that changed nothing */
  ignored: number;
  /** events naming a task that does not exist, or with the wrong type */
  orphaned: ResultEvent[];
}

export async function recordResultEvents(
  db: Db,
  events: readonly ResultEvent[],
  now = new Date(),
): Promise<RecordOutcome> {
  const ordered = [...events].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  return withTransaction(db, async (trx) => {
    const locked = await lockTasks(
      trx,
      ordered.map((e) => e.task_id),
    );
    const changed = new Map<string, ResponseRow>();
    const outcome: RecordOutcome = { applied: 0, ignored: 0, orphaned: [] };
    for (const event of ordered) {
      const task = locked.tasks.get(event.task_id);
      if (task === undefined || task.type !== event.type) {
        outcome.orphaned.push(event);
        continue;
      }
      const key = rowKey(event.task_id, event.endpoint);
      const row = locked.rows.get(key) ?? newUnexpectedRow(event.task_id, event.endpoint, now);
      const next = applyResultEvent(rowToState(row), event, now);
      if (next === null) {
        outcome.ignored += 1;
        continue;
      }
      const updated = stateToRow(row, next, now);
      locked.rows.set(key, updated);
      changed.set(key, updated);
      outcome.applied += 1;
    }
    if (changed.size === 0) return outcome;
    await writeRows(trx, [...changed.values()]);
    const rowsOf = rowsByTask(locked.rows.values());
    const touched = new Set([...changed.values()].map((row) => Number(row.task_id)));
    const recomputed: TaskRow[] = [];
    for (const taskId of touched) {
      const task = locked.tasks.get(taskId);
      const rows = rowsOf.get(taskId) ?? [];
      if (task !== undefined && recomputeTask(task, rows, now, null).changed) recomputed.push(task);
    }
    await writeTaskStates(trx, recomputed);
    return outcome;
  });
}
