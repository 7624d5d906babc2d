/**
 * The recorder's write: apply a batch of result events in one transaction. Idempotent: an event
 * that would move a row back, or repeats what is stored, changes nothing.
 */
import { applyResultEvent, isTerminalResponse, type ResultEvent } from '../domain';
import { withTransaction, type Db } from './db';
import {
  Changes,
  commitChanges,
  historyOf,
  lockTasks,
  newUnexpectedRow,
  rowKey,
  rowToState,
  rowsByTask,
  settleTask,
  stateToRow,
  type TaskChange,
} from './locked-tasks';

export interface RecordOutcome {
  applied: number;
  /** stale or duplicate events that changed nothing, and events of an earlier round */
  ignored: number;
  /** events naming a task that does not exist, or with the wrong type */
  orphaned: ResultEvent[];
  /** the tasks that changed, as now stored, with their rows that changed */
  changed: TaskChange[];
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
    const changes = new Changes();
    const outcome: RecordOutcome = { applied: 0, ignored: 0, orphaned: [], changed: [] };
    for (const event of ordered) {
      const task = locked.tasks.get(event.task_id);
      if (task === undefined || task.type !== event.type) {
        outcome.orphaned.push(event);
        continue;
      }
      const key = rowKey(event.task_id, event.endpoint);
      const found = locked.rows.get(key);
      const row = found ?? newUnexpectedRow(task, event.endpoint, now);
      // a round a retry has closed is history: late news of it changes nothing now
      const stale = event.round !== null && event.round < row.round;
      const next = stale ? null : applyResultEvent(rowToState(row), event, now);
      if (next === null) {
        outcome.ignored += 1;
        continue;
      }
      const updated = stateToRow(row, next, now);
      locked.rows.set(key, updated);
      changes.row(updated, found);
      const outputBytes =
        event.output === undefined || event.output === null
          ? null
          : (event.output_bytes ?? event.output.length);
      if (next.status === 'RETRYING') {
        // the run that asked to be retried is over: its outcome is kept as the attempt's history
        changes.history.push({
          ...historyOf(updated, now),
          status: 'FAILED',
          progress: row.progress,
          finished_at: next.lastEventAt,
          output_bytes: outputBytes,
        });
      }
      const ended = isTerminalResponse(event.status) || next.status === 'RETRYING';
      if (event.output !== undefined && event.output !== null && ended) {
        changes.outputs.push({
          task_id: event.task_id,
          endpoint: event.endpoint,
          round: updated.round,
          attempt: updated.attempt,
          output: event.output,
          output_bytes: outputBytes ?? event.output.length,
          recorded_at: now,
        });
      }
      outcome.applied += 1;
    }
    if (changes.rows.size === 0) return outcome;
    const rowsOf = rowsByTask(locked.rows.values());
    for (const taskId of changes.touched) {
      const task = locked.tasks.get(taskId);
      if (task !== undefined) settleTask(task, rowsOf.get(taskId) ?? [], changes, now, null);
    }
    await commitChanges(trx, changes);
    outcome.changed = changes.summary();
    return outcome;
  });
}
