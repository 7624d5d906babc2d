/**
 * Wire messages for tests: a valid result event, with any field overridden.
 */
import { WIRE_VERSION, type ResultEvent } from '../../src/domain';

/** A `finished` DONE event of a worker task from `endpoint`, first attempt, sent now. */
export function resultEvent(
  taskId: number,
  endpoint: string,
  fields: Partial<ResultEvent> = {},
): ResultEvent {
  return {
    v: WIRE_VERSION,
    task_id: taskId,
    type: 'worker',
    endpoint,
    event: 'finished',
    status: 'DONE',
    errnr: 0,
    errmsg: null,
    payload: null,
    progress: null,
    at: new Date().toISOString(),
    attempt: 1,
    agent: null,
    round: null,
    ...fields,
  };
}
