/**
 * What requests carry, checked field by field with errors that name the field (the fields each
 * request takes, and their schemas for the OpenAPI document, are in request-fields.ts): the
 * body of a new task `{identifier, payload?, endpoints?, rollout?, success_threshold?,
 * priority?, not_before?, after?,
 * on_dependency_failure?}`
 * (endpoints: names, or a selector of the fleet), of a cancel and
 * of a retry, and the query of a task list or a wait. Nothing is written for a request that
 * fails here.
 */
import {
  TaskerError,
  ValidationError,
  checkEndpoint,
  checkTaskType,
  ENDPOINT_STATUSES,
  MAX_PRIORITY,
  MAX_JSON_DEPTH,
  TASK_STATUSES,
  checkInt,
  checkString,
  isPlainObject,
  nestsDeeperThan,
  readLabelFilter,
  readRollout,
  readSelector,
  readShare,
  readString,
  rejectUnknownKeys,
  type Fail,
  type Rollout,
  type Selector,
  type Share,
  readAfter,
  readPolicy,
  type DependencyPolicy,
  type TaskRef,
} from '../domain';
import { parseDuration } from '../config';
import type { EndpointFilter, TaskFilter } from '../store';
import {
  CANCEL_BODY,
  ENDPOINT_QUERY,
  LIST_QUERY,
  RETRY_BODY,
  TASK_BODY,
  WAIT_QUERY,
  fieldNames,
} from './request-fields';

export interface CreateTaskBody {
  identifier: string;
  payload: unknown;
  /** null when the client named no endpoints: a broadcast to every subscriber */
  endpoints: string[] | null;
  /** endpoints to pick from the fleet instead of naming them (endpoints is then null) */
  selector: Selector | null;
  /** undefined: the task type's; null: none */
  rollout?: Rollout | null;
  successThreshold?: Share | null;
  /** hold the task SCHEDULED until then; absent when it is to be published at once */
  notBefore?: Date;
  /** hold the task WAITING until these tasks are final */
  after?: TaskRef[];
  onDependencyFailure?: DependencyPolicy;
  /** 0 (routine) to 9 (most urgent); absent: the task type's */
  priority?: number;
}

export interface BodyLimits {
  maxIdentifierLength: number;
  maxPayloadBytes: number;
  maxEndpoints: number;
  /** the furthest ahead a not_before may be */
  maxDelayMs: number;
}

/**
 * How far in the past a not_before may be and still be taken (the client's clock may run
 * behind): such a task, like one whose time is now, is published at once. Further in the past
 * is most likely a mistake, and refused.
 */
export const NOT_BEFORE_PAST_MS = 60_000;

/** an ISO 8601 time that says its offset from UTC */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;
const LOOKS_LIKE_DATE = /^\d{4}-\d{2}-\d{2}/;

/**
 * `not_before`: an ISO 8601 time with its offset ("2026-12-03T03:00:00Z"), or a duration from
 * now ("10m", "2h", or seconds as a number). Undefined when the task is due now.
 */
function readNotBefore(value: unknown, now: Date, maxDelayMs: number): Date | undefined {
  if (value === undefined || value === null) return undefined;
  const path = 'not_before';
  let at: number;
  if (typeof value === 'string' && LOOKS_LIKE_DATE.test(value.trim())) {
    const text = value.trim();
    if (!ISO_TIME.test(text)) {
      throw fail(
        path,
        `must be an ISO 8601 time with its offset from UTC, such as "2026-12-03T03:00:00Z" or ` +
          `"2026-12-03T04:00:00+01:00"; got ${JSON.stringify(value)}`,
      );
    }
    at = Date.parse(text);
    if (Number.isNaN(at)) throw fail(path, `is not a valid time: ${JSON.stringify(value)}`);
  } else {
    try {
      at = now.getTime() + parseDuration(value);
    } catch {
      throw fail(
        path,
        'must be an ISO 8601 time such as "2026-12-03T03:00:00Z", or a duration from now such ' +
          `as "10m" or "2h"; got ${JSON.stringify(value)}`,
      );
    }
  }
  const late = now.getTime() - at;
  if (late > NOT_BEFORE_PAST_MS) {
    throw fail(
      path,
      `${new Date(at).toISOString()} is ${Math.round(late / 1000)} s in the past; ` +
        `at most ${NOT_BEFORE_PAST_MS / 1000} s in the past is taken (and published at once)`,
    );
  }
  if (at - now.getTime() > maxDelayMs) {
    throw fail(
      path,
      `${new Date(at).toISOString()} is more than ${Math.round(maxDelayMs / 3_600_000)} h ` +
        'ahead; the limit is api.max_delay',
    );
  }
  return at > now.getTime() ? new Date(at) : undefined;
}

