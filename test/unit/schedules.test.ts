/**
 * Schedules, the pure part: the body of POST /schedules checked field by field, the next due
 * times of `every` and of `cron` in a time zone (across both clock changes of a year), and what
 * a schedule does when runs were missed.
 */
import { parseDuration } from '../../src/config';
import {
  nextDue,
  nextDueTimes,
  nextInterval,
  planRun,
  readScheduleBody,
  scheduledIdentifier,
  type ScheduleSpec,
} from '../../src/domain';

const fail = (path: string, problem: string): Error => new Error(`${path} ${problem}`);
const read = (body: unknown, base?: ScheduleSpec): ScheduleSpec =>
  readScheduleBody(body, {
    fail,
    types: ['worker', 'backup'],
    limits: { maxEndpoints: 3, maxPayloadBytes: 100 },
    readDuration: (value, path) => {
      try {
        return parseDuration(value);
      } catch (err) {
        throw fail(path, (err as Error).message);
      }
    },
    ...(base === undefined ? {} : { base }),
  });
const iso = (dates: Date[]): string[] => dates.map((date) => date.toISOString());

describe('readScheduleBody', () => {
  it('reads every field, with defaults', () => {
    expect(read({ name: 'nightly', type: 'backup', cron: '0 3 * * *' })).toEqual({
      name: 'nightly',
      type: 'backup',
      payload: null,
      endpoints: null,
      selector: null,
      everyMs: null,
      cron: '0 3 * * *',
      timezone: 'UTC',
      startAt: null,
      endAt: null,
      catchUp: 'skip',
      backoff: null,
    });
    expect(
      read({
        name: 'h',
        type: 'worker',
        payload: { a: 1 },
        endpoints: ['web1'],
        every: '1h',
        timezone: 'Europe/Berlin',
        start_at: '2026-12-01T00:00:00Z',
        end_at: '2026-12-31T00:00:00+01:00',
        catch_up: 'one',
      }),
    ).toMatchObject({
      endpoints: ['web1'],
      everyMs: 3_600_000,
      timezone: 'Europe/Berlin',
      startAt: new Date('2026-12-01T00:00:00Z'),
      endAt: new Date('2026-12-30T23:00:00Z'),
      catchUp: 'one',
    });
    expect(read({ name: 's', type: 'worker', every: 60, endpoints: '*' }).selector).toBe('*');
  });

  it.each([
    [{ type: 'worker', every: '1h' }, /^name is required|^name must be a string/],
    [{ name: 'a b', type: 'worker', every: '1h' }, /^name must be 1-64 letters/],
    [{ name: 'n', type: 'deploy', every: '1h' }, /^type "deploy" is not a configured task type/],
    [{ name: 'n', type: 'worker' }, /^every or cron is required/],
    [{ name: 'n', type: 'worker', every: '0s' }, /^every must be from 1s to 366 days/],
    [{ name: 'n', type: 'worker', every: 'often' }, /^every must be a duration/],
    [{ name: 'n', type: 'worker', every: '1h', cron: '0 3 * * *' }, /^every and cron exclude/],
    [{ name: 'n', type: 'worker', cron: '61 3 * * *' }, /^cron is not a valid cron expression/],
    [{ name: 'n', type: 'worker', cron: '* * *' }, /^cron must have five fields/],
    [
      { name: 'n', type: 'worker', cron: '0 3 * * *', timezone: 'Mars/Olympus' },
      /^timezone is not a time zone/,
    ],
    [
      {
        name: 'n',
        type: 'worker',
        every: '1h',
        start_at: '2026-12-02T00:00:00Z',
        end_at: '2026-12-01T00:00:00Z',
      },
      /^end_at must be after start_at/,
    ],
    [
      { name: 'n', type: 'worker', every: '1h', start_at: '2026-12-02 00:00' },
      /^start_at must be an ISO 8601 time/,
    ],
    [
      { name: 'n', type: 'worker', every: '1h', catch_up: 'all' },
      /^catch_up must be "skip" or "one"/,
    ],
    [
      { name: 'n', type: 'worker', every: '1h', endpoints: [] },
      /^endpoints must name at least one/,
    ],
    [{ name: 'n', type: 'worker', every: '1h', payload: 'x'.repeat(200) }, /^payload is 202 bytes/],
    [{ name: 'n', type: 'worker', every: '1h', when: 'now' }, /when/],
  ])('refuses %j, naming the field', (body, message) => {
    expect(() => read(body)).toThrow(message);
  });

  it('updates the fields given, keeps the others, and never the name', () => {
    const base = read({ name: 'n', type: 'worker', every: '1h', payload: 1 });
    expect(read({ cron: '0 3 * * *' }, base)).toMatchObject({
      name: 'n',
      everyMs: null,
      cron: '0 3 * * *',
      payload: 1,
    });
    expect(() => read({ name: 'm' }, base)).toThrow(/^name cannot change/);
  });
});

