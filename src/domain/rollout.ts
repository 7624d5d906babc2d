/**
 * Rolling a task out in waves with an error budget, and deciding a task by a success threshold.
 * Pure: the API reads the options, the store calls `nextRolloutStep` whenever a task's rows
 * change and carries out what it returns in the same transaction.
 */
import type { Fail } from './fields';
import { isPlainObject, rejectUnknownKeys } from './fields';
import { isTerminalResponse, type ResponseStatus } from './states';

/** A count, or a percentage of the task's expected endpoints. */
export type Share = { count: number } | { percent: number };

export interface Rollout {
  /** endpoints in one wave */
  batch: Share;
  /** failures allowed over the whole task before the rest is cancelled */
  maxErrors: Share;
  /** time between a wave being final and the next being sent */
  pauseMs: number;
}

const SHARE_PATTERN = /^(\d+(?:\.\d+)?)%$/;

/** `10`, or `"25%"`: a whole count from `min`, or a percentage (above 0 when `min` is 1) to 100. */
export function readShare(value: unknown, path: string, fail: Fail, min: 0 | 1): Share {
  // "10" from a query string, an environment variable or a flag is the count 10
  if (typeof value === 'string' && /^\s*\d+\s*$/.test(value)) value = Number(value);
  const expected =
    `must be a whole number of at least ${min}, or a percentage ` +
    `${min === 0 ? 'from 0' : 'above 0'} to 100 such as "25%"`;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < min) throw fail(path, `${expected}, got ${value}`);
    return { count: value };
  }
  const match = typeof value === 'string' ? SHARE_PATTERN.exec(value.trim()) : null;
  const percent = match === null ? Number.NaN : Number(match[1]);
  if (!(percent <= 100 && (percent > 0 || (min === 0 && percent === 0)))) {
    throw fail(path, `${expected}, got ${JSON.stringify(value)}`);
  }
  return { percent };
}

/** The share of `total` as a count: a percentage rounded up for sizes, down for budgets. */
export function shareOf(share: Share, total: number, round: 'up' | 'down'): number {
  if ('count' in share) return share.count;
  const exact = (share.percent * total) / 100;
  return round === 'up' ? Math.ceil(exact) : Math.floor(exact);
}

export function describeShare(share: Share): string {
  return 'count' in share ? String(share.count) : `${share.percent}%`;
}

/**
 * `{batch, max_errors?, pause?}` from a request or a task type's setting. `readDuration` turns
 * "30s" into milliseconds, failing with the path.
 */
export function readRollout(
  value: unknown,
  path: string,
  fail: Fail,
  readDuration: (value: unknown, path: string) => number,
): Rollout {
  if (!isPlainObject(value)) throw fail(path, 'must be an object {batch, max_errors, pause}');
  rejectUnknownKeys(value, ['batch', 'max_errors', 'pause'], path, fail);
  if (value.batch === undefined) throw fail(`${path}.batch`, 'is required');
  return {
    batch: readShare(value.batch, `${path}.batch`, fail, 1),
    maxErrors:
      value.max_errors === undefined
        ? { percent: 100 }
        : readShare(value.max_errors, `${path}.max_errors`, fail, 0),
    pauseMs: value.pause === undefined ? 0 : readDuration(value.pause, `${path}.pause`),
  };
}

/** The wave (1, 2, …) of each of `count` endpoints, in their order. */
export function planWaves(count: number, batch: Share): number[] {
  const size = Math.max(1, shareOf(batch, count, 'up'));
  return Array.from({ length: count }, (_, i) => Math.floor(i / size) + 1);
}

/** Endpoint outcomes that count against a rollout's error budget. */
const ERRORS: ReadonlySet<ResponseStatus> = new Set(['FAILED', 'TIMED_OUT', 'UNDELIVERED']);

export interface WaveRow {
  wave: number;
  status: ResponseStatus;
}

export type RolloutStep =
  | { kind: 'wait' }
  | { kind: 'next'; wave: number }
  | { kind: 'stop'; reason: string }
  | { kind: 'done' };

/**
 * What a rollout does now that its rows are as given and `current` waves were sent: wait for
 * the current wave, send the next, stop because the errors exceed the budget (the rows of the
 * waves not sent are cancelled), or nothing more (every wave sent).
 */
export function nextRolloutStep(
  rows: readonly WaveRow[],
  current: number,
  rollout: Rollout,
  expected: number,
): RolloutStep {
  const sent = rows.filter((row) => row.wave <= current);
  if (!sent.every((row) => isTerminalResponse(row.status))) return { kind: 'wait' };
  const last = rows.reduce((max, row) => Math.max(max, row.wave), 0);
  if (current >= last) return { kind: 'done' };
  const errors = sent.filter((row) => ERRORS.has(row.status)).length;
  const budget = shareOf(rollout.maxErrors, expected, 'down');
  if (errors > budget) {
    const plural = errors === 1 ? 'failure' : 'failures';
    return {
      kind: 'stop',
      reason: `stopped after ${errors} ${plural}, max_errors ${describeShare(rollout.maxErrors)}`,
    };
  }
  return { kind: 'next', wave: current + 1 };
}

/** How many DONE endpoints decide a task DONE: the threshold's share of `total`, or all. */
export function requiredDone(threshold: Share | null, total: number): number {
  return threshold === null ? total : Math.min(total, shareOf(threshold, total, 'up'));
}
