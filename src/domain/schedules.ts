/**
 * Recurring schedules: what a POST /schedules body says, checked field by field, and when a
 * schedule is due next. `every` counts from `start_at` (or from when the schedule was made);
 * `cron` is read by cron-parser in the schedule's time zone, which settles the days clocks
 * change (a time that does not exist that day runs at the next that does; one that happens
 * twice runs once). Pure but for the clock the caller passes in.
 */
import { CronExpressionParser } from 'cron-parser';
import { isPlainObject, rejectUnknownKeys, checkString, type Fail } from './fields';
import { readSelector, type Selector } from './fleet';
import { checkEndpoint, checkTaskType } from './names';

export const SCHEDULE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const CATCH_UP_POLICIES = ['skip', 'one'] as const;
export type CatchUp = (typeof CATCH_UP_POLICIES)[number];

/** the shortest `every`: a schedule firing faster is a loop, not a schedule */
export const MIN_EVERY_MS = 1000;
/** the longest `every` */
export const MAX_EVERY_MS = 366 * 24 * 3_600_000;

export interface ScheduleSpec {
  name: string;
  type: string;
  payload: unknown;
  /** named endpoints, or null (a broadcast, or a selector resolved at each run) */
  endpoints: string[] | null;
  selector: Selector | null;
  everyMs: number | null;
  cron: string | null;
  timezone: string;
  startAt: Date | null;
  endAt: Date | null;
  catchUp: CatchUp;
  /** with `every`: after a FAILED run the interval grows by `factor`, up to `maxMs` */
  backoff: Backoff | null;
}

export interface Backoff {
  factor: number;
  maxMs: number;
}

/** the largest growth factor of a backoff */
export const MAX_BACKOFF_FACTOR = 10;

export interface ScheduleLimits {
  maxEndpoints: number;
  maxPayloadBytes: number;
}

/** A time zone the runtime knows (IANA names such as "Europe/Berlin", or "UTC"). */
export function checkTimezone(value: unknown, path: string, fail: Fail): string {
  const zone = checkString(value, path, fail, { maxLength: 64 });
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
  } catch {
    throw fail(
      path,
      `is not a time zone this server knows (such as "Europe/Berlin"), got ${JSON.stringify(zone)}`,
    );
  }
  return zone;
}

/** A cron expression of five fields (minute hour day-of-month month day-of-week). */
export function checkCron(value: unknown, path: string, fail: Fail): string {
  const text = checkString(value, path, fail, { maxLength: 200 }).trim();
  const fields = text.split(/\s+/);
  if (fields.length !== 5) {
    throw fail(
      path,
      `must have five fields (minute hour day-of-month month day-of-week), such as "0 3 * * *"; got ${fields.length}`,
    );
  }
  try {
    CronExpressionParser.parse(text, { tz: 'UTC', strict: false }).next();
  } catch (err) {
    throw fail(path, `is not a valid cron expression: ${(err as Error).message}`);
  }
  return text;
}

function readTime(value: unknown, path: string, fail: Fail): Date | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || !/(Z|[+-]\d{2}:?\d{2})$/i.test(value.trim())) {
    throw fail(
      path,
      'must be an ISO 8601 time with its offset from UTC, such as "2026-12-03T03:00:00Z"',
    );
  }
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw fail(path, `is not a valid time: ${JSON.stringify(value)}`);
  return new Date(at);
}

/** the fields of a schedule's body (the API describes each in its OpenAPI document) */
export const SCHEDULE_KEYS = [
  'name',
  'type',
  'payload',
  'endpoints',
  'every',
  'cron',
  'timezone',
  'start_at',
  'end_at',
  'catch_up',
  'backoff',
] as const;
export type ScheduleKey = (typeof SCHEDULE_KEYS)[number];

/**
 * A schedule's body. With `base` (an update), the fields given replace the base's; `name`
 * cannot change. `types` are the configured task types; `readDuration` turns "1h" into ms.
 */
