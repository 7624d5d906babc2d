/**
 * Wire messages for tests: a valid result event and a valid heartbeat, with any field overridden.
 */
import {
  HEARTBEAT_VERSION,
  WIRE_VERSION,
  type Heartbeat,
  type ResultEvent,
} from '../../src/domain';

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

/** A beat of a `worker` agent for `endpoint`, labelled role=web, sent now, every 15 s. */
export function heartbeat(endpoint: string, fields: Partial<Heartbeat> = {}): Heartbeat {
  return {
    v: HEARTBEAT_VERSION,
    kind: 'heartbeat',
    endpoint,
    phase: 'beat',
    types: ['worker'],
    labels: { role: 'web' },
    version: '1.0.0',
    handlers: { worker: 'sha256:0123456789ab' },
    hostname: 'host1',
    pid: 42,
    started_at: new Date(Date.now() - 60_000).toISOString(),
    running: 0,
    capacity: 4,
    interval_ms: 15_000,
    at: new Date().toISOString(),
    ...fields,
  };
}
