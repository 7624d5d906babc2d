/**
 * Stored rows as the API's JSON: the original tasker's keys (`start_time`, `taskResponseList`,
 * `last_modified_time`...), plus ours.
 */
import {
  countResponses,
  describeShare,
  type AgentInfo,
  type EndpointStatus,
  type Selector,
  type Rollout,
  type Progress,
  type ResponseStatus,
  type TaskCounts,
  type TaskStatus,
} from '../domain';
import {
  parseJsonColumn,
  taskEndpoints,
  type HistoryRow,
  type ResponseRow,
  type TaskRow,
} from './rows';

export interface TaskView {
  id: number;
  identifier: string;
  type: string;
  status: TaskStatus;
  start_time: string;
  endpoints: string[];
  payload: unknown;
  sent_at: string | null;
  deliver_by: string;
  finished_at: string | null;
  updated_at: string;
  counts: TaskCounts;
  /** grows with every change: a client may wait for a version after the one it saw */
  version: number;
  /** 1, and one more for each retry */
  round: number;
  /** with a rollout: its settings, the waves sent so far, why it stopped */
  rollout: { batch: string; max_errors: string; pause_ms: number; waves_sent: number } | null;
  stopped_reason: string | null;
  success_threshold: string | null;
  /** 0 (routine) to 9 (most urgent) */
  priority: number;
  cancel_reason: string | null;
  /** the selector its endpoints were picked from the fleet by, or null when they were named */
  selector: Selector | null;
  /** a delayed task's due time: SCHEDULED until then */
  not_before: string | null;
  /** the tasks it comes after, `<type>/<identifier>`; null when none */
  after: string[] | null;
  /** with `after`: "cancel" or "run" when a dependency did not end DONE */
  on_dependency_failure: string | null;
}

/** What the registry knows of a PENDING row's endpoint: why it may still be waiting. */
export type RegistryStatus =
  { status: EndpointStatus; since: string; last_seen_at: string } | { status: 'never_seen' };

export interface ResponseView {
  id: number;
  task_id: number;
  endpoint: string;
  status: ResponseStatus;
  expected: boolean;
  errnr: number | null;
  errmsg: string | null;
  payload: unknown;
  progress: Progress | null;
  attempt: number;
  agent: AgentInfo | null;
  start_time: string | null;
  last_modified_time: string;
  finished_at: string | null;
  round: number;
  wave: number;
  /** when this endpoint's copy of the task stops being delivered; null until its wave is sent */
  deliver_by: string | null;
  cancel_requested_at: string | null;
  /** how long the finished run's output was, in bytes (GET …/responses/<endpoint> has it) */
  output_bytes: number | null;
  /** RETRYING: when the agent runs the task again; otherwise null */
  next_attempt_at: string | null;
  /** on GET of one task, for a PENDING row: its endpoint as the registry knows it */
  registry?: RegistryStatus;
}

/** An earlier round or attempt of an endpoint's response. */
export interface HistoryView {
  round: number;
  attempt: number;
  status: ResponseStatus;
  errnr: number | null;
  errmsg: string | null;
  payload: unknown;
  progress: Progress | null;
  agent: AgentInfo | null;
  start_time: string | null;
  finished_at: string | null;
  output_bytes: number | null;
}

export interface TaskWithResponses {
  task: TaskView;
  taskResponseList: ResponseView[];
}

function iso(date: Date): string;
function iso(date: Date | null): string | null;
function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}

export function toTaskView(row: TaskRow): TaskView {
  return {
    id: Number(row.id),
    identifier: row.identifier,
    type: row.type,
    status: row.status,
    start_time: iso(row.created_at),
    endpoints: taskEndpoints(row) ?? [],
    payload: parseJsonColumn(row.payload),
    sent_at: iso(row.sent_at),
    deliver_by: iso(row.deliver_by),
    finished_at: iso(row.finished_at),
    updated_at: iso(row.updated_at),
    counts: parseJsonColumn<TaskCounts>(row.counts) ?? countResponses([]),
    version: Number(row.version),
    round: Number(row.round),
    rollout: rolloutView(row),
    stopped_reason: row.stopped_reason,
    success_threshold: row.success_threshold,
    priority: Number(row.priority ?? 0),
    cancel_reason: row.cancel_reason,
    selector: parseJsonColumn<Selector>(row.selector),
    not_before: iso(row.not_before ?? null),
    after: parseJsonColumn<string[]>(row.after ?? null),
    on_dependency_failure: row.on_dependency_failure ?? null,
  };
}

function rolloutView(row: TaskRow): TaskView['rollout'] {
  const rollout = parseJsonColumn<Rollout>(row.rollout);
  if (rollout === null) return null;
  return {
    batch: describeShare(rollout.batch),
    max_errors: describeShare(rollout.maxErrors),
    pause_ms: rollout.pauseMs,
    waves_sent: Number(row.wave),
  };
}

export function toHistoryView(row: HistoryRow): HistoryView {
  return {
    round: Number(row.round),
    attempt: Number(row.attempt),
    status: row.status,
    errnr: row.errnr,
    errmsg: row.errmsg,
    payload: parseJsonColumn(row.payload),
    progress: parseJsonColumn<Progress>(row.progress),
    agent: parseJsonColumn<AgentInfo>(row.agent),
    start_time: iso(row.start_time),
    finished_at: iso(row.finished_at),
    output_bytes: row.output_bytes === null ? null : Number(row.output_bytes),
  };
}

export function toResponseView(row: ResponseRow): ResponseView {
  return {
    id: Number(row.id),
    task_id: Number(row.task_id),
    endpoint: row.endpoint,
    status: row.status,
    expected: Boolean(row.expected),
    errnr: row.errnr,
    errmsg: row.errmsg,
    payload: parseJsonColumn(row.payload),
    progress: parseJsonColumn<Progress>(row.progress),
    attempt: row.attempt,
    agent: parseJsonColumn<AgentInfo>(row.agent),
    start_time: iso(row.start_time),
    last_modified_time: iso(row.last_modified_time),
    finished_at: iso(row.finished_at),
    round: Number(row.round),
    wave: Number(row.wave),
    deliver_by: iso(row.deliver_by),
    cancel_requested_at: iso(row.cancel_requested_at),
    output_bytes: row.output_bytes === null ? null : Number(row.output_bytes),
    next_attempt_at: iso(row.next_attempt_at ?? null),
  };
}