describe('backoff', () => {
  const base = { name: 'n', type: 'worker', every: '1m' };

  it('reads {factor, max} with every, and grows the interval after FAILED, resets after DONE', () => {
    const spec = read({ ...base, backoff: { factor: 2, max: '5m' } });
    expect(spec.backoff).toEqual({ factor: 2, maxMs: 300_000 });
    const backoff = spec.backoff as NonNullable<ScheduleSpec['backoff']>;
    expect(nextInterval(backoff, 60_000, 60_000, 'FAILED')).toBe(120_000);
    expect(nextInterval(backoff, 60_000, 240_000, 'FAILED')).toBe(300_000);
    expect(nextInterval(backoff, 60_000, 240_000, 'INCOMPLETE')).toBe(240_000);
    expect(nextInterval(backoff, 60_000, 240_000, 'DONE')).toBe(60_000);
  });

  it.each([
    [{ backoff: { factor: 1, max: '5m' } }, /^backoff.factor must be a number above 1/],
    [{ backoff: { factor: 2 } }, /^backoff.max is required/],
    [{ backoff: { factor: 2, max: '30s' } }, /^backoff.max must be at least every/],
    [
      { every: undefined, cron: '0 3 * * *', backoff: { factor: 2, max: '1h' } },
      /^backoff needs every/,
    ],
  ])('refuses %j', (change, message) => {
    expect(() => read({ ...base, ...change })).toThrow(message);
  });
});

describe('nextDue', () => {
  const anchor = new Date('2026-12-01T10:00:00Z');
  const every = { everyMs: 60_000, cron: null, timezone: 'UTC', startAt: null, endAt: null };

  it('counts every from start_at, or from the anchor', () => {
    expect(nextDue(every, new Date('2026-12-01T10:00:30Z'), anchor)).toEqual(
      new Date('2026-12-01T10:01:00Z'),
    );
    // a due time is strictly after `after`
    expect(nextDue(every, new Date('2026-12-01T10:01:00Z'), anchor)).toEqual(
      new Date('2026-12-01T10:02:00Z'),
    );
    const start = { ...every, startAt: new Date('2026-12-05T00:00:00Z') };
    expect(nextDue(start, anchor, anchor)).toEqual(new Date('2026-12-05T00:00:00Z'));
  });

  it('stops after end_at', () => {
    const ending = { ...every, endAt: new Date('2026-12-01T10:02:00Z') };
    expect(iso(nextDueTimes(ending, anchor, anchor, 5))).toEqual([
      '2026-12-01T10:01:00.000Z',
      '2026-12-01T10:02:00.000Z',
    ]);
  });

  const berlin = { everyMs: null, timezone: 'Europe/Berlin', startAt: null, endAt: null };

  it('runs "0 3 * * *" at 03:00 Berlin time on both sides of each clock change', () => {
    const spring = nextDueTimes(
      { ...berlin, cron: '0 3 * * *' },
      new Date('2026-03-27T12:00:00Z'),
      anchor,
      4,
    );
    // 03:00 CET is 02:00Z; from 29 March, 03:00 CEST is 01:00Z
    expect(iso(spring)).toEqual([
      '2026-03-28T02:00:00.000Z',
      '2026-03-29T01:00:00.000Z',
      '2026-03-30T01:00:00.000Z',
      '2026-03-31T01:00:00.000Z',
    ]);
    const autumn = nextDueTimes(
      { ...berlin, cron: '0 3 * * *' },
      new Date('2026-10-23T12:00:00Z'),
      anchor,
      3,
    );
    expect(iso(autumn)).toEqual([
      '2026-10-24T01:00:00.000Z',
      '2026-10-25T02:00:00.000Z',
      '2026-10-26T02:00:00.000Z',
    ]);
  });

  it('runs a time skipped by the spring change once, an hour later, and a repeated one once', () => {
    // 02:30 does not exist in Berlin on 29 March 2026
    const skipped = nextDueTimes(
      { ...berlin, cron: '30 2 * * *' },
      new Date('2026-03-28T12:00:00Z'),
      anchor,
      2,
    );
    expect(iso(skipped)).toEqual(['2026-03-29T01:30:00.000Z', '2026-03-30T00:30:00.000Z']);
    // 02:30 happens twice on 25 October 2026: one run
    const repeated = nextDueTimes(
      { ...berlin, cron: '30 2 * * *' },
      new Date('2026-10-24T12:00:00Z'),
      anchor,
      2,
    );
    expect(repeated).toHaveLength(2);
    expect(repeated[1]?.getTime()).toBeGreaterThan(new Date('2026-10-25T12:00:00Z').getTime());
  });

  it('counts a cron time equal to start_at', () => {
    const start = {
      ...berlin,
      timezone: 'UTC',
      cron: '0 * * * *',
      startAt: new Date('2026-12-02T05:00:00Z'),
    };
    expect(nextDue(start, anchor, anchor)).toEqual(new Date('2026-12-02T05:00:00Z'));
  });
});

describe('planRun', () => {
  const anchor = new Date('2026-12-01T10:00:00Z');
  const timing = { everyMs: 60_000, cron: null, timezone: 'UTC', startAt: null, endAt: null };
  const due = new Date('2026-12-01T10:01:00Z');

  it('fires the due time when it is the latest', () => {
    expect(
      planRun({ ...timing, catchUp: 'skip' }, due, new Date('2026-12-01T10:01:40Z'), anchor),
    ).toEqual({
      fire: due,
      next: new Date('2026-12-01T10:02:00Z'),
      missed: 0,
    });
  });

  it('after three missed intervals: "skip" fires nothing, "one" fires the latest once', () => {
    const now = new Date('2026-12-01T10:04:10Z');
    const next = new Date('2026-12-01T10:05:00Z');
    expect(planRun({ ...timing, catchUp: 'skip' }, due, now, anchor)).toEqual({
      fire: null,
      next,
      missed: 3,
    });
    expect(planRun({ ...timing, catchUp: 'one' }, due, now, anchor)).toEqual({
      fire: new Date('2026-12-01T10:04:00Z'),
      next,
      missed: 3,
    });
  });

  it('names the task of a due time after the schedule and the time', () => {
    expect(scheduledIdentifier('nightly', due)).toBe('nightly@2026-12-01T10:01:00.000Z');
  });
});
