/**
 * Retries at the endpoint: a run that ends "try again" (errnr 75, EX_TEMPFAIL) or "blocked, try
 * later" (errnr 76) runs again after a delay, on the delivery the agent still holds. A try-again
 * counts against the type's `retry.max_attempts`; a blocked run does not, and waits until the
 * task's execution deadline at most. Every other failure is final. Pure: no I/O.
 */
import { checkInt, isPlainObject, rejectUnknownKeys, type Fail } from './fields';

/** errnr (a command's exit code) of a run that failed and may succeed if run again */
export const RETRY_ERRNR = 75;
/** errnr of a run that could not start its work yet (a lock, a maintenance window) */
export const BLOCKED_ERRNR = 76;

export type RetryKind = 'retry' | 'blocked';

/** Thrown by a handler: this run failed, and another may succeed (errnr 75). */
export class RetryableError extends Error {
  override name = 'RetryableError';
  readonly errnr = RETRY_ERRNR;
}

/** Thrown by a handler: its work cannot start yet; try again later, uncounted (errnr 76). */
export class BlockedError extends Error {
  override name = 'BlockedError';
  readonly errnr = BLOCKED_ERRNR;
}

export interface RetryPolicy {
  /** runs counted in all, the first one included (blocked runs are not counted) */
  maxAttempts: number;
  /** the wait before the second run */
  delayMs: number;
  /** each further wait is the one before times this (1: always `delayMs`) */
  backoff: number;
  /** the longest wait */
  maxDelayMs: number;
}

/** As the task message carries it. */
export interface WireRetry {
  max_attempts: number;
  delay_ms: number;
  backoff: number;
  max_delay_ms: number;
}

export const MAX_ATTEMPTS = 100;
const MAX_BACKOFF = 10;
const DEFAULT_DELAY_MS = 10_000;
const DEFAULT_BACKOFF = 2;
const DEFAULT_MAX_DELAY_MS = 5 * 60_000;

/** Which kind of retry a run's errnr asks for, if any. */
export function retryKindOf(status: string, errnr: number | null): RetryKind | null {
  if (status !== 'FAILED') return null;
  if (errnr === RETRY_ERRNR) return 'retry';
  if (errnr === BLOCKED_ERRNR) return 'blocked';
  return null;
}

/** `retry: {max_attempts, delay, backoff, max_delay}` of a task type's settings. */
export function readRetry(
  value: unknown,
  path: string,
  fail: Fail,
  readDuration: (value: unknown, path: string) => number,
): RetryPolicy {
  if (!isPlainObject(value)) {
    throw fail(path, 'must be a mapping {max_attempts, delay, backoff, max_delay}');
  }
  rejectUnknownKeys(value, ['max_attempts', 'delay', 'backoff', 'max_delay'], path, fail);
  if (value.max_attempts === undefined) throw fail(`${path}.max_attempts`, 'is required');
  const maxAttempts = checkInt(Number(value.max_attempts), `${path}.max_attempts`, fail, {
    min: 1,
    max: MAX_ATTEMPTS,
  });
  const backoff = value.backoff === undefined ? DEFAULT_BACKOFF : Number(value.backoff);
  if (!(backoff >= 1 && backoff <= MAX_BACKOFF)) {
    throw fail(`${path}.backoff`, `must be a number from 1 to ${MAX_BACKOFF}`);
  }
  const delayMs =
    value.delay === undefined ? DEFAULT_DELAY_MS : readDuration(value.delay, `${path}.delay`);
  const maxDelayMs =
    value.max_delay === undefined
      ? Math.max(delayMs, DEFAULT_MAX_DELAY_MS)
      : readDuration(value.max_delay, `${path}.max_delay`);
  if (maxDelayMs < delayMs) throw fail(`${path}.max_delay`, 'must be at least delay');
  return { maxAttempts, delayMs, backoff, maxDelayMs };
}

export function retryToWire(policy: RetryPolicy): WireRetry {
  return {
    max_attempts: policy.maxAttempts,
    delay_ms: policy.delayMs,
    backoff: policy.backoff,
    max_delay_ms: policy.maxDelayMs,
  };
}

/** A task message's `retry`, checked (absent or null: no retries). */
export function readWireRetry(value: unknown, fail: Fail): RetryPolicy | null {
  if (value === undefined || value === null) return null;
  if (!isPlainObject(value)) throw fail('retry', 'must be an object or null');
  const int = (key: string, min: number, max?: number): number =>
    checkInt(value[key], `retry.${key}`, fail, { min, ...(max === undefined ? {} : { max }) });
  const backoff = value.backoff;
  if (typeof backoff !== 'number' || !(backoff >= 1 && backoff <= MAX_BACKOFF)) {
    throw fail('retry.backoff', `must be a number from 1 to ${MAX_BACKOFF}`);
  }
  return retryFromWire({
    max_attempts: int('max_attempts', 1, MAX_ATTEMPTS),
    delay_ms: int('delay_ms', 0),
    backoff,
    max_delay_ms: int('max_delay_ms', 0),
  });
}

/** A task message's `retry` as checked when the message was parsed (readWireRetry). */
export function retryFromWire(wire: WireRetry): RetryPolicy {
  return {
    maxAttempts: wire.max_attempts,
    delayMs: wire.delay_ms,
    backoff: wire.backoff,
    maxDelayMs: wire.max_delay_ms,
  };
}

/** The wait before the run after the `waits`-th retry wait (1 for the first). */
export function retryDelayMs(policy: RetryPolicy, waits: number): number {
  const grown = policy.delayMs * policy.backoff ** Math.max(0, waits - 1);
  return Math.round(Math.min(policy.maxDelayMs, grown));
}

export interface RetryRuns {
  /** runs that started, the one that just ended included */
  started: number;
  /** of them, runs that ended blocked (the one that just ended included) */
  blocked: number;
}

export type RetryDecision =
  { retry: true; atMs: number; waitMs: number } | { retry: false; why: string };

/**
 * Whether a run that just ended asking for `kind` runs again, and when: not without a policy,
 * not past `max_attempts` counted runs (a try-again), and not when the next run would start
 * after the execution deadline.
 */
export function decideRetry(
  policy: RetryPolicy | null,
  kind: RetryKind,
  runs: RetryRuns,
  nowMs: number,
  deadlineMs: number,
): RetryDecision {
  if (policy === null) return { retry: false, why: 'its task type has no retry policy' };
  const counted = runs.started - runs.blocked;
  if (kind === 'retry' && counted >= policy.maxAttempts) {
    return { retry: false, why: `gave up after ${counted} of ${policy.maxAttempts} attempts` };
  }
  const waitMs = retryDelayMs(policy, runs.started);
  const atMs = nowMs + waitMs;
  if (atMs >= deadlineMs) {
    return {
      retry: false,
      why:
        kind === 'blocked'
          ? `still blocked at the execution deadline ${new Date(deadlineMs).toISOString()}`
          : `no time for another attempt before the execution deadline ${new Date(deadlineMs).toISOString()}`,
    };
  }
  return { retry: true, atMs, waitMs };
}
