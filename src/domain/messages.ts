/**
 * AMQP wire formats: the task message fanned out to endpoints and the result event agents send
 * back. JSON only, versioned, validated on receipt; nothing in them is ever evaluated.
 */
import { MessageError } from './errors';
import {
  MAX_JSON_DEPTH,
  checkInt,
  isPlainObject,
  nestsDeeperThan,
  readInt,
  readOptionalString,
  readString,
  readTimestamp,
  type Fail,
} from './fields';
import { readHeartbeat, type Heartbeat } from './fleet';
import type { DependencyResult } from './dependencies';
import { checkEndpoint, checkTaskType } from './names';
import { readWireRetry, retryToWire, type WireRetry } from './retry';
import { isResponseStatus, type ResponseStatus, type TaskStatus } from './states';

export const WIRE_VERSION = 1;

export interface TaskMessage {
  v: typeof WIRE_VERSION;
  id: number;
  identifier: string;
  type: string;
  payload: unknown;
  /** the addressed endpoints, or null for a broadcast to every subscriber */
  endpoints: string[] | null;
  created_at: string;
  deliver_by: string;
  /** how long a handler may run before the agent aborts it */
  execution_timeout_ms: number;
  /** deliveries to one endpoint before its agent gives up on the task */
  max_deliveries: number;
  /** 1, and one more for each retry: a new round runs again where an earlier one ran */
  round: number;
  /** the tasks it came after, with their results (bounded), when it has any */
  dependencies?: DependencyResult[];
  /** how a run that asks to be retried (errnr 75 or 76) runs again; absent: it does not */
  retry?: WireRetry;
  /** 0 (routine, the default) to 9 (most urgent), as the AMQP message priority too */
  priority?: number;
}

/** the highest task priority (queues are declared with this x-max-priority) */
export const MAX_PRIORITY = 9;

/**
 * When a task message stops being worth delivering: its delivery deadline plus its execution
 * timeout. The broker drops it then. Before it, an endpoint that started the task before the
 * delivery deadline runs it again after a crash; one that did not start it in time never does.
 * (Were the message to expire at the delivery deadline, a task whose agent was killed mid-run
 * would be dropped on redelivery, and its endpoint would show RUNNING until the sweeper's
 * silence limit.)
 */
export function taskExpiresAt(
  task: Pick<TaskMessage, 'deliver_by' | 'execution_timeout_ms'>,
): number {
  return Date.parse(task.deliver_by) + task.execution_timeout_ms;
}

/**
 * A message from the server to the agents of a task type, beside their tasks: today a cancel.
 * It reaches every agent of the type; those whose endpoint it names stop the task's runs of
 * that round, and drop its copies they have not started.
 */
export interface ControlMessage {
  v: typeof WIRE_VERSION;
  kind: 'cancel';
  task_id: number;
  type: string;
  round: number;
  /** the endpoints it concerns, or null for all of the task's */
  endpoints: string[] | null;
  reason: string;
  /** the task message's expiry: there is nothing to cancel after it */
  expires_at: string;
}

export function parseControlMessage(raw: Buffer | string): ControlMessage {
  const obj = parseJsonObject(raw, 'control message');
  if (obj.kind !== 'cancel') throw fail('kind', 'must be "cancel"');
  let endpoints: string[] | null = null;
  if (obj.endpoints !== null && obj.endpoints !== undefined) {
    if (!Array.isArray(obj.endpoints)) throw fail('endpoints', 'must be an array or null');
    endpoints = obj.endpoints.map((e, i) => checkEndpoint(e, `endpoints[${i}]`, fail));
  }
  readTimestamp(obj, 'expires_at', '', fail);
  return {
    v: WIRE_VERSION,
    kind: 'cancel',
    task_id: readInt(obj, 'task_id', '', fail, { min: 1 }),
    type: checkTaskType(obj.type, 'type', fail),
    round: readInt(obj, 'round', '', fail, { min: 1 }),
    endpoints,
    reason: readString(obj, 'reason', '', fail, { allowControl: true, maxLength: 1000 }),
    expires_at: obj.expires_at as string,
  };
}

/**
 * A change of a task or of some of its endpoints' rows, as published after the change was
 * committed: to `<prefix>.events` (a topic exchange, routing key `<type>.<task status>`) for
 * other systems, and for the servers whose clients wait for news of the task.
 */
