/**
 * The fleet: what an agent says of itself (hello, heartbeat, goodbye) and how a task's POST
 * picks endpoints from the fleet by selector. Pure: the agent builds heartbeats, the recorder
 * checks them, the store keeps them, the API reads selectors.
 */
import { MessageError } from './errors';
import {
  checkString,
  isPlainObject,
  readInt,
  readString,
  readTimestamp,
  rejectUnknownKeys,
  type Fail,
} from './fields';
import { checkEndpoint, checkTaskType } from './names';

export const HEARTBEAT_VERSION = 1;
/** the shortest heartbeat interval an agent may have */
export const MIN_HEARTBEAT_MS = 100;
/** the longest: a day */
export const MAX_HEARTBEAT_MS = 86_400_000;
/** the most task types one agent may serve, as a heartbeat tells them */
const MAX_TYPES = 1000;

/** What an agent reports of itself: at start, every `agent.heartbeat`, and at a clean stop. */
export interface Heartbeat {
  v: typeof HEARTBEAT_VERSION;
  kind: 'heartbeat';
  endpoint: string;
  /** `hello` at start, `beat` while it runs, `goodbye` at a clean stop */
  phase: 'hello' | 'beat' | 'goodbye';
  types: string[];
  labels: Record<string, string>;
  /** tasker's version */
  version: string;
  /** each task type's handler version: its exported `version`, else a hash of its file */
  handlers: Record<string, string>;
  hostname: string;
  pid: number;
  started_at: string;
  /** handlers running now, and at most at once */
  running: number;
  capacity: number;
  /** how often it beats: the server takes it for away after three beats missed */
  interval_ms: number;
  at: string;
}

/** What a label's key looks like: `role`, `dc`, `app.kubernetes.io/name`-like keys included. */
export const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
export const MAX_LABELS = 32;
export const MAX_LABEL_VALUE = 255;

/** `{key: value}` of strings: the labels of an agent, or of a selector. */
export function readLabels(value: unknown, path: string, fail: Fail): Record<string, string> {
  if (!isPlainObject(value)) throw fail(path, 'must be an object of label names to strings');
  const entries = Object.entries(value);
  if (entries.length > MAX_LABELS) {
    throw fail(path, `has ${entries.length} labels; at most ${MAX_LABELS}`);
  }
  const labels: Record<string, string> = {};
  for (const [key, item] of entries) {
    if (!LABEL_KEY.test(key)) {
      throw fail(
        `${path}.${key}`,
        'is not a label name: 1-63 letters, digits, ".", "_", "/" or "-", starting with a letter or digit',
      );
    }
    if (typeof item !== 'string') throw fail(`${path}.${key}`, 'must be a string');
    labels[key] = checkString(item, `${path}.${key}`, fail, { maxLength: MAX_LABEL_VALUE });
  }
  return labels;
}

const messageFail: Fail = (path, problem) => new MessageError(`heartbeat ${path} ${problem}`);

/** A heartbeat from its parsed JSON; throws a MessageError naming what is wrong. */
export function readHeartbeat(obj: Record<string, unknown>): Heartbeat {
  const fail = messageFail;
  if (obj.v !== HEARTBEAT_VERSION) {
    throw new MessageError(`heartbeat has unsupported schema version ${JSON.stringify(obj.v)}`);
  }
  const phase = obj.phase;
  if (phase !== 'hello' && phase !== 'beat' && phase !== 'goodbye') {
    throw fail('phase', 'must be hello, beat or goodbye');
  }
  if (!Array.isArray(obj.types) || obj.types.length > MAX_TYPES) {
    throw fail('types', `must be an array of at most ${MAX_TYPES} task types`);
  }
  const handlers = obj.handlers ?? {};
  if (!isPlainObject(handlers)) throw fail('handlers', 'must be an object');
  readTimestamp(obj, 'at', '', fail);
  readTimestamp(obj, 'started_at', '', fail);
  return {
    v: HEARTBEAT_VERSION,
    kind: 'heartbeat',
    endpoint: checkEndpoint(obj.endpoint, 'endpoint', fail),
    phase,
    types: obj.types.map((type, i) => checkTaskType(type, `types[${i}]`, fail)),
    labels: readLabels(obj.labels ?? {}, 'labels', fail),
    version: readString(obj, 'version', '', fail, { maxLength: 64 }),
    handlers: Object.fromEntries(
      Object.entries(handlers).map(([type, version]) => [
        checkTaskType(type, `handlers.${type}`, fail),
        checkString(version, `handlers.${type}`, fail, { maxLength: 64 }),
      ]),
    ),
    hostname: readString(obj, 'hostname', '', fail, { maxLength: 255 }),
    pid: readInt(obj, 'pid', '', fail, { min: 0 }),
    started_at: obj.started_at as string,
    running: readInt(obj, 'running', '', fail, { min: 0 }),
    capacity: readInt(obj, 'capacity', '', fail, { min: 0 }),
    interval_ms: readInt(obj, 'interval_ms', '', fail, {
      min: MIN_HEARTBEAT_MS,
      max: MAX_HEARTBEAT_MS,
    }),
    at: obj.at as string,
  };
}