export function readScheduleBody(
  body: unknown,
  options: {
    fail: Fail;
    types: readonly string[];
    limits: ScheduleLimits;
    readDuration: (value: unknown, path: string) => number;
    base?: ScheduleSpec;
  },
): ScheduleSpec {
  const { fail, base } = options;
  if (!isPlainObject(body)) throw fail('', 'the body must be a JSON object');
  rejectUnknownKeys(body, SCHEDULE_KEYS, '', fail);
  const given = (key: string): boolean => body[key] !== undefined;
  if (base !== undefined && given('name') && body.name !== base.name) {
    throw fail('name', 'cannot change: delete the schedule and make another');
  }
  const name =
    base?.name ??
    checkString(body.name, 'name', fail, {
      pattern: SCHEDULE_NAME_PATTERN,
      patternHint: 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
    });
  let type = base?.type ?? '';
  if (base === undefined || given('type')) {
    type = checkTaskType(body.type, 'type', fail);
    if (!options.types.includes(type)) {
      throw fail(
        'type',
        `${JSON.stringify(type)} is not a configured task type (${options.types.join(', ')})`,
      );
    }
  }
  let payload: unknown = base?.payload ?? null;
  if (given('payload')) {
    payload = body.payload;
    const bytes = Buffer.byteLength(JSON.stringify(payload));
    if (bytes > options.limits.maxPayloadBytes) {
      throw fail(
        'payload',
        `is ${bytes} bytes as JSON; the limit is ${options.limits.maxPayloadBytes}`,
      );
    }
  }
  let endpoints = base?.endpoints ?? null;
  let selector = base?.selector ?? null;
  if (given('endpoints')) {
    ({ endpoints, selector } = readTargets(body.endpoints, options.limits.maxEndpoints, fail));
  }
  let everyMs = base?.everyMs ?? null;
  let cron = base?.cron ?? null;
  if (given('every') || given('cron')) {
    if (given('every') && given('cron') && body.every !== null && body.cron !== null) {
      throw fail('every', 'and cron exclude each other: give one');
    }
    everyMs = null;
    cron = null;
    if (given('every') && body.every !== null) {
      everyMs = options.readDuration(body.every, 'every');
      if (everyMs < MIN_EVERY_MS || everyMs > MAX_EVERY_MS) {
        throw fail('every', `must be from 1s to 366 days, got ${JSON.stringify(body.every)}`);
      }
    }
    if (given('cron') && body.cron !== null) cron = checkCron(body.cron, 'cron', fail);
  }
  if (everyMs === null && cron === null) throw fail('every', 'or cron is required');
  const timezone = given('timezone')
    ? checkTimezone(body.timezone, 'timezone', fail)
    : (base?.timezone ?? 'UTC');
  const startAt = given('start_at')
    ? readTime(body.start_at, 'start_at', fail)
    : (base?.startAt ?? null);
  const endAt = given('end_at') ? readTime(body.end_at, 'end_at', fail) : (base?.endAt ?? null);
  if (startAt !== null && endAt !== null && endAt.getTime() <= startAt.getTime()) {
    throw fail('end_at', `must be after start_at (${startAt.toISOString()})`);
  }
  let catchUp = base?.catchUp ?? 'skip';
  if (given('catch_up')) {
    const found = CATCH_UP_POLICIES.find((policy) => policy === body.catch_up);
    if (found === undefined) {
      throw fail('catch_up', `must be "skip" or "one", got ${JSON.stringify(body.catch_up)}`);
    }
    catchUp = found;
  }
  let backoff = base?.backoff ?? null;
  if (given('backoff')) {
    backoff = body.backoff === null ? null : readBackoff(body.backoff, options.readDuration, fail);
  }
  if (backoff !== null && everyMs === null) {
    throw fail('backoff', 'needs every: a cron schedule runs at its times');
  }
  if (backoff !== null && everyMs !== null && backoff.maxMs < everyMs) {
    throw fail('backoff.max', 'must be at least every');
  }
  return {
    name,
    type,
    payload,
    endpoints,
    selector,
    everyMs,
    cron,
    timezone,
    startAt,
    endAt,
    catchUp,
    backoff,
  };
}

function readBackoff(
  value: unknown,
  readDuration: (value: unknown, path: string) => number,
  fail: Fail,
): Backoff {
  if (!isPlainObject(value)) throw fail('backoff', 'must be an object {factor, max}');
  rejectUnknownKeys(value, ['factor', 'max'], 'backoff', fail);
  const factor = value.factor;
  if (typeof factor !== 'number' || !(factor > 1 && factor <= MAX_BACKOFF_FACTOR)) {
    throw fail('backoff.factor', `must be a number above 1, at most ${MAX_BACKOFF_FACTOR}`);
  }
  if (value.max === undefined) throw fail('backoff.max', 'is required');
  return { factor, maxMs: readDuration(value.max, 'backoff.max') };
}