export interface ChangeEvent {
  v: typeof WIRE_VERSION;
  type: string;
  task_id: number;
  identifier: string;
  status: TaskStatus;
  /** the task's version after the change; it grows with every change */
  version: number;
  /** the rows that changed, as they are now */
  responses: Array<{
    endpoint: string;
    status: ResponseStatus;
    round: number;
    attempt: number;
    errnr: number | null;
  }>;
  at: string;
}

/** A change event as a server reads it back: its task named properly, the rest as sent. */
export function parseChangeEvent(raw: Buffer | string): ChangeEvent {
  const obj = parseJsonObject(raw, 'change event');
  readInt(obj, 'task_id', '', fail, { min: 1 });
  readInt(obj, 'version', '', fail, { min: 0 });
  checkTaskType(obj.type, 'type', fail);
  return obj as unknown as ChangeEvent;
}

export const RESULT_EVENTS = ['received', 'progress', 'retrying', 'finished'] as const;
export type ResultEventKind = (typeof RESULT_EVENTS)[number];

export interface Progress {
  current: number;
  total: number | null;
  line: string | null;
}

export interface AgentInfo {
  hostname: string;
  pid: number;
  version: string;
}

export interface ResultEvent {
  v: typeof WIRE_VERSION;
  task_id: number;
  type: string;
  endpoint: string;
  event: ResultEventKind;
  status: ResponseStatus;
  errnr: number | null;
  errmsg: string | null;
  payload: unknown;
  progress: Progress | null;
  at: string;
  attempt: number;
  agent: AgentInfo | null;
  /** the round the event is about; null from agents older than rounds (the current one) */
  round: number | null;
  /**
   * a finished event's captured output (stdout and stderr of a command, ctx.log lines of a
   * module), head and tail within the agent's output_limit; absent or null: none
   */
  output?: string | null;
  /** how long the whole output was, in bytes, before the agent kept head and tail */
  output_bytes?: number | null;
  /** a retrying event's: when the next run starts */
  next_attempt_at?: string | null;
}

const fail: Fail = (path, problem) => new MessageError(`${path} ${problem}`);