const fail: Fail = (path, problem) => new ValidationError(`${path} ${problem}`, path);

export function parseCreateTaskBody(
  body: unknown,
  limits: BodyLimits,
  now = new Date(),
): CreateTaskBody {
  if (!isPlainObject(body)) throw new ValidationError('request body must be a JSON object');
  rejectUnknownKeys(body, fieldNames(TASK_BODY), '', fail);
  const identifier = readString(body, 'identifier', '', fail, {
    maxLength: limits.maxIdentifierLength,
  });

  const payload = body.payload ?? null;
  if (nestsDeeperThan(payload, MAX_JSON_DEPTH)) {
    throw fail('payload', `nests deeper than ${MAX_JSON_DEPTH} levels of arrays and objects`);
  }
  const payloadBytes = Buffer.byteLength(JSON.stringify(payload), 'utf8');
  if (payloadBytes > limits.maxPayloadBytes) {
    throw new TaskerError(
      'payload_too_large',
      `payload is ${payloadBytes} bytes as JSON; the limit is ${limits.maxPayloadBytes}`,
      { details: { field: 'payload' } },
    );
  }

  const named = Array.isArray(body.endpoints) || body.endpoints == null;
  const endpoints = named ? readEndpoints(body.endpoints, limits.maxEndpoints) : null;
  const selector = named ? null : readSelector(body.endpoints, 'endpoints', fail);
  const parsed: CreateTaskBody = { identifier, payload, endpoints, selector };
  if (body.rollout !== undefined) {
    parsed.rollout =
      body.rollout === null ? null : readRollout(body.rollout, 'rollout', fail, duration);
    if (parsed.rollout !== null && endpoints === null && selector === null) {
      throw fail('rollout', 'needs endpoints: a broadcast goes to every agent at once');
    }
  }
  if (body.success_threshold !== undefined) {
    parsed.successThreshold =
      body.success_threshold === null
        ? null
        : readShare(body.success_threshold, 'success_threshold', fail, 1);
  }
  if (body.priority !== undefined && body.priority !== null) {
    parsed.priority = checkInt(body.priority, 'priority', fail, { min: 0, max: MAX_PRIORITY });
  }
  const notBefore = readNotBefore(body.not_before, now, limits.maxDelayMs);
  if (notBefore !== undefined) parsed.notBefore = notBefore;
  if (body.after !== undefined && body.after !== null) {
    parsed.after = readAfter(body.after, 'after', fail, limits.maxIdentifierLength);
  }
  if (body.on_dependency_failure !== undefined && body.on_dependency_failure !== null) {
    if (parsed.after === undefined) {
      throw fail('on_dependency_failure', 'needs after: the tasks this one waits for');
    }
    parsed.onDependencyFailure = readPolicy(
      body.on_dependency_failure,
      'on_dependency_failure',
      fail,
    );
  }
  return parsed;
}

/** A duration of the body or query (a number of seconds, or "250ms", "5m", …) at `path`. */
export function readDuration(value: unknown, path: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw fail(path, (err as Error).message);
  }
}

function duration(value: unknown, path: string): number {
  const ms = readDuration(value, path);
  if (ms > 7 * 24 * 3_600_000) throw fail(path, 'must be at most 7 days');
  return ms;
}