/**
 * The interval after a run ended `status`, with a backoff: grown by its factor (up to its
 * maximum) after FAILED, back to `every` after DONE, unchanged otherwise.
 */
export function nextInterval(
  backoff: Backoff,
  everyMs: number,
  currentMs: number,
  status: string,
): number {
  if (status === 'FAILED') return Math.min(backoff.maxMs, Math.round(currentMs * backoff.factor));
  if (status === 'DONE') return everyMs;
  return currentMs;
}

function readTargets(
  value: unknown,
  max: number,
  fail: Fail,
): { endpoints: string[] | null; selector: Selector | null } {
  if (value === null) return { endpoints: null, selector: null };
  if (!Array.isArray(value))
    return { endpoints: null, selector: readSelector(value, 'endpoints', fail) };
  if (value.length === 0)
    throw fail('endpoints', 'must name at least one endpoint (omit it to broadcast)');
  if (value.length > max)
    throw fail('endpoints', `lists ${value.length} endpoints; the limit is ${max}`);
  const endpoints = value.map((item, i) => checkEndpoint(item, `endpoints[${i}]`, fail));
  const repeated = endpoints.findIndex((endpoint, i) => endpoints.indexOf(endpoint) !== i);
  if (repeated >= 0) throw fail(`endpoints[${repeated}]`, 'repeats an earlier endpoint');
  return { endpoints, selector: null };
}

type Timing = Pick<ScheduleSpec, 'everyMs' | 'cron' | 'timezone' | 'startAt' | 'endAt'>;

/**
 * The first due time strictly after `after` (and not before `start_at`), or null once past
 * `end_at`. `anchor` is where `every` counts from when there is no `start_at`.
 */
export function nextDue(timing: Timing, after: Date, anchor: Date): Date | null {
  const start = timing.startAt;
  let due: number;
  if (timing.everyMs !== null) {
    const from = (start ?? anchor).getTime();
    const every = timing.everyMs;
    due =
      after.getTime() < from
        ? from
        : from + (Math.floor((after.getTime() - from) / every) + 1) * every;
  } else {
    // the minute before start_at, so that a cron time equal to start_at counts
    const from =
      start !== null && start.getTime() > after.getTime() ? new Date(start.getTime() - 1) : after;
    const expression = CronExpressionParser.parse(timing.cron ?? '', {
      currentDate: from,
      tz: timing.timezone,
    });
    due = expression.next().toDate().getTime();
  }
  if (timing.endAt !== null && due > timing.endAt.getTime()) return null;
  return new Date(due);
}

/** The next `count` due times after `after`. */
export function nextDueTimes(timing: Timing, after: Date, anchor: Date, count: number): Date[] {
  const times: Date[] = [];
  let at = after;
  while (times.length < count) {
    const due = nextDue(timing, at, anchor);
    if (due === null) break;
    times.push(due);
    at = due;
  }
  return times;
}

/** The identifier of the task a schedule makes for one due time: at most one per time. */
export const scheduledIdentifier = (name: string, due: Date): string =>
  `${name}@${due.toISOString()}`;

/**
 * What a schedule due at `due` does at `now`: the due time to make a task for (or null when
 * runs were missed and the policy skips them), and its next due time. A run is missed when a
 * later due time has come too (the server was down, or the schedule paused).
 */
export function planRun(
  spec: Timing & Pick<ScheduleSpec, 'catchUp'>,
  due: Date,
  now: Date,
  anchor: Date,
): { fire: Date | null; next: Date | null; missed: number } {
  let latest = due;
  let missed = 0;
  for (let next = nextDue(spec, latest, anchor); next !== null && next <= now;) {
    missed += 1;
    latest = next;
    next = nextDue(spec, latest, anchor);
    if (missed > 100_000) break;
  }
  const fire = missed === 0 || spec.catchUp === 'one' ? latest : null;
  return { fire, next: nextDue(spec, latest, anchor), missed };
}
