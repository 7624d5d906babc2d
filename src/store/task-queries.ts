/**
 * Reading tasks back: one by its type and identifier or its id, with or without its endpoints'
 * responses.
 */
import { asStoreError, type Db } from './db';
import type { ResponseRow, TaskRow } from './rows';
import { toResponseView, toTaskView, type TaskWithResponses } from './views';

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