/** A list of distinct endpoint names, or null when absent (all). */
function readEndpoints(raw: unknown, max: number): string[] | null {
  if (raw === undefined || raw === null) return null;
  if (!Array.isArray(raw)) throw fail('endpoints', 'must be an array of endpoint names');
  // an empty list is most often a filter that matched nothing, not a wish to broadcast
  if (raw.length === 0) {
    throw fail('endpoints', 'must name at least one endpoint (omit it to broadcast)');
  }
  if (raw.length > max) {
    throw fail('endpoints', `lists ${raw.length} endpoints; the limit is ${max}`);
  }
  const seen = new Map<string, number>();
  return raw.map((value, i) => {
    const endpoint = checkEndpoint(value, `endpoints[${i}]`, fail);
    const first = seen.get(endpoint);
    if (first !== undefined) throw fail(`endpoints[${i}]`, `repeats endpoints[${first}]`);
    seen.set(endpoint, i);
    return endpoint;
  });
}

/** An optional JSON object body: an empty body is an empty object. */
function optionalObject(body: unknown, keys: string[]): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (!isPlainObject(body)) throw new ValidationError('request body must be a JSON object');
  rejectUnknownKeys(body, keys, '', fail);
  return body;
}

export interface CancelBody {
  endpoints: string[] | null;
  reason: string;
}

/** `{endpoints?, reason?}`; no body cancels every endpoint. */
export function parseCancelBody(body: unknown, limits: BodyLimits): CancelBody {
  const obj = optionalObject(body, fieldNames(CANCEL_BODY));
  const reason =
    obj.reason === undefined || obj.reason === null
      ? 'cancelled by the operator'
      : checkString(obj.reason, 'reason', fail, { maxLength: 1000 });
  return { endpoints: readEndpoints(obj.endpoints, limits.maxEndpoints), reason };
}

export interface RetryBody {
  endpoints: string[] | null;
  /** the round to retry, null: the latest */
  round: number | null;
}

/** `{endpoints?, round?}`; no body retries every endpoint that did not succeed. */
export function parseRetryBody(body: unknown, limits: BodyLimits): RetryBody {
  const obj = optionalObject(body, fieldNames(RETRY_BODY));
  return {
    endpoints: readEndpoints(obj.endpoints, limits.maxEndpoints),
    round:
      obj.round === undefined || obj.round === null
        ? null
        : checkInt(obj.round, 'round', fail, { min: 1 }),
  };
}

