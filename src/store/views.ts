/**
 * Stored rows as the API's JSON: the original tasker's keys (`start_time`, `taskResponseList`,
 * `last_modified_time`...), plus ours.
 */
import {
  countResponses,
  type AgentInfo,
  type Progress,
  type ResponseStatus,
  type TaskCounts,
  type TaskStatus,
} from '../domain';
import { parseJsonColumn, taskEndpoints, type ResponseRow, type TaskRow } from './rows';

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
