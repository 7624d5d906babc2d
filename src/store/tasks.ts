/**
 * Accepting tasks and reading them back. A task, one PENDING response row per addressed
 * endpoint, and its outbox row are written in one transaction, so an accepted task is never
 * without its rows nor forgotten by the relay.
 */
import { isDeepStrictEqual } from 'node:util';
import { ConflictError, countResponses } from '../domain';
import { asStoreError, isDuplicateKey, withTransaction, type Db } from './db';
import {
  parseJsonColumn,
  taskEndpoints,
  toResponseView,
  toTaskView,
  type ResponseRow,
  type TaskRow,
  type TaskWithResponses,
} from './rows';

export interface NewTask {
  type: string;
  identifier: string;
  payload: unknown;
  /** addressed endpoints, or null for a broadcast to every subscriber */
  endpoints: string[] | null;
  deliverBy: Date;
  executionTimeoutMs: number;
  now: Date;
  /** the relay leaves the outbox row alone this long, while the request publishes it itself */
  outboxDelayMs: number;
}

export interface CreateResult {
  task: TaskRow;
  /** false when an identical task with this identifier already existed */
  created: boolean;
}

const INSERT_CHUNK = 500;

function sameEndpoints(a: string[] | null, b: string[] | null): boolean {
  if (a === null || b === null) return a === b;
  return isDeepStrictEqual([...a].sort(), [...b].sort());
}

export async function createTask(db: Db, input: NewTask): Promise<CreateResult> {
  const payloadText = JSON.stringify(input.payload ?? null);
  const endpointsText = input.endpoints === null ? null : JSON.stringify(input.endpoints);
  const pendingRows = (input.endpoints ?? []).map(() => ({
    status: 'PENDING' as const,
    expected: true,
  }));
  try {
    const task = await withTransaction(db, async (trx) => {
      const row: Omit<TaskRow, 'id'> = {
        type: input.type,
        identifier: input.identifier,
        status: 'CREATED',
        payload: payloadText,
        endpoints: endpointsText,
        counts: JSON.stringify(countResponses(pendingRows)),
        execution_timeout_ms: input.executionTimeoutMs,
        created_at: input.now,
        sent_at: null,
        deliver_by: input.deliverBy,
        sweep_at: input.deliverBy,
        finished_at: null,
        updated_at: input.now,
      };
      const [id] = (await trx('tasks').insert(row)) as number[];
      const taskId = Number(id);
      const responses: ResponseRow[] = (input.endpoints ?? []).map((endpoint) => ({
        task_id: taskId,
        endpoint,
        expected: true,
        status: 'PENDING',
        errnr: null,
        errmsg: null,
        payload: null,
        progress: null,
        attempt: 0,
        agent: null,
        start_time: null,
        last_event_at: null,
        finished_at: null,
        last_modified_time: input.now,
      }));
      for (let i = 0; i < responses.length; i += INSERT_CHUNK) {
        await trx('task_responses').insert(responses.slice(i, i + INSERT_CHUNK));
      }
      await trx('outbox').insert({
        task_id: taskId,
        attempts: 0,
        next_attempt_at: new Date(input.now.getTime() + input.outboxDelayMs),
        last_error: null,
        created_at: input.now,
      });
      return { ...row, id: taskId };
    });
    return { task, created: true };
  } catch (err) {
    if (!isDuplicateKey(err)) throw asStoreError(err);
  }
  const existing = await findTaskRow(db, input.type, input.identifier);
  if (existing === null) {
    throw new Error(`task ${input.type}/${input.identifier} vanished after a duplicate-key error`);
  }
  const samePayload = isDeepStrictEqual(parseJsonColumn(existing.payload), input.payload ?? null);
  if (!samePayload || !sameEndpoints(taskEndpoints(existing), input.endpoints)) {
    throw new ConflictError(
      `a ${input.type} task with identifier ${JSON.stringify(input.identifier)} already exists ` +
        'with a different payload or endpoint list',
    );
  }
  return { task: existing, created: false };
}

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