function parseJson(raw: Buffer | string, what: string): unknown {
  try {
    return JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (err) {
    throw new MessageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function parseJsonObject(raw: Buffer | string, what: string): Record<string, unknown> {
  return checkObject(parseJson(raw, what), what);
}

function checkObject(parsed: unknown, what: string): Record<string, unknown> {
  if (!isPlainObject(parsed)) throw new MessageError(`${what} must be a JSON object`);
  const v = parsed.v;
  if (v !== WIRE_VERSION) {
    throw new MessageError(`${what} has unsupported schema version ${JSON.stringify(v)}`);
  }
  return parsed;
}

export function parseTaskMessage(raw: Buffer | string): TaskMessage {
  const obj = parseJsonObject(raw, 'task message');
  let endpoints: string[] | null = null;
  if (obj.endpoints !== null && obj.endpoints !== undefined) {
    if (!Array.isArray(obj.endpoints)) throw fail('endpoints', 'must be an array or null');
    endpoints = obj.endpoints.map((e, i) => checkEndpoint(e, `endpoints[${i}]`, fail));
  }
  readTimestamp(obj, 'created_at', '', fail);
  readTimestamp(obj, 'deliver_by', '', fail);
  return {
    v: WIRE_VERSION,
    id: readInt(obj, 'id', '', fail, { min: 1 }),
    identifier: readString(obj, 'identifier', '', fail, { allowControl: true }),
    type: checkTaskType(obj.type, 'type', fail),
    payload: obj.payload ?? null,
    endpoints,
    created_at: obj.created_at as string,
    deliver_by: obj.deliver_by as string,
    execution_timeout_ms: readInt(obj, 'execution_timeout_ms', '', fail, { min: 1 }),
    max_deliveries: readInt(obj, 'max_deliveries', '', fail, { min: 1 }),
    // a server from before rounds sends none: its tasks have one
    round: obj.round === undefined ? 1 : readInt(obj, 'round', '', fail, { min: 1 }),
    ...readDependencies(obj.dependencies),
    ...readRetryField(obj.retry),
    ...(obj.priority === undefined || obj.priority === null
      ? {}
      : { priority: readInt(obj, 'priority', '', fail, { min: 0, max: MAX_PRIORITY }) }),
  };
}

function readRetryField(value: unknown): { retry?: WireRetry } {
  const policy = readWireRetry(value, fail);
  return policy === null ? {} : { retry: retryToWire(policy) };
}

/** `dependencies` of a task message: absent, or the list the server took (checked shallowly). */
function readDependencies(value: unknown): { dependencies?: DependencyResult[] } {
  if (value === undefined || value === null) return {};
  if (!Array.isArray(value)) throw fail('dependencies', 'must be an array');
  value.forEach((item, i) => {
    if (!isPlainObject(item) || !Array.isArray(item.responses)) {
      throw fail(`dependencies[${i}]`, 'must be an object with its responses');
    }
  });
  return { dependencies: value as DependencyResult[] };
}

function parseProgress(value: unknown): Progress | null {
  if (value === null || value === undefined) return null;
  if (!isPlainObject(value)) throw fail('progress', 'must be an object or null');
  const total = value.total;
  return {
    current: checkInt(value.current, 'progress.current', fail, { min: 0 }),
    total: total === null || total === undefined ? null : checkInt(total, 'progress.total', fail),
    line: readText(value, 'line', 'progress', RESULT_LIMITS.progressLineChars),
  };
}

function parseAgent(value: unknown): AgentInfo | null {
  if (value === null || value === undefined) return null;
  if (!isPlainObject(value)) throw fail('agent', 'must be an object or null');
  return {
    hostname: readString(value, 'hostname', 'agent', fail, { maxLength: 255 }),
    pid: readInt(value, 'pid', 'agent', fail, { min: 0 }),
    version: readString(value, 'version', 'agent', fail, { maxLength: 64 }),
  };
}

/** The body of a result message: one event as itself, several as an array. */
export function encodeResultEvents(events: readonly ResultEvent[]): Buffer {
  return Buffer.from(JSON.stringify(events.length === 1 ? events[0] : events));
}

/** The most events one result message may carry. */
export const MAX_EVENTS_PER_MESSAGE = 1000;

/**
 * What one result event may carry: the response table's columns hold this much and no more. The
 * agent keeps its events within these limits, and the recorder refuses an event beyond them
 * instead of letting the database refuse the batch it is written in.
 */
export const RESULT_LIMITS = {
  /** errnr is stored as a signed 32-bit integer */
  minErrnr: -(2 ** 31),
  maxErrnr: 2 ** 31 - 1,
  errmsgChars: 4000,
  progressLineChars: 1000,
  /** a handler's response payload, as UTF-8 JSON */
  payloadBytes: 1024 * 1024,
  /** the output kept of one run (agent.output_limit is at most this, in bytes) */
  outputChars: 1024 * 1024,
  maxAttempt: 2 ** 31 - 1,
} as const;

/** `at` is stored as a DATETIME: from 1970 up to the end of year 9999 */
const LATEST_AT_MS = Date.UTC(10000, 0, 1);

export interface ResultMessage {
  /** the valid events, in message order */
  events: ResultEvent[];
  /** why each invalid event was refused */
  invalid: string[];
}

/**
 * A result message: one event, or an array of events an agent sent together, all for its own
 * endpoint (the broker user that published the message vouches for one endpoint only). A
 * message that is not JSON, holds no event or too many, or whose valid events name different
 * endpoints throws a MessageError; an invalid event among valid ones is listed in `invalid`, so
 * that the others can still be recorded.
 */
export function parseResultMessage(raw: Buffer | string): ResultMessage {
  return readResultMessage(parseJson(raw, 'result message'));
}

/** What reaches the results exchange from an agent: its results, or a heartbeat. */
export type AgentMessage =
  { kind: 'results'; message: ResultMessage } | { kind: 'heartbeat'; heartbeat: Heartbeat };

/**
 * A message from an agent: a heartbeat (an object of kind "heartbeat") or result events. Throws a
 * MessageError when it is neither.
 */
export function parseAgentMessage(raw: Buffer | string): AgentMessage {
  const parsed = parseJson(raw, 'agent message');
  if (isPlainObject(parsed) && parsed.kind === 'heartbeat') {
    return { kind: 'heartbeat', heartbeat: readHeartbeat(parsed) };
  }
  return { kind: 'results', message: readResultMessage(parsed) };
}

function readResultMessage(parsed: unknown): ResultMessage {
  const grouped = Array.isArray(parsed);
  const items: unknown[] = grouped ? parsed : [parsed];
  if (items.length === 0 || items.length > MAX_EVENTS_PER_MESSAGE) {
    throw new MessageError(
      `a result message carries 1 to ${MAX_EVENTS_PER_MESSAGE} events, not ${items.length}`,
    );
  }
  const events: ResultEvent[] = [];
  const invalid: string[] = [];
  items.forEach((item, i) => {
    try {
      events.push(readResultEvent(item));
    } catch (err) {
      if (!(err instanceof MessageError)) throw err;
      invalid.push(grouped ? `event ${i} of the result message: ${err.message}` : err.message);
    }
  });
  const endpoint = events[0]?.endpoint;
  if (events.some((event) => event.endpoint !== endpoint)) {
    throw new MessageError('the events of one result message must all be for one endpoint');
  }
  return { events, invalid };
}

/** Optional free text: control characters allowed, an empty string read as null. */
function readText(
  obj: Record<string, unknown>,
  key: string,
  path: string,
  maxLength: number,
): string | null {
  if (obj[key] === '') return null;
  return readOptionalString(obj, key, path, fail, { allowControl: true, maxLength });
}

/** One event of a result message, from its parsed JSON. */
export function readResultEvent(value: unknown): ResultEvent {
  const obj = checkObject(value, 'result event');
  const event = obj.event;
  if (typeof event !== 'string' || !(RESULT_EVENTS as readonly string[]).includes(event)) {
    throw fail('event', `must be one of ${RESULT_EVENTS.join(', ')}`);
  }
  const status = obj.status;
  if (!isResponseStatus(status) || status === 'PENDING' || status === 'UNDELIVERED') {
    throw fail(
      'status',
      'must be RECEIVED, RUNNING, RETRYING, DONE, FAILED, TIMED_OUT or CANCELLED',
    );
  }
  if ((event === 'retrying') !== (status === 'RETRYING')) {
    throw fail('status', 'is RETRYING for a retrying event, and only for one');
  }
  const errnr = obj.errnr;
  const at = readTimestamp(obj, 'at', '', fail).getTime();
  if (at < 0 || at >= LATEST_AT_MS) throw fail('at', 'must be between 1970 and 9999');
  const payload = obj.payload ?? null;
  if (nestsDeeperThan(payload, MAX_JSON_DEPTH)) {
    throw fail('payload', `nests deeper than ${MAX_JSON_DEPTH} levels of arrays and objects`);
  }
  if (payload !== null) {
    // measured as it will be stored: written again, it can be longer than it came (1e9, or
    // bytes that are not UTF-8), and too deep a payload fails here rather than in the recorder
    let bytes: number;
    try {
      bytes = Buffer.byteLength(JSON.stringify(payload));
    } catch (err) {
      throw fail('payload', `cannot be written as JSON: ${(err as Error).message}`);
    }
    if (bytes > RESULT_LIMITS.payloadBytes) {
      throw fail(
        'payload',
        `is ${bytes} bytes as JSON; the limit is ${RESULT_LIMITS.payloadBytes}`,
      );
    }
  }
  return {
    v: WIRE_VERSION,
    task_id: readInt(obj, 'task_id', '', fail, { min: 1 }),
    type: checkTaskType(obj.type, 'type', fail),
    endpoint: checkEndpoint(obj.endpoint, 'endpoint', fail),
    event: event as ResultEventKind,
    status,
    errnr:
      errnr === null || errnr === undefined
        ? null
        : checkInt(errnr, 'errnr', fail, {
            min: RESULT_LIMITS.minErrnr,
            max: RESULT_LIMITS.maxErrnr,
          }),
    errmsg: readText(obj, 'errmsg', '', RESULT_LIMITS.errmsgChars),
    payload,
    progress: parseProgress(obj.progress),
    at: obj.at as string,
    attempt: readInt(obj, 'attempt', '', fail, { min: 1, max: RESULT_LIMITS.maxAttempt }),
    agent: parseAgent(obj.agent),
    round:
      obj.round === undefined || obj.round === null
        ? null
        : readInt(obj, 'round', '', fail, { min: 1, max: RESULT_LIMITS.maxAttempt }),
    ...readOutput(obj),
    ...(event === 'retrying'
      ? { next_attempt_at: readTimestamp(obj, 'next_attempt_at', '', fail).toISOString() }
      : {}),
  };
}

/** The output fields of an event, when it carries them. */
function readOutput(obj: Record<string, unknown>): Pick<ResultEvent, 'output' | 'output_bytes'> {
  if (obj.output === undefined || obj.output === null) return {};
  return {
    output: readText(obj, 'output', '', RESULT_LIMITS.outputChars),
    output_bytes:
      obj.output_bytes === undefined || obj.output_bytes === null
        ? null
        : readInt(obj, 'output_bytes', '', fail, { min: 0 }),
  };
}
