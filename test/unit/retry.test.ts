/**
 * Retries, the pure parts: the policy as configured, when a run is retried, how a row moves
 * between a run and the wait before the next, the journal's count of retried runs, and the time
 * to live a queue upgrade gives a moved message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttemptJournal } from '../../src/agent/attempts';
import { leftToLive } from '../../src/broker/upgrade';
import {
  BLOCKED_ERRNR,
  BlockedError,
  RETRY_ERRNR,
  RetryableError,
  applyResultEvent,
  decideRetry,
  parseTaskMessage,
  pendingState,
  readRetry,
  retryDelayMs,
  retryKindOf,
  type ResponseState,
  type RetryPolicy,
} from '../../src/domain';
import { resultEvent } from '../support/messages';

const fail = (path: string, problem: string) => new Error(`${path} ${problem}`);
const ms = (value: unknown): number => Number(String(value).replace(/ms$/, ''));
const read = (value: unknown) => readRetry(value, 'task_types.deploy.retry', fail, ms);

describe('readRetry', () => {
  it('reads a policy with defaults for what is left out', () => {
    expect(read({ max_attempts: 4 })).toEqual({
      maxAttempts: 4,
      delayMs: 10_000,
      backoff: 2,
      maxDelayMs: 300_000,
    });
    expect(read({ max_attempts: '2', delay: '50ms', backoff: 1, max_delay: '60ms' })).toEqual({
      maxAttempts: 2,
      delayMs: 50,
      backoff: 1,
      maxDelayMs: 60,
    });
  });

  it.each<[unknown, string]>([
    [{ max_attempts: 0 }, 'task_types.deploy.retry.max_attempts must be at least 1'],
    [{ max_attempts: 101 }, 'task_types.deploy.retry.max_attempts must be at most 100'],
    [{}, 'task_types.deploy.retry.max_attempts is required'],
    [{ max_attempts: 2, backoff: 0.5 }, 'task_types.deploy.retry.backoff must be a number from 1'],
    [{ max_attempts: 2, delay: 100, max_delay: 50 }, 'retry.max_delay must be at least delay'],
    [{ max_attempts: 2, tries: 3 }, 'tries'],
    [[1, 2], 'must be a mapping {max_attempts, delay, backoff, max_delay}'],
  ])('refuses %j', (value, message) => {
    expect(() => read(value)).toThrow(message);
  });
});

const policy: RetryPolicy = { maxAttempts: 3, delayMs: 1000, backoff: 2, maxDelayMs: 3000 };

describe('decideRetry', () => {
  it('tells try-again (75) and blocked (76) from other failures', () => {
    expect(retryKindOf('FAILED', RETRY_ERRNR)).toBe('retry');
    expect(retryKindOf('FAILED', BLOCKED_ERRNR)).toBe('blocked');
    expect(retryKindOf('FAILED', 1)).toBeNull();
    expect(retryKindOf('TIMED_OUT', RETRY_ERRNR)).toBeNull();
    expect(new RetryableError('x').errnr).toBe(RETRY_ERRNR);
    expect(new BlockedError('x').errnr).toBe(BLOCKED_ERRNR);
  });

  it('grows the wait by the backoff up to max_delay', () => {
    expect([1, 2, 3, 4].map((waits) => retryDelayMs(policy, waits))).toEqual([
      1000, 2000, 3000, 3000,
    ]);
  });

  it('retries until max_attempts counted runs, not counting blocked ones', () => {
    const far = 1e12;
    expect(decideRetry(policy, 'retry', { started: 2, blocked: 0 }, 0, far)).toEqual({
      retry: true,
      atMs: 2000,
      waitMs: 2000,
    });
    expect(decideRetry(policy, 'retry', { started: 3, blocked: 0 }, 0, far)).toEqual({
      retry: false,
      why: 'gave up after 3 of 3 attempts',
    });
    // five runs, three of them blocked: two counted
    expect(decideRetry(policy, 'retry', { started: 5, blocked: 3 }, 0, far).retry).toBe(true);
    expect(decideRetry(policy, 'blocked', { started: 50, blocked: 49 }, 0, far).retry).toBe(true);
  });

  it('never waits past the execution deadline, and not at all without a policy', () => {
    const decision = decideRetry(policy, 'blocked', { started: 1, blocked: 1 }, 0, 500);
    expect(decision).toEqual({
      retry: false,
      why: 'still blocked at the execution deadline 1970-01-01T00:00:00.500Z',
    });
    expect(decideRetry(policy, 'retry', { started: 1, blocked: 0 }, 0, 999).retry).toBe(false);
    expect(decideRetry(null, 'retry', { started: 1, blocked: 0 }, 0, 1e12)).toEqual({
      retry: false,
      why: 'its task type has no retry policy',
    });
  });
});

describe('a row between runs', () => {
  const now = new Date('2026-11-30T10:00:10.000Z');
  const at = '2026-11-30T10:00:05.000Z';
  const running: ResponseState = {
    ...pendingState(),
    status: 'RUNNING',
    attempt: 1,
    startTime: new Date(at),
  };
  const retrying = (attempt: number) =>
    resultEvent(1, 'web1', {
      event: 'retrying',
      status: 'RETRYING',
      errnr: 75,
      errmsg: 'busy',
      attempt,
      at,
      next_attempt_at: '2026-11-30T10:00:15.000Z',
    });

  it('shows RETRYING with the failed run and when the next starts', () => {
    expect(applyResultEvent(running, retrying(1), now)).toMatchObject({
      status: 'RETRYING',
      attempt: 1,
      errnr: 75,
      errmsg: 'busy',
      nextAttemptAt: new Date('2026-11-30T10:00:15.000Z'),
    });
  });

  it('moves back to RUNNING only for a newer run, and ignores the same retry twice', () => {
    const waiting = applyResultEvent(running, retrying(1), now) as ResponseState;
    expect(applyResultEvent(waiting, retrying(1), now)).toBeNull();
    const stale = resultEvent(1, 'web1', { event: 'progress', status: 'RUNNING', attempt: 1 });
    expect(applyResultEvent(waiting, stale, now)).toBeNull();
    const next = resultEvent(1, 'web1', { event: 'received', status: 'RUNNING', attempt: 2 });
    expect(applyResultEvent(waiting, next, now)).toMatchObject({
      status: 'RUNNING',
      attempt: 2,
      errnr: null,
      errmsg: null,
      nextAttemptAt: null,
    });
  });

  it('finishes from RETRYING, and a late retry never reopens a finished row', () => {
    const waiting = applyResultEvent(running, retrying(1), now) as ResponseState;
    const done = applyResultEvent(
      waiting,
      resultEvent(1, 'web1', { attempt: 2, status: 'DONE' }),
      now,
    ) as ResponseState;
    expect(done).toMatchObject({ status: 'DONE', attempt: 2, errnr: 0, nextAttemptAt: null });
    expect(applyResultEvent(done, retrying(3), now)).toBeNull();
    expect(applyResultEvent({ ...running, attempt: 2 }, retrying(1), now)).toBeNull();
  });
});

describe('wire', () => {
  it('carries the retry policy and priority in the task message, checked', () => {
    const message = {
      v: 1,
      id: 3,
      identifier: 'x',
      type: 'deploy',
      payload: null,
      endpoints: ['web1'],
      created_at: '2026-11-30T10:00:00.000Z',
      deliver_by: '2026-11-30T10:01:00.000Z',
      execution_timeout_ms: 1000,
      max_deliveries: 5,
      round: 1,
      priority: 9,
      retry: { max_attempts: 3, delay_ms: 10, backoff: 2, max_delay_ms: 100 },
    };
    expect(parseTaskMessage(JSON.stringify(message))).toMatchObject({
      priority: 9,
      retry: message.retry,
    });
    expect(() => parseTaskMessage(JSON.stringify({ ...message, priority: 10 }))).toThrow(
      'priority',
    );
    expect(() =>
      parseTaskMessage(
        JSON.stringify({ ...message, retry: { ...message.retry, max_attempts: 0 } }),
      ),
    ).toThrow('retry.max_attempts');
  });
});

describe('the journal of retried runs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tasker-retry-journal-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const task = {
    id: 9,
    round: 1,
    created_at: '2026-11-30T10:00:00.000Z',
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
  };

  it('counts runs that ended asking for a retry apart from crashed ones, across processes', () => {
    const first = new AttemptJournal(dir);
    expect(first.start(task, false)).toBe(1);
    first.ended(task, false);
    expect(first.start(task, true)).toBe(2);
    first.ended(task, true);
    expect(first.start(task, true)).toBe(3);
    first.close();
    // the process died in run 3: the next counts on, and sees one run that never ended
    const second = new AttemptJournal(dir);
    expect(second.runs(task)).toEqual({ started: 3, ended: 2, blocked: 1 });
    expect(second.start(task, true)).toBe(4);
    expect(second.runs(task)).toEqual({ started: 4, ended: 2, blocked: 1 });
    second.close();
  });
});

describe('leftToLive', () => {
  it('gives a moved message what was left of its time to live', () => {
    const published = 1_000_000; // seconds
    expect(leftToLive('60000', published, published * 1000 + 20_000)).toBe(40_999);
    expect(leftToLive('60000', published, published * 1000 + 90_000)).toBe(1);
    expect(leftToLive('60000', undefined, 0)).toBe(60_000);
    expect(leftToLive(undefined, published, 0)).toBeNull();
  });
});
