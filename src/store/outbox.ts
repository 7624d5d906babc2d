/**
 * The outbox: tasks committed but not yet confirmed by the broker. The request that created a
 * task publishes it straight away and clears its row; the relay publishes whatever is left
 * (broker down, server crashed between commit and confirm), claiming rows with SKIP LOCKED so
 * several servers share the work.
 */
import { GroupCommit } from '../batch';
import { isTerminalTask } from '../domain';
import { forUpdate, withTransaction, type Db } from './db';
import type { TaskRow } from './rows';

/**
 * The broker confirmed these tasks: clear their outbox rows and mark them SENT if still CREATED.
 * Outbox rows first, then tasks: the relay locks in the same order. A task row another
 * transaction holds is skipped rather than waited for: the recorder holds it to record an
 * answer, the sweeper to settle a deadline, another server to mark it SENT, and each of them
 * moves the task past CREATED itself. Waiting would make every confirm behind it wait too.
 */
export async function markSent(
  db: Db,
  taskIds: readonly number[],
  now = new Date(),
): Promise<void> {
  if (taskIds.length === 0) return;
  await withTransaction(db, async (trx) => {
    await trx('outbox').whereIn('task_id', taskIds).delete();
    const free = (await forUpdate(
      trx,
      trx('tasks').select('id').whereIn('id', taskIds).where({ status: 'CREATED' }),
      { skipLocked: true },
    )) as Array<Pick<TaskRow, 'id'>>;
    if (free.length === 0) return;
    await trx('tasks')
      .whereIn(
        'id',
        free.map((row) => row.id),
      )
      .update({ status: 'SENT', sent_at: now, updated_at: now });
  });
}

/** confirmed tasks marked SENT in one transaction at most */
const MARK_SENT_GROUP = 500;

/**
 * Marks confirmed tasks SENT in groups: confirms that arrive while one write runs are written
 * together by the next, so concurrent requests share a transaction (and its fsync).
 */
export function sentMarker(db: Db): (taskId: number) => Promise<void> {
  const marks = new GroupCommit<number>((ids) => markSent(db, ids), {
    maxItems: MARK_SENT_GROUP,
  });
  return (taskId) => marks.add(taskId);
}

export interface RelayOutcome {
  published: number;
  failed: number;
  /** past their delivery deadline before the broker took them; the sweeper settles them */
  expired: number;
}

interface OutboxRow {
  id: number;
  task_id: number;
  attempts: number;
}

function retryDelayMs(attempts: number): number {
  const base = Math.min(30_000, 500 * 2 ** Math.min(attempts, 10));
  return base / 2 + Math.random() * (base / 2);
}

/**
 * Publish due outbox rows. `publish` must resolve only once the broker confirmed the message.
 */
export async function relayDueTasks(
  db: Db,
  publish: (task: TaskRow) => Promise<void>,
  options: { now?: Date; limit?: number } = {},
): Promise<RelayOutcome> {
  const now = options.now ?? new Date();
  return withTransaction(db, async (trx) => {
    const due = (await forUpdate(
      trx,
      trx('outbox')
        .select('id', 'task_id', 'attempts')
        .where('next_attempt_at', '<=', now)
        .orderBy('next_attempt_at')
        .limit(options.limit ?? 100),
      { skipLocked: true },
    )) as OutboxRow[];
    const outcome: RelayOutcome = { published: 0, failed: 0, expired: 0 };
    if (due.length === 0) return outcome;
    const tasks = (await trx('tasks').whereIn(
      'id',
      due.map((d) => d.task_id),
    )) as TaskRow[];
    const taskById = new Map(tasks.map((t) => [Number(t.id), t]));
    const sent: number[] = [];
    const results = await Promise.allSettled(
      due.map(async (entry) => {
        const task = taskById.get(Number(entry.task_id));
        if (task === undefined || isTerminalTask(task.status) || task.deliver_by <= now) {
          outcome.expired += 1;
          return;
        }
        await publish(task);
        outcome.published += 1;
        sent.push(Number(task.id));
      }),
    );
    const done: number[] = [];
    for (const [i, result] of results.entries()) {
      const entry = due[i] as OutboxRow;
      if (result.status === 'fulfilled') {
        done.push(Number(entry.id));
        continue;
      }
      outcome.failed += 1;
      const reason: unknown = result.reason;
      await trx('outbox')
        .where({ id: entry.id })
        .update({
          attempts: entry.attempts + 1,
          next_attempt_at: new Date(now.getTime() + retryDelayMs(entry.attempts + 1)),
          last_error: (reason instanceof Error ? reason.message : String(reason)).slice(0, 1000),
        });
    }
    // One statement per row, by primary key: an IN list on a small table may be run as a scan
    // that waits on rows another relay holds, and deadlocks.
    for (const id of done) await trx('outbox').where({ id }).delete();
    for (const id of sent) {
      await trx('tasks')
        .where({ id, status: 'CREATED' })
        .update({ status: 'SENT', sent_at: now, updated_at: now });
    }
    return outcome;
  });
}
