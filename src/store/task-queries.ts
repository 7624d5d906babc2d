/**
 * Reading tasks back: one by its type and identifier or its id, with or without its endpoints'
 * responses; one endpoint's response with its history; pages of tasks, newest first.
 */
import type { Knex } from 'knex';
import type { TaskStatus } from '../domain';
import { asStoreError, engineOf, type Db } from './db';
import type { HistoryRow, OutputRow, ResponseRow, TaskRow } from './rows';
import {
  toHistoryView,
  toResponseView,
  toTaskView,
  type HistoryView,
  type ResponseView,
  type TaskView,
  type TaskWithResponses,
} from './views';

export async function findTaskRow(
  db: Db,
  type: string,
  identifier: string,
): Promise<TaskRow | null> {
  try {
    const row = (await db('tasks').where({ type, identifier }).first()) as TaskRow | undefined;
    return row ?? null;
  } catch (err) {
    throw asStoreError(err);
  }
}

export async function getTaskRow(db: Db, id: number): Promise<TaskRow | null> {
  try {
    const row = (await db('tasks').where({ id }).first()) as TaskRow | undefined;
    return row ?? null;
  } catch (err) {
    throw asStoreError(err);
  }
}

export async function findTask(
  db: Db,
  type: string,
  identifier: string,
): Promise<TaskWithResponses | null> {
  const task = await findTaskRow(db, type, identifier);
  if (task === null) return null;
  try {
    const responses = (await db('task_responses')
      .where({ task_id: task.id })
      .orderBy('id')) as ResponseRow[];
    return { task: toTaskView(task), taskResponseList: responses.map(toResponseView) };
  } catch (err) {
    throw asStoreError(err);
  }
}

/**
 * One endpoint's response to a task: as it is now, and its earlier rounds and attempts, each
 * with the output its run printed (null: none, or not finished).
 */
export interface ResponseDetail extends ResponseView {
  output: string | null;
  history: Array<HistoryView & { output: string | null }>;
}

export async function findResponse(
  db: Db,
  taskId: number,
  endpoint: string,
): Promise<ResponseDetail | null> {
  try {
    const row = (await db('task_responses').where({ task_id: taskId, endpoint }).first()) as
      ResponseRow | undefined;
    if (row === undefined) return null;
    const [history, outputs] = await Promise.all([
      db('response_history')
        .where({ task_id: taskId, endpoint })
        .orderBy(['round', 'attempt', 'id']) as Promise<HistoryRow[]>,
      db('response_outputs')
        .where({ task_id: taskId, endpoint })
        .select('round', 'attempt', 'output') as Promise<OutputRow[]>,
    ]);
    const outputOf = (run: { round: number; attempt: number }): string | null =>
      outputs.find(
        (o) => Number(o.round) === Number(run.round) && Number(o.attempt) === Number(run.attempt),
      )?.output ?? null;
    const finished = (run: ResponseRow | HistoryRow): string | null =>
      run.finished_at === null ? null : outputOf(run);
    return {
      ...toResponseView(row),
      output: finished(row),
      history: history.map((entry) => ({ ...toHistoryView(entry), output: finished(entry) })),
    };
  } catch (err) {
    throw asStoreError(err);
  }
}

export interface TaskFilter {
  type?: string;
  /** any of these */
  statuses?: TaskStatus[];
  /** tasks with a row for this endpoint (addressed to it, or answered by it) */
  endpoint?: string;
  since?: Date;
  until?: Date;
  identifierPrefix?: string;
  /** only tasks older than this id: the cursor of the page before */
  beforeId?: number;
  limit: number;
}

export interface TaskPage {
  tasks: TaskView[];
  /** the id to continue from (older tasks), or null when this page is the last */
  nextBeforeId: number | null;
}

/**
 * LIKE's own characters in a prefix, escaped with "!" (a backslash means different things to
 * MySQL's and SQLite's string literals).
 */
const escapeLike = (text: string): string => text.replace(/[!%_]/g, (c) => `!${c}`);

/**
 * `tasks`, with a hint for MariaDB where its optimizer was measured (bench, fleet phase, a
 * million tasks) to choose badly: for a type and a status it intersected two indexes and sorted
 * (2.5 s) where (type, status, id) alone walks in order (milliseconds); for a type and a time
 * range it walked (type, id) through half the table (1.3 s) where (type, created_at) reads the
 * range and sorts its rows. SQLite chooses well by itself.
 */
function tableWithHint(db: Db, filter: TaskFilter): string | Knex.Raw {
  if (engineOf(db) !== 'mysql' || filter.type === undefined) return 'tasks';
  if (filter.since !== undefined || filter.until !== undefined) {
    return db.raw('?? USE INDEX (??)', ['tasks', 'tasks_type_created_at_index']);
  }
  if (filter.statuses !== undefined) {
    return db.raw('?? IGNORE INDEX (??)', ['tasks', 'tasks_status_id_index']);
  }
  return 'tasks';
}

/**
 * The query behind a page of tasks (one row more than the page, to tell whether another
 * follows); the benchmark EXPLAINs it.
 */
export function listTasksQuery(db: Db, filter: TaskFilter): Knex.QueryBuilder {
  const query = db
    .from(tableWithHint(db, filter))
    .orderBy('id', 'desc')
    .limit(filter.limit + 1);
  if (filter.type !== undefined) query.where('type', filter.type);
  if (filter.statuses !== undefined) query.whereIn('status', filter.statuses);
  if (filter.since !== undefined) query.where('created_at', '>=', filter.since);
  if (filter.until !== undefined) query.where('created_at', '<', filter.until);
  if (filter.beforeId !== undefined) query.where('id', '<', filter.beforeId);
  if (filter.identifierPrefix !== undefined) {
    query.whereRaw("identifier LIKE ? ESCAPE '!'", [`${escapeLike(filter.identifierPrefix)}%`]);
  }
  if (filter.endpoint !== undefined) {
    query.whereIn('id', db('task_responses').select('task_id').where('endpoint', filter.endpoint));
  }
  return query;
}

/**
 * A page of tasks, newest first (by id, which grows with creation). Keyset pagination: the next
 * page starts below the last id, so it neither skips nor repeats while tasks are added.
 */
export async function listTasks(db: Db, filter: TaskFilter): Promise<TaskPage> {
  try {
    const query = listTasksQuery(db, filter);
    const rows = (await query) as TaskRow[];
    const page = rows.slice(0, filter.limit);
    const more = rows.length > filter.limit;
    return {
      tasks: page.map(toTaskView),
      nextBeforeId: more ? Number(page[page.length - 1]?.id) : null,
    };
  } catch (err) {
    throw asStoreError(err);
  }
}