/** A query parameter given once, or undefined; a repeated one is refused. */
function param(query: Record<string, unknown>, key: string): string | undefined {
  const value = query[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw fail(key, 'must be given once');
  return value;
}

function timestamp(query: Record<string, unknown>, key: string): Date | undefined {
  const text = param(query, key);
  if (text === undefined) return undefined;
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw fail(key, 'must be an ISO-8601 time');
  return date;
}

/** A task list's filter as the query gives it; the route adds the type. */
export type ListQuery = Omit<TaskFilter, 'type'>;

/** `?status=&endpoint=&since=&until=&identifier=&limit=&cursor=` of a task list. */
export function parseListQuery(query: Record<string, unknown>, maxList: number): ListQuery {
  rejectUnknownKeys(query, fieldNames(LIST_QUERY), '', fail);
  const parsed: ListQuery = { limit: Math.min(100, maxList) };
  const status = param(query, 'status');
  if (status !== undefined) {
    parsed.statuses = status.split(',').map((word, i) => {
      const found = TASK_STATUSES.find((known) => known === word.trim().toUpperCase());
      if (found === undefined) {
        throw fail(
          `status`,
          `names ${JSON.stringify(word)} (item ${i + 1}); one of ${TASK_STATUSES.join(', ')}`,
        );
      }
      return found;
    });
  }
  const endpoint = param(query, 'endpoint');
  if (endpoint !== undefined) parsed.endpoint = checkEndpoint(endpoint, 'endpoint', fail);
  const since = timestamp(query, 'since');
  if (since !== undefined) parsed.since = since;
  const until = timestamp(query, 'until');
  if (until !== undefined) parsed.until = until;
  const prefix = param(query, 'identifier');
  if (prefix !== undefined) parsed.identifierPrefix = checkString(prefix, 'identifier', fail);
  parsed.limit = readLimit(query, maxList, parsed.limit);
  const cursor = param(query, 'cursor');
  if (cursor !== undefined) parsed.beforeId = readCursor(cursor);
  return parsed;
}

/** `?limit=N` of a list, at most `max`. */
function readLimit(query: Record<string, unknown>, max: number, fallback: number): number {
  const limit = param(query, 'limit');
  if (limit === undefined) return fallback;
  return checkInt(/^\d+$/.test(limit) ? Number(limit) : limit, 'limit', fail, { min: 1, max });
}

/** A comma-separated query parameter, given once or repeated, as its items. */
function items(query: Record<string, unknown>, key: string): string[] {
  const value = query[key];
  if (value === undefined) return [];
  const given = Array.isArray(value) ? value.map(String) : [String(value)];
  return given.flatMap((text) => text.split(',')).flatMap((item) => item.trim() || []);
}

/**
 * `?type=&label=k=v&status=&version=&handler_version=&limit=&after=` of the fleet's list:
 * labels and statuses may be repeated or comma-separated (all labels must match, any status).
 */
export function parseEndpointQuery(
  query: Record<string, unknown>,
  maxList: number,
): EndpointFilter & { limit: number; after: string | null } {
  rejectUnknownKeys(query, fieldNames(ENDPOINT_QUERY), '', fail);
  const type = param(query, 'type');
  const labels = Object.fromEntries(
    items(query, 'label').map((text) => readLabelFilter(text, 'label', fail)),
  );
  const statuses = items(query, 'status').map((word) => {
    const found = ENDPOINT_STATUSES.find((known) => known === word.toLowerCase());
    if (found === undefined) {
      throw fail('status', `names ${JSON.stringify(word)}; one of ${ENDPOINT_STATUSES.join(', ')}`);
    }
    return found;
  });
  const version = param(query, 'version');
  const handlerVersion = param(query, 'handler_version');
  const after = param(query, 'after');
  return {
    type: type === undefined ? null : checkTaskType(type, 'type', fail),
    labels,
    statuses: statuses.length === 0 ? null : statuses,
    version: version ?? null,
    handlerVersion: handlerVersion ?? null,
    limit: readLimit(query, maxList, maxList),
    after: after === undefined ? null : checkEndpoint(after, 'after', fail),
  };
}

/** The page cursor: opaque to clients, the id to continue below. */
export function writeCursor(beforeId: number): string {
  return Buffer.from(`before:${beforeId}`).toString('base64url');
}

function readCursor(cursor: string): number {
  const match = /^before:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (match === null) throw fail('cursor', 'is not a cursor this API gave out');
  return Number(match[1]);
}

export interface WaitQuery {
  /** how long to wait for a change, 0: answer at once */
  waitMs: number;
  /** answer once the task's version is past this one (or it is final); null: once final */
  afterVersion: number | null;
}

/** `?wait=30s&version=N` of a task GET; an If-None-Match ETag stands for the version. */
export function parseWaitQuery(
  query: Record<string, unknown>,
  ifNoneMatch: string | undefined,
  maxWaitMs: number,
): WaitQuery {
  rejectUnknownKeys(query, fieldNames(WAIT_QUERY), '', fail);
  let waitMs = 0;
  const wait = param(query, 'wait');
  if (wait !== undefined) {
    waitMs = readDuration(wait, 'wait');
    if (waitMs > maxWaitMs) {
      throw fail('wait', `must be at most ${maxWaitMs / 1000} s (api.max_wait)`);
    }
  }
  const version = param(query, 'version');
  let afterVersion: number | null = null;
  if (version !== undefined) {
    afterVersion = checkInt(/^\d+$/.test(version) ? Number(version) : version, 'version', fail, {
      min: 0,
    });
  } else if (ifNoneMatch !== undefined) {
    const match = /^W\/"\d+\.(\d+)"$/.exec(ifNoneMatch.trim());
    if (match !== null) afterVersion = Number(match[1]);
  }
  return { waitMs, afterVersion };
}

/** The ETag of a task at a version. */
export const taskEtag = (taskId: number, version: number): string => `W/"${taskId}.${version}"`;
