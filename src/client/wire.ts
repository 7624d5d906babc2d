/**
 * The API's JSON as the client reads it: only the fields the client shows or decides on, so a
 * server that adds fields never breaks it (docs/api.md has them all).
 */
import type { Progress, ResponseStatus, TaskCounts, TaskStatus } from '../domain';

export interface TaskJson {
  id: number;
  identifier: string;
  type: string;
  status: TaskStatus;
  start_time: string;
  finished_at: string | null;
  endpoints: string[];
  counts: TaskCounts;
  version: number;
  round: number;
  stopped_reason: string | null;
  cancel_reason: string | null;
}

/** What the registry says of a PENDING row's endpoint (GET of one task only). */
export type RegistryJson = { status: string; since?: string } | undefined;

export interface ResponseJson {
  endpoint: string;
  status: ResponseStatus;
  errnr: number | null;
  errmsg: string | null;
  progress: Progress | null;
  attempt: number;
  round: number;
  /** RETRYING: when the next run starts */
  next_attempt_at?: string | null;
  registry?: RegistryJson;
}

/** `GET /<type>/<identifier>`, and the `snapshot` event of its stream. */
export interface TaskDocument {
  task: TaskJson;
  taskResponseList: ResponseJson[];
}

export interface TaskList {
  tasks: TaskJson[];
  next: string | null;
}

export interface EndpointJson {
  name: string;
  status: string;
  since: string;
  types: string[];
  labels: Record<string, string>;
  version: string;
  last_seen_at: string;
  running: number;
  capacity: number;
}

export interface EndpointList {
  endpoints: EndpointJson[];
  next: string | null;
  summary: { total: number; statuses: Record<string, number>; versions: Record<string, number> };
}
