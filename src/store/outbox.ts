/**
 * The outbox: what the server decided to publish and the broker has not confirmed yet, each
 * committed with the decision itself. A task's first publish (the request that created it
 * publishes it straight away and clears its row), its later waves and rounds, and cancels. The
 * relay publishes whatever is due (broker down, server crashed between commit and confirm, a
 * wave's pause over), claiming rows with SKIP LOCKED so several servers share the work.
 */
import { GroupCommit } from '../batch';
import { isTerminalTask } from '../domain';
import { forUpdate, withTransaction, type Db } from './db';
import { outboxBody, type OutboxBody, type OutboxRow, type TaskRow } from './rows';

/** A task's first publish confirmed: its outbox row, and the task to mark SENT. */
export interface Confirmed {
  taskId: number;
  outboxId: number;
}

/**
 * The broker confirmed these tasks: clear their outbox rows and mark them SENT if still CREATED.
 * Outbox rows first, then tasks: the relay locks in the same order. A task row another
 * transaction holds is skipped rather than waited for: the recorder holds it to record an
 * answer, the sweeper to settle a deadline, another server to mark it SENT, and each of them
 * moves the task past CREATED itself. Waiting would make every confirm behind it wait too.
 */
export async function markSent(
  db: Db,
  confirmed: readonly Confirmed[],
  now = new Date(),
): Promise<void> {
  if (confirmed.length === 0) return;
  const taskIds = confirmed.map((entry) => entry.taskId);
  await withTransaction(db, async (trx) => {
    await trx('outbox')
      .whereIn(
        'id',
        confirmed.map((entry) => entry.outboxId),
      )
      .delete();
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
      .update({ status: 'SENT', sent_at: now, updated_at: now, version: trx.raw('version + 1') });
  });
}

/** confirmed tasks marked SENT in one transaction at most */
const MARK_SENT_GROUP = 500;

/**
 * Marks confirmed tasks SENT in groups: confirms that arrive while one write runs are written
 * together by the next, so concurrent requests share a transaction (and its fsync).
 */
export function sentMarker(db: Db): (confirmed: Confirmed) => Promise<void> {
  const marks = new GroupCommit<Confirmed>((group) => markSent(db, group), {
    maxItems: MARK_SENT_GROUP,
  });
  return (confirmed) => marks.add(confirmed);
}

/** What the relay hands to the broker for one due outbox row. */
export interface Publishers {
  /** a task to the endpoints of a round and wave, with its delivery deadline */
  task(task: TaskRow, body: Extract<OutboxBody, { kind: 'task' }>, deliverBy: Date): Promise<void>;
  cancel(task: TaskRow, body: Extract<OutboxBody, { kind: 'cancel' }>): Promise<void>;
}

export interface RelayOutcome {
  published: number;
  failed: number;
  /** past their delivery deadline before the broker took them; the sweeper settles them */
  expired: number;
  /** the tasks that changed (now SENT, a wave or round started), as now stored */
  changed: TaskRow[];
}

function retryDelayMs(attempts: number): number {
  const base = Math.min(30_000, 500 * 2 ** Math.min(attempts, 10));
  return base / 2 + Math.random() * (base / 2);
}

/**
 * Publish due outbox rows. Each publisher must resolve only once the broker confirmed. A later
 * wave or round starts its delivery deadline when it is published: its rows get it then.
 */
export async function relayDueTasks(
  db: Db,
  publishers: Publishers,
  options: { now?: Date; limit?: number } = {},
): Promise<RelayOutcome> {
  const now = options.now ?? new Date();
  return withTransaction(db, async (trx) => {
    const due = (await forUpdate(
      trx,
      trx('outbox')
        .select('id', 'task_id', 'kind', 'body', 'attempts')
        .where('next_attempt_at', '<=', now)
        .orderBy('next_attempt_at')
        .limit(options.limit ?? 100),
      { skipLocked: true },
    )) as OutboxRow[];
    const outcome: RelayOutcome = { published: 0, failed: 0, expired: 0, changed: [] };
    if (due.length === 0) return outcome;
    const tasks = (await trx('tasks').whereIn(
      'id',
      due.map((d) => d.task_id),
    )) as TaskRow[];
    const taskById = new Map(tasks.map((t) => [Number(t.id), t]));
    /** published later waves and rounds, whose rows take their deadline now */
    const started: Array<{
      task: TaskRow;
      body: Extract<OutboxBody, { kind: 'task' }>;
      deliverBy: Date;
    }> = [];
    const sent: number[] = [];
    const results = await Promise.allSettled(
      due.map(async (entry) => {
        const task = taskById.get(Number(entry.task_id));
        const body = outboxBody(entry);
        if (task === undefined) {
          outcome.expired += 1;
          return;
        }
        if (body.kind === 'cancel') {
          await publishers.cancel(task, body);
          outcome.published += 1;
          return;
        }
        const first = body.round === 1 && body.wave === 1;
        if (isTerminalTask(task.status) || (first && task.deliver_by <= now)) {
          outcome.expired += 1;
          return;
        }
        const waitMs = task.wait_ms ?? task.deliver_by.getTime() - task.created_at.getTime();
        const deliverBy = first ? task.deliver_by : new Date(now.getTime() + waitMs);
        await publishers.task(task, body, deliverBy);
        outcome.published += 1;
        sent.push(Number(task.id));
        if (!first) started.push({ task, body, deliverBy });
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
    // Lock the tasks about to change by primary key and in id order, as the recorder and the
    // sweeper do (lockTasks), before writing them or their rows. Written otherwise (a task's
    // rows first, or its (status, id) index entry first, which an UPDATE filtered on status may
    // take) they deadlock with the recorder, and a pass rolled back after its confirms
    // publishes its rows again when retried.
    const touched = [...new Set([...started.map(({ task }) => Number(task.id)), ...sent])];
    if (touched.length > 0) {
      await forUpdate(
        trx,
        trx('tasks')
          .select('id')
          .whereIn(
            'id',
            touched.sort((a, b) => a - b),
          )
          .orderBy('id'),
      );
    }
    for (const { task, body, deliverBy } of started) {
      const rows = trx('task_responses')
        .where({ task_id: task.id, round: body.round })
        .whereNull('deliver_by');
      if (body.endpoints !== null) rows.whereIn('endpoint', body.endpoints);
      await rows.update({ deliver_by: deliverBy, last_modified_time: now });
      await trx('tasks')
        .where({ id: task.id })
        .update({
          deliver_by: trx.raw('CASE WHEN deliver_by < ? THEN ? ELSE deliver_by END', [
            deliverBy,
            deliverBy,
          ]),
          sweep_at: trx.raw('CASE WHEN sweep_at IS NULL OR sweep_at > ? THEN ? ELSE sweep_at END', [
            deliverBy,
            deliverBy,
          ]),
          version: trx.raw('version + 1'),
          updated_at: now,
        });
      task.version += 1;
      if (!outcome.changed.includes(task)) outcome.changed.push(task);
    }
    for (const id of sent) {
      const marked = await trx('tasks')
        .where({ id, status: 'CREATED' })
        .update({ status: 'SENT', sent_at: now, updated_at: now, version: trx.raw('version + 1') });
      const task = taskById.get(id);
      if (marked > 0 && task !== undefined) {
        Object.assign(task, { status: 'SENT', sent_at: now, version: task.version + 1 });
        if (!outcome.changed.includes(task)) outcome.changed.push(task);
      }
    }
    return outcome;
  });
}
