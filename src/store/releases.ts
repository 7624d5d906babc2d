/**
 * The scheduler's writes: held tasks are released when their time or their dependencies have
 * come. In one transaction per batch, the tasks are claimed (FOR UPDATE SKIP LOCKED, so several
 * servers share them and none releases a task twice), become CREATED with their delivery
 * deadline starting now, and get the outbox row of their first publish, which the relay then
 * publishes with confirms. A crash before the commit leaves them held for the next pass.
 *
 * - SCHEDULED tasks whose `not_before` has come (`releaseDueTasks`);
 * - WAITING tasks none of whose dependencies is still open (`releaseReadyTasks`): each takes
 *   what its handler will receive of them, or is cancelled with the reason when one did not end
 *   DONE and its policy is "cancel"; one whose `not_before` is still ahead becomes SCHEDULED.
 */
import type { Knex } from 'knex';
import {
  CANCELLED_STATE,
  TASK_STATUSES,
  boundDependencyResults,
  dependencyVerdict,
  isTerminalResponse,
  isTerminalTask,
  type DependencyResult,
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
  taskRollout,
  type TaskChange,
} from './locked-tasks';
import { parseJsonColumn, taskEndpoints, type ResponseRow, type TaskRow } from './rows';

export interface ReleaseOutcome {
  /** tasks released: now CREATED, their first publish in the outbox */
  released: number;
  /** WAITING tasks cancelled because a dependency did not end DONE */
  cancelled: number;
  /** the tasks that changed, as now stored, with their rows that changed */
  changed: TaskChange[];
}

const FINAL_STATUSES: readonly TaskStatus[] = TASK_STATUSES.filter(isTerminalTask);

/**
 * The endpoints a released task is first published to: null (as the task says) unless some were
 * cancelled while it waited or it rolls out in waves; then its first wave's endpoints still open.
 */
function firstEndpoints(task: TaskRow, rows: readonly ResponseRow[]): string[] | null {
  const open = rows.filter((row) => row.wave === 1 && !isTerminalResponse(row.status));
  if (taskRollout(task) === null && open.length === rows.length) return null;
  return open.map((row) => row.endpoint);
}

