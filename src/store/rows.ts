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

export function parseJsonColumn<T = unknown>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

export function taskEndpoints(row: Pick<TaskRow, 'endpoints'>): string[] | null {
  return parseJsonColumn<string[]>(row.endpoints);
}
