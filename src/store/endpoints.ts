/**
 * The endpoint registry: what each agent last said of itself, written by the recorder from
 * heartbeats (one upsert per batch), read by the fleet API, by selectors that pick a task's
 * endpoints, and to say why a row is still PENDING. An endpoint is online until three of its
 * heartbeats are missed (`offline_at`), stopped once it said goodbye.
 */
import {
  MISSED_BEATS,
  selects,
  type EndpointStatus,
  type Heartbeat,
  type ResponseStatus,
  type Selector,
  type TaskStatus,
} from '../domain';
import { asStoreError, type Db } from './db';
import { parseJsonColumn } from './rows';
import type { RegistryStatus } from './views';

/** names in one IN (…) list */
const IN_CHUNK = 1000;

export interface EndpointRow {
  name: string;
  types: string;
  labels: string;
  version: string;
  handlers: string;
  hostname: string;
  pid: number;
  started_at: Date;
  first_seen_at: Date;
  last_seen_at: Date;
  offline_at: Date;
  stopped_at: Date | null;
  interval_ms: number;
  running: number;
  capacity: number;
  updated_at: Date;
}

export interface EndpointView {
  name: string;
  status: EndpointStatus;
  /** when it went offline or stopped, or came online */
  since: string;
  types: string[];
  labels: Record<string, string>;
  version: string;
  handlers: Record<string, string>;
  hostname: string;
  pid: number;
  started_at: string;
  first_seen_at: string;
  last_seen_at: string;
  heartbeat_ms: number;
  running: number;
  capacity: number;
}

export function endpointStatus(row: EndpointRow, now: Date): EndpointStatus {
  if (row.stopped_at !== null) return 'stopped';
  return row.offline_at.getTime() > now.getTime() ? 'online' : 'offline';
}

export function toEndpointView(row: EndpointRow, now: Date): EndpointView {
  const status = endpointStatus(row, now);
  const since =
    status === 'stopped'
      ? (row.stopped_at as Date)
      : status === 'offline'
        ? row.offline_at
        : row.started_at;
  return {
    name: row.name,
    status,
    since: since.toISOString(),
    types: parseJsonColumn<string[]>(row.types) ?? [],
    labels: parseJsonColumn<Record<string, string>>(row.labels) ?? {},
    version: row.version,
    handlers: parseJsonColumn<Record<string, string>>(row.handlers) ?? {},
    hostname: row.hostname,
    pid: Number(row.pid),
    started_at: row.started_at.toISOString(),
    first_seen_at: row.first_seen_at.toISOString(),
    last_seen_at: row.last_seen_at.toISOString(),
    heartbeat_ms: Number(row.interval_ms),
    running: Number(row.running),
    capacity: Number(row.capacity),
  };
}

const UPSERT_COLUMNS = [
  'types',
  'labels',
  'version',
  'handlers',
  'hostname',
  'pid',
  'started_at',
  'last_seen_at',
  'offline_at',
  'stopped_at',
  'interval_ms',
  'running',
  'capacity',
  'updated_at',
] as const;

/**
 * Store heartbeats, heard at `now` (the server's clock decides who is away): one upsert for the
 * batch, the latest heartbeat of each endpoint winning. A goodbye marks it stopped.
 */
export async function recordHeartbeats(
  db: Db,
  beats: readonly Heartbeat[],
  now = new Date(),
): Promise<number> {
  const latest = new Map<string, Heartbeat>();
  for (const beat of beats) {
    const known = latest.get(beat.endpoint);
    if (known === undefined || Date.parse(known.at) <= Date.parse(beat.at)) {
      latest.set(beat.endpoint, beat);
    }
  }
  if (latest.size === 0) return 0;
  const rows = [...latest.values()].map((beat) => ({
    name: beat.endpoint,
    types: JSON.stringify(beat.types),
    labels: JSON.stringify(beat.labels),
    version: beat.version,
    handlers: JSON.stringify(beat.handlers),
    hostname: beat.hostname,
    pid: beat.pid,
    started_at: new Date(beat.started_at),
    first_seen_at: now,
    last_seen_at: now,
    offline_at: new Date(now.getTime() + MISSED_BEATS * beat.interval_ms),
    stopped_at: beat.phase === 'goodbye' ? now : null,
    interval_ms: beat.interval_ms,
    running: beat.running,
    capacity: beat.capacity,
    updated_at: now,
  }));
  try {
    await db('endpoints')
      .insert(rows)
      .onConflict('name')
      .merge([...UPSERT_COLUMNS]);
  } catch (err) {
    throw asStoreError(err);
  }
  return rows.length;
}

/** Which endpoints of the registry a list shows; null: any. */
export interface EndpointFilter {
  /** serving this task type */
  type: string | null;
  /** with every one of these labels */
  labels: Readonly<Record<string, string>>;
  /** in any of these */
  statuses: readonly EndpointStatus[] | null;
  /** running this tasker version */
  version: string | null;
  /** with a handler of this version (of `type`, when given) */
  handlerVersion: string | null;
}

/** Counts of the listed endpoints: by status, tasker version and handler version per type. */
export interface FleetSummary {
  total: number;
  statuses: Record<EndpointStatus, number>;
  versions: Record<string, number>;
  handlers: Record<string, Record<string, number>>;
}

export interface EndpointPage {
  endpoints: EndpointView[];
  /** the name to continue after, or null on the last page */
  next: string | null;
  /** of every endpoint the filter matches, not only this page's */
  summary: FleetSummary;
}

