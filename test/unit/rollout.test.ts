/**
 * Waves, error budgets and success thresholds: pure rules, no database.
 */
import {
  ValidationError,
  aggregateStatus,
  nextRolloutStep,
  planWaves,
  readRollout,
  readShare,
  requiredDone,
  type Fail,
  type ResponseStatus,
  type Rollout,
} from '../../src/domain';

const fail: Fail = (path, problem) => new ValidationError(`${path} ${problem}`, path);
const seconds = (value: unknown): number => Number(value) * 1000;

describe('readShare and readRollout', () => {
  it('reads counts and percentages', () => {
    expect(readShare(10, 'batch', fail, 1)).toEqual({ count: 10 });
    expect(readShare('25%', 'batch', fail, 1)).toEqual({ percent: 25 });
    expect(readShare(0, 'max_errors', fail, 0)).toEqual({ count: 0 });
    expect(readShare('0%', 'max_errors', fail, 0)).toEqual({ percent: 0 });
    expect(readShare('12.5%', 'max_errors', fail, 0)).toEqual({ percent: 12.5 });
  });

  it.each([
    [0, 1, /batch must be a whole number of at least 1, or a percentage above 0 to 100.*got 0/],
    ['150%', 1, /got "150%"/],
    ['0%', 1, /got "0%"/],
    [-1, 0, /max_errors must be a whole number of at least 0.*got -1/],
    [2.5, 1, /got 2.5/],
    ['ten', 1, /got "ten"/],
    [null, 1, /got null/],
  ])('refuses %j (at least %i), naming the field', (value, min, message) => {
    const path = min === 1 ? 'batch' : 'max_errors';
    expect(() => readShare(value, path, fail, min as 0 | 1)).toThrow(message);
  });

  it('reads a rollout with defaults for what it leaves out', () => {
    expect(readRollout({ batch: 10 }, 'rollout', fail, seconds)).toEqual({
      batch: { count: 10 },
      maxErrors: { percent: 100 },
      pauseMs: 0,
    });
    expect(
      readRollout({ batch: '25%', max_errors: 2, pause: 30 }, 'rollout', fail, seconds),
    ).toEqual({ batch: { percent: 25 }, maxErrors: { count: 2 }, pauseMs: 30_000 });
  });

  it.each([
    [{}, /rollout.batch is required/],
    [{ batch: 0 }, /rollout.batch must be a whole number of at least 1/],
    [{ batch: 5, max_errors: -1 }, /rollout.max_errors must be a whole number of at least 0/],
    [{ batch: 5, waves: 2 }, /rollout.waves is not a known field/],
    ['10', /rollout must be an object/],
  ])('refuses the rollout %j, naming the field', (value, message) => {
    expect(() => readRollout(value, 'rollout', fail, seconds)).toThrow(message);
  });
});

describe('planWaves', () => {
  it('cuts the endpoints into waves of the batch size, in order', () => {
    expect(planWaves(5, { count: 2 })).toEqual([1, 1, 2, 2, 3]);
    expect(planWaves(10, { percent: 25 })).toEqual([1, 1, 1, 2, 2, 2, 3, 3, 3, 4]);
    expect(planWaves(3, { count: 10 })).toEqual([1, 1, 1]);
    expect(planWaves(1000, { count: 100 }).filter((wave) => wave === 10)).toHaveLength(100);
  });
});

describe('nextRolloutStep', () => {
  const rollout = (maxErrors: Rollout['maxErrors']): Rollout => ({
    batch: { count: 2 },
    maxErrors,
    pauseMs: 0,
  });
  const rows = (...statuses: ResponseStatus[]) =>
    statuses.map((status, i) => ({ wave: Math.floor(i / 2) + 1, status }));

  it('waits while the current wave runs', () => {
    expect(
      nextRolloutStep(rows('DONE', 'RUNNING', 'PENDING'), 1, rollout({ count: 0 }), 3),
    ).toEqual({ kind: 'wait' });
  });

  it('sends the next wave once the current one is final within the budget', () => {
    expect(nextRolloutStep(rows('DONE', 'FAILED', 'PENDING'), 1, rollout({ count: 1 }), 3)).toEqual(
      { kind: 'next', wave: 2 },
    );
  });

  it('stops when the failures exceed the budget, saying why', () => {
    expect(
      nextRolloutStep(
        rows('FAILED', 'TIMED_OUT', 'DONE', 'UNDELIVERED', 'PENDING'),
        2,
        rollout({ count: 2 }),
        5,
      ),
    ).toEqual({ kind: 'stop', reason: 'stopped after 3 failures, max_errors 2' });
    expect(
      nextRolloutStep(rows('FAILED', 'DONE', 'PENDING'), 1, rollout({ percent: 0 }), 3),
    ).toEqual({ kind: 'stop', reason: 'stopped after 1 failure, max_errors 0%' });
  });

  it('does not count cancelled endpoints against the budget', () => {
    expect(
      nextRolloutStep(rows('CANCELLED', 'CANCELLED', 'PENDING'), 1, rollout({ count: 0 }), 3),
    ).toEqual({ kind: 'next', wave: 2 });
  });

  it('is done once the last wave was sent', () => {
    expect(nextRolloutStep(rows('DONE', 'DONE', 'FAILED'), 2, rollout({ count: 0 }), 3)).toEqual({
      kind: 'done',
    });
  });
});

describe('success threshold', () => {
  const decide = (statuses: ResponseStatus[], threshold: Parameters<typeof requiredDone>[0]) =>
    aggregateStatus({
      current: 'SENT',
      addressed: true,
      deadlinePassed: false,
      responses: statuses.map((status) => ({ status, expected: true })),
      successThreshold: threshold,
    }).status;

  it('needs every endpoint DONE by default, as before', () => {
    expect(decide(['DONE', 'DONE'], null)).toBe('DONE');
    expect(decide(['DONE', 'FAILED'], null)).toBe('FAILED');
    expect(decide(['DONE', 'UNDELIVERED', 'FAILED'], null)).toBe('INCOMPLETE');
    expect(decide(['DONE', 'CANCELLED'], null)).toBe('CANCELLED');
  });

  it('decides DONE once enough are DONE, the failures still counted', () => {
    const ten: ResponseStatus[] = [...Array(9).fill('DONE'), 'FAILED'];
    expect(decide(ten, { percent: 90 })).toBe('DONE');
    expect(decide(ten, { percent: 95 })).toBe('FAILED');
    expect(decide(['DONE', 'UNDELIVERED', 'DONE'], { count: 2 })).toBe('DONE');
    const counts = aggregateStatus({
      current: 'SENT',
      addressed: true,
      deadlinePassed: false,
      responses: ten.map((status) => ({ status, expected: true })),
      successThreshold: { percent: 90 },
    }).counts;
    expect(counts).toMatchObject({ done: 9, failed: 1 });
  });

  it('fails a task whose rollout was stopped, whatever its threshold', () => {
    expect(
      aggregateStatus({
        current: 'SENT',
        addressed: true,
        deadlinePassed: false,
        responses: ['DONE', 'FAILED', 'CANCELLED'].map((status) => ({
          status: status as ResponseStatus,
          expected: true,
        })),
        successThreshold: { count: 1 },
        stopped: true,
      }).status,
    ).toBe('FAILED');
  });
});
