/**
 * Row shapes as stored. JSON columns are LONGTEXT on every engine (MariaDB's JSON is LONGTEXT
 * anyway, and MySQL's JSON type would reorder object keys), so they are always strings here and
 * parsed once.
 */
import type { ResponseStatus, TaskStatus } from '../domain';

export interface TaskRow {
  id: number;
  type: string;
  identifier: string;
  status: TaskStatus;
  payload: string;
  endpoints: string | null;
  counts: string;
  execution_timeout_ms: number;
  created_at: Date;
  sent_at: Date | null;
  deliver_by: Date;
  sweep_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
  /** grows by one with every change of the task or of one of its rows */
  version: number;
  /** the latest round: 1, and one more with every retry */
  round: number;
  /** the delivery window of each wave and round (null on tasks from before) */
  wait_ms: number | null;
  /** JSON of the domain's Rollout, or null */
  rollout: string | null;
  /** the waves sent so far */
  wave: number;
  /** "90%" or "5": DONE endpoints that decide the task DONE; null: all */
  success_threshold: string | null;
  /** 0 (routine) to 9 (most urgent); null in rows from before priorities: 0 */
  priority?: number | null;
  cancel_reason: string | null;
  stopped_reason: string | null;
  /** JSON of the selector the endpoints were picked by, or null when they were named */
  selector: string | null;
  /** a delayed task's due time: SCHEDULED until then; null when it was not delayed */
  not_before: Date | null;
  /** JSON of the `<type>/<identifier>` it comes after, as posted; null when none */
  after: string | null;
  /** "cancel" or "run": what a dependency that did not end DONE does to it */
  on_dependency_failure: string | null;
  /** JSON of the DependencyResult[] its handler receives, taken at its release */
  dependencies: string | null;
}

export interface ResponseRow {
  id?: number;
  task_id: number;
  endpoint: string;
  expected: boolean | number;
  status: ResponseStatus;
  errnr: number | null;
  errmsg: string | null;
  payload: string | null;
  progress: string | null;
  attempt: number;
  agent: string | null;
  start_time: Date | null;
  last_event_at: Date | null;
  last_heard_at: Date | null;
  finished_at: Date | null;
  last_modified_time: Date;
  round: number;
  wave: number;
  /** its delivery deadline; null while its wave or round waits to be sent */
  deliver_by: Date | null;
  /** a cancel was asked of the endpoint while it ran, and why */
  cancel_requested_at: Date | null;
  cancel_reason: string | null;
  /** how long the finished run's output was; the text is in response_outputs */
  output_bytes: number | null;
  /** RETRYING: when its agent runs the task again */
  next_attempt_at: Date | null;
}

/** A closed round or attempt of an endpoint's response, as it was. */
export interface HistoryRow {
  id?: number;
  task_id: number;
  endpoint: string;
  round: number;
  attempt: number;
  status: ResponseStatus;
  errnr: number | null;
  errmsg: string | null;
  payload: string | null;
  progress: string | null;
  agent: string | null;
  start_time: Date | null;
  finished_at: Date | null;
  recorded_at: Date;
  output_bytes: number | null;
}

/** What one run printed, head and tail as its agent kept them. */
export interface OutputRow {
  task_id: number;
  endpoint: string;
  round: number;
  attempt: number;
  output: string;
  output_bytes: number;
  recorded_at: Date;
}

/** What the relay publishes for a task, kept in the outbox until the broker confirmed it. */
export type OutboxBody =
  /** the task to these endpoints (null: as the task says), for a round and a wave */
  | { kind: 'task'; round: number; wave: number; endpoints: string[] | null }
  /** a cancel to the agents of these endpoints (null: all) */
  | { kind: 'cancel'; round: number; endpoints: string[] | null; reason: string };

export interface OutboxRow {
  id: number;
  task_id: number;
  kind: OutboxBody['kind'];
  /** JSON of the OutboxBody; null on rows from before: the task's first publish */
  body: string | null;
  attempts: number;
  next_attempt_at: Date;
  last_error: string | null;
  created_at: Date;
}

/** The body of an outbox row; a row from before bodies is the task's first publish. */
export function outboxBody(row: Pick<OutboxRow, 'body'>): OutboxBody {
  return (
    parseJsonColumn<OutboxBody>(row.body) ?? { kind: 'task', round: 1, wave: 1, endpoints: null }
  );
}

export function parseJsonColumn<T = unknown>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

export function taskEndpoints(row: Pick<TaskRow, 'endpoints'>): string[] | null {
  return parseJsonColumn<string[]>(row.endpoints);
}