function matches(endpoint: EndpointView, filter: EndpointFilter): boolean {
  const { type, labels, statuses, version, handlerVersion } = filter;
  if (type !== null && !endpoint.types.includes(type)) return false;
  if (statuses !== null && !statuses.includes(endpoint.status)) return false;
  if (version !== null && endpoint.version !== version) return false;
  if (handlerVersion !== null) {
    const versions =
      type === null ? Object.values(endpoint.handlers) : [endpoint.handlers[type] ?? null];
    if (!versions.includes(handlerVersion)) return false;
  }
  return Object.entries(labels).every(([key, value]) => endpoint.labels[key] === value);
}

function summarize(endpoints: readonly EndpointView[]): FleetSummary {
  const summary: FleetSummary = {
    total: endpoints.length,
    statuses: { online: 0, offline: 0, stopped: 0 },
    versions: {},
    handlers: {},
  };
  for (const endpoint of endpoints) {
    summary.statuses[endpoint.status] += 1;
    summary.versions[endpoint.version] = (summary.versions[endpoint.version] ?? 0) + 1;
    for (const [type, version] of Object.entries(endpoint.handlers)) {
      const counts = (summary.handlers[type] ??= {});
      counts[version] = (counts[version] ?? 0) + 1;
    }
  }
  return summary;
}

/**
 * A page of the registry, by name after `after`, with the summary of every endpoint the filter
 * matches. The registry is read whole: it holds one small row per endpoint.
 */
export async function listEndpoints(
  db: Db,
  filter: EndpointFilter,
  page: { limit: number; after: string | null },
  now = new Date(),
): Promise<EndpointPage> {
  const matching = (await listEndpointRows(db))
    .map((row) => toEndpointView(row, now))
    .filter((endpoint) => matches(endpoint, filter));
  const { after } = page;
  const from = after === null ? matching : matching.filter((endpoint) => endpoint.name > after);
  const endpoints = from.slice(0, page.limit);
  return {
    endpoints,
    next: from.length > page.limit ? (endpoints[endpoints.length - 1]?.name ?? null) : null,
    summary: summarize(matching),
  };
}

/** Every registered endpoint, by name. */
export async function listEndpointRows(db: Db): Promise<EndpointRow[]> {
  try {
    return (await db('endpoints').orderBy('name')) as EndpointRow[];
  } catch (err) {
    throw asStoreError(err);
  }
}

export async function findEndpointRow(db: Db, name: string): Promise<EndpointRow | null> {
  try {
    const row = (await db('endpoints').where({ name }).first()) as EndpointRow | undefined;
    return row ?? null;
  } catch (err) {
    throw asStoreError(err);
  }
}

/** Forget a decommissioned endpoint; true when it was known. It comes back if it beats again. */
export async function forgetEndpoint(db: Db, name: string): Promise<boolean> {
  try {
    return (await db('endpoints').where({ name }).delete()) > 0;
  } catch (err) {
    throw asStoreError(err);
  }
}

/** The registry's endpoints that serve `type` and match `selector`, by name. */
export async function selectEndpoints(
  db: Db,
  type: string,
  selector: Selector,
  now = new Date(),
): Promise<string[]> {
  const rows = await listEndpointRows(db);
  return rows
    .map((row) => toEndpointView(row, now))
    .filter((endpoint) => endpoint.types.includes(type) && selects(selector, endpoint))
    .map((endpoint) => endpoint.name);
}

/** What the registry knows of these endpoints, by name: never seen when it has no row. */
export async function registryOf(
  db: Db,
  names: readonly string[],
  now = new Date(),
): Promise<Map<string, RegistryStatus>> {
  const known = new Map<string, RegistryStatus>();
  if (names.length === 0) return known;
  try {
    for (let i = 0; i < names.length; i += IN_CHUNK) {
      const chunk = names.slice(i, i + IN_CHUNK);
      const rows = (await db('endpoints').whereIn('name', chunk)) as EndpointRow[];
      for (const row of rows) {
        const view = toEndpointView(row, now);
        known.set(row.name, {
          status: view.status,
          since: view.since,
          last_seen_at: view.last_seen_at,
        });
      }
    }
  } catch (err) {
    throw asStoreError(err);
  }
  return new Map(names.map((name) => [name, known.get(name) ?? { status: 'never_seen' }]));
}

/** One task of an endpoint: the task and this endpoint's response to it. */
export interface EndpointTask {
  type: string;
  identifier: string;
  task_status: TaskStatus;
  status: ResponseStatus;
  round: number;
  errnr: number | null;
  errmsg: string | null;
  last_modified_time: string;
  finished_at: string | null;
}

/** The endpoint's latest tasks, newest first. */
export async function recentTasksOf(
  db: Db,
  endpoint: string,
  limit: number,
): Promise<EndpointTask[]> {
  try {
    const rows = (await db('task_responses as r')
      .join('tasks as t', 't.id', 'r.task_id')
      .where('r.endpoint', endpoint)
      .orderBy('r.task_id', 'desc')
      .limit(limit)
      .select(
        't.type',
        't.identifier',
        't.status as task_status',
        'r.status',
        'r.round',
        'r.errnr',
        'r.errmsg',
        'r.last_modified_time',
        'r.finished_at',
      )) as Array<
      Omit<EndpointTask, 'last_modified_time' | 'finished_at'> & {
        last_modified_time: Date;
        finished_at: Date | null;
      }
    >;
    return rows.map((row) => ({
      ...row,
      round: Number(row.round),
      last_modified_time: row.last_modified_time.toISOString(),
      finished_at: row.finished_at === null ? null : row.finished_at.toISOString(),
    }));
  } catch (err) {
    throw asStoreError(err);
  }
}