/** An endpoint's standing as the registry sees it. */
export type EndpointStatus = 'online' | 'offline' | 'stopped';
export const ENDPOINT_STATUSES: readonly EndpointStatus[] = ['online', 'offline', 'stopped'];

/** Missed beats after which an endpoint counts as offline. */
export const MISSED_BEATS = 3;

/** Endpoints picked from the fleet: by labels and status, or every one serving the type. */
export type Selector = { labels: Record<string, string>; status: EndpointStatus | null } | '*';

/**
 * `"*"` or `{labels?, status?}`: what a POST's `endpoints` holds when it picks endpoints from
 * the fleet instead of naming them.
 */
export function readSelector(value: unknown, path: string, fail: Fail): Selector {
  if (value === '*') return '*';
  if (!isPlainObject(value)) {
    throw fail(path, 'must be a list of endpoint names, "*", or a selector {labels, status}');
  }
  rejectUnknownKeys(value, ['labels', 'status'], path, fail);
  const labels = value.labels === undefined ? {} : readLabels(value.labels, `${path}.labels`, fail);
  let status: EndpointStatus | null = null;
  if (value.status !== undefined && value.status !== null) {
    const found = ENDPOINT_STATUSES.find((candidate) => candidate === value.status);
    if (found === undefined) {
      throw fail(`${path}.status`, `must be one of ${ENDPOINT_STATUSES.join(', ')}`);
    }
    status = found;
  }
  if (Object.keys(labels).length === 0 && status === null) {
    throw fail(path, 'must select by labels or status (or be "*" for every endpoint of the type)');
  }
  return { labels, status };
}

/** The selector as stored with its task: JSON with the labels in name order. */
export function selectorText(selector: Selector): string {
  if (selector === '*') return JSON.stringify('*');
  const labels = Object.fromEntries(
    Object.entries(selector.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  return JSON.stringify({ labels, status: selector.status });
}

/** Whether an endpoint of the registry matches the selector (its type is checked apart). */
export function selects(
  selector: Selector,
  endpoint: { status: EndpointStatus; labels: Readonly<Record<string, string>> },
): boolean {
  if (selector === '*') return true;
  if (selector.status !== null && endpoint.status !== selector.status) return false;
  return Object.entries(selector.labels).every(([key, value]) => endpoint.labels[key] === value);
}

/** The selector as people read it, for messages: `role=web,dc=fra1 (online)`, or `*`. */
export function describeSelector(selector: Selector): string {
  if (selector === '*') return '*';
  const labels = Object.entries(selector.labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
  return [labels, selector.status === null ? '' : `(${selector.status})`]
    .filter((part) => part !== '')
    .join(' ');
}

/** `key=value` of a label filter in a query string. */
export function readLabelFilter(text: string, path: string, fail: Fail): [string, string] {
  const equals = text.indexOf('=');
  if (equals <= 0) throw fail(path, `must be key=value, got ${JSON.stringify(text)}`);
  const key = text.slice(0, equals);
  if (!LABEL_KEY.test(key)) throw fail(path, `${JSON.stringify(key)} is not a label name`);
  return [key, text.slice(equals + 1)];
}