/** Release a locked held task: CREATED, its deadline from now, its first publish in the outbox. */
function releaseTask(task: TaskRow, taskRows: ResponseRow[], changes: Changes, now: Date): void {
  const waitMs = task.wait_ms ?? task.deliver_by.getTime() - task.created_at.getTime();
  const deliverBy = new Date(now.getTime() + waitMs);
  const rows = taskRows.map((row) => {
    if (row.wave !== 1 || isTerminalResponse(row.status)) return row;
    const started = { ...row, deliver_by: deliverBy, last_modified_time: now };
    changes.row(started);
    return started;
  });
  const endpoints = firstEndpoints(task, rows);
  if (taskEndpoints(task) === null || endpoints === null || endpoints.length > 0) {
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
}

/** Claim up to `limit` held tasks that `where` picks, skipping those another server holds. */
async function claim(
  trx: Knex.Transaction,
  where: (query: Knex.QueryBuilder) => Knex.QueryBuilder,
  limit: number,
): Promise<number[]> {
  const rows = (await forUpdate(trx, where(trx('tasks').select('id')).limit(limit), {
    skipLocked: true,
  })) as Array<Pick<TaskRow, 'id'>>;
  return rows.map((row) => Number(row.id));
}

export async function releaseDueTasks(
  db: Db,
  options: { now?: Date; limit?: number } = {},
): Promise<ReleaseOutcome> {
  const now = options.now ?? new Date();
  return withTransaction(db, async (trx) => {
    const ids = await claim(
      trx,
      (query) =>
        query.where({ status: 'SCHEDULED' }).where('not_before', '<=', now).orderBy('not_before'),
      options.limit ?? 100,
    );
    const outcome: ReleaseOutcome = { released: 0, cancelled: 0, changed: [] };
    if (ids.length === 0) return outcome;
    const locked = await lockTasks(trx, ids);
    const rowsOf = rowsByTask(locked.rows.values());
    const changes = new Changes();
    for (const task of locked.tasks.values()) {
      if (task.status !== 'SCHEDULED') continue;
      releaseTask(task, rowsOf.get(Number(task.id)) ?? [], changes, now);
      outcome.released += 1;
    }
    await commitChanges(trx, changes);
    outcome.changed = changes.summary();
    return outcome;
  });
}

interface DependencyRow {
  task_id: number;
  id: number;
  type: string;
  identifier: string;
  status: TaskStatus;
}

/** What each task receives of its dependencies, in the order of its `after`, within bounds. */
async function dependencyResults(
  trx: Knex.Transaction,
  taskIds: readonly number[],
): Promise<Map<number, Array<DependencyResult & { id: number }>>> {
  const links = (await trx('task_dependencies as d')
    .join('tasks as t', 't.id', 'd.depends_on_id')
    .whereIn('d.task_id', taskIds)
    .orderBy(['d.task_id', 'd.position'])
    .select('d.task_id', 't.id', 't.type', 't.identifier', 't.status')) as DependencyRow[];
  const dependencyIds = [...new Set(links.map((link) => Number(link.id)))];
  const responses =
    dependencyIds.length === 0
      ? []
      : ((await trx('task_responses')
          .whereIn('task_id', dependencyIds)
          .orderBy(['task_id', 'id'])
          .select('task_id', 'endpoint', 'status', 'errnr', 'errmsg', 'payload')) as Array<
          Pick<ResponseRow, 'task_id' | 'endpoint' | 'status' | 'errnr' | 'errmsg' | 'payload'>
        >);
  const byDependency = new Map<number, DependencyResult['responses']>();
  for (const row of responses) {
    const list = byDependency.get(Number(row.task_id)) ?? [];
    list.push({
      endpoint: row.endpoint,
      status: row.status,
      errnr: row.errnr,
      errmsg: row.errmsg,
      payload: parseJsonColumn(row.payload),
    });
    byDependency.set(Number(row.task_id), list);
  }
  const results = new Map<number, Array<DependencyResult & { id: number }>>();
  for (const link of links) {
    const list = results.get(Number(link.task_id)) ?? [];
    list.push({
      id: Number(link.id),
      type: link.type,
      identifier: link.identifier,
      status: link.status,
      responses: byDependency.get(Number(link.id)) ?? [],
    });
    results.set(Number(link.task_id), list);
  }
  return results;
}

export async function releaseReadyTasks(
  db: Db,
  options: { now?: Date; limit?: number } = {},
): Promise<ReleaseOutcome> {
  const now = options.now ?? new Date();
  return withTransaction(db, async (trx) => {
    const ids = await claim(
      trx,
      (query) =>
        query
          .where({ status: 'WAITING' })
          .whereNotExists((open) =>
            open
              .select(trx.raw('1'))
              .from('task_dependencies as d')
              .join('tasks as p', 'p.id', 'd.depends_on_id')
              .whereRaw('d.task_id = tasks.id')
              .whereNotIn('p.status', FINAL_STATUSES),
          )
          .orderBy('id'),
      options.limit ?? 100,
    );
    const outcome: ReleaseOutcome = { released: 0, cancelled: 0, changed: [] };
    if (ids.length === 0) return outcome;
    const locked = await lockTasks(trx, ids);
    const rowsOf = rowsByTask(locked.rows.values());
    const resultsOf = await dependencyResults(trx, ids);
    const changes = new Changes();
    const taken: Array<{ id: number; dependencies: string }> = [];
    for (const task of locked.tasks.values()) {
      if (task.status !== 'WAITING') continue;
      const taskId = Number(task.id);
      const results = resultsOf.get(taskId) ?? [];
      // a dependency reopened by a retry since the claim: wait for it again
      if (!results.every((result) => isTerminalTask(result.status))) continue;
      const rows = rowsOf.get(taskId) ?? [];
      const policy = task.on_dependency_failure === 'run' ? 'run' : 'cancel';
      const verdict = dependencyVerdict(results, policy);
      if (verdict.kind === 'cancel') {
        const cancelled = rows.map((row) => {
          if (isTerminalResponse(row.status)) return row;
          const reason = `cancelled: ${verdict.reason}`;
          const state = { ...rowToState(row), ...CANCELLED_STATE, errmsg: reason, finishedAt: now };
          const updated = stateToRow(row, state, now);
          changes.row(updated);
          return updated;
        });
        task.cancel_reason = verdict.reason;
        changes.touched.add(taskId);
        settleTask(task, cancelled, changes, now, null);
        // never published: a broadcast has no rows to decide it
        Object.assign(task, { status: 'CANCELLED', finished_at: task.finished_at ?? now });
        outcome.cancelled += 1;
        continue;
      }
      const dependencies = boundDependencyResults(results.map(({ id: _id, ...result }) => result));
      taken.push({ id: taskId, dependencies: JSON.stringify(dependencies) });
      task.dependencies = JSON.stringify(dependencies);
      if (task.not_before !== null && task.not_before.getTime() > now.getTime()) {
        // its dependencies are done, its time has not come
        task.status = 'SCHEDULED';
        changes.touched.add(taskId);
        settleTask(task, rows, changes, now, null);
        continue;
      }
      releaseTask(task, rows, changes, now);
      outcome.released += 1;
    }
    await commitChanges(trx, changes);
    for (const { id, dependencies } of taken) {
      await trx('tasks').where({ id }).update({ dependencies });
    }
    outcome.changed = changes.summary();
    return outcome;
  });
}
