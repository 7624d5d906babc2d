/**
 * Row shapes as stored, and their conversion to the API's JSON (the seed's keys, plus ours).
 * JSON columns are LONGTEXT on every engine (MariaDB's JSON is LONGTEXT anyway, and MySQL's
 * JSON type would reorder object keys), so they are always strings here and parsed once.
 */
import {
  countResponses,
  type AgentInfo,
  type Progress,
  type ResponseStatus,
  type TaskCounts,
  type TaskStatus,
} from '../domain';

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
}

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
}

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
}

export interface TaskWithResponses {
  task: TaskView;
  taskResponseList: ResponseView[];
}

export function parseJsonColumn<T = unknown>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

function iso(date: Date): string;
function iso(date: Date | null): string | null;
function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}

export function taskEndpoints(row: Pick<TaskRow, 'endpoints'>): string[] | null {
  return parseJsonColumn<string[]>(row.endpoints);
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
  };
}
