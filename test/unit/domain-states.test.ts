/**
 * The pure core: response-state moves, task aggregation, and how result events and deadlines
 * change one endpoint's row.
 */
import {
  RESPONSE_STATUSES,
  canMoveResponse,
  isHeldTask,
  isTerminalResponse,
  isTerminalTask,
  statusForErrnr,
  type ResponseStatus,
  type TaskStatus,
} from '../../src/domain/states';
import {
  aggregateStatus,
  countResponses,
  type AggregateInput,
  type ResponseSummary,
} from '../../src/domain/aggregate';
import {
  applyResultEvent,
  markSilentTimeout,
  markUndelivered,
  pendingState,
  type ResponseState,
} from '../../src/domain/transitions';
import type { ResultEvent } from '../../src/domain/messages';

/** Written out by hand rather than derived from the module's ranks. */
const ORDER: Record<ResponseStatus, number> = {
  PENDING: 0,
  RECEIVED: 1,
  RUNNING: 2,
  // between RUNNING and RETRYING a row moves by attempt (applyResultEvent), not by state
  RETRYING: 2,
  UNDELIVERED: 3,
  DONE: 3,
  FAILED: 3,
  TIMED_OUT: 3,
  CANCELLED: 3,
};
const TERMINAL: readonly ResponseStatus[] = [
  'UNDELIVERED',
  'DONE',
  'FAILED',
  'TIMED_OUT',
  'CANCELLED',
];
const FINISH_REPORTS: readonly ResponseStatus[] = ['DONE', 'FAILED', 'TIMED_OUT'];

function expectedMove(from: ResponseStatus, to: ResponseStatus): boolean {
  if (from === 'UNDELIVERED') return FINISH_REPORTS.includes(to);
  // "no word from the endpoint": a row the endpoint already reported on cannot become it
  if (to === 'UNDELIVERED') return from === 'PENDING';
  if (TERMINAL.includes(from)) return false;
  if (from === to) return true;
  return ORDER[to] > ORDER[from];
}

const ALL_PAIRS = RESPONSE_STATUSES.flatMap((from) =>
  RESPONSE_STATUSES.map((to) => [from, to, expectedMove(from, to)] as const),
);

describe('response states', () => {
  it('lists every state once', () => {
    expect(new Set(RESPONSE_STATUSES).size).toBe(RESPONSE_STATUSES.length);
    expect([...RESPONSE_STATUSES].sort()).toEqual(Object.keys(ORDER).sort());
  });

  it.each(RESPONSE_STATUSES)('isTerminalResponse(%s)', (status) => {
    expect(isTerminalResponse(status)).toBe(TERMINAL.includes(status));
  });

  it.each<[TaskStatus, boolean]>([
    ['CREATED', false],
    ['SENT', false],
    ['DONE', true],
    ['FAILED', true],
    ['INCOMPLETE', true],
  ])('isTerminalTask(%s) is %s', (status, terminal) => {
    expect(isTerminalTask(status)).toBe(terminal);
  });

  it('maps errnr 0 to DONE and anything else to FAILED', () => {
    expect(statusForErrnr(0)).toBe('DONE');
    expect(statusForErrnr(1)).toBe('FAILED');
    expect(statusForErrnr(32)).toBe('FAILED');
    expect(statusForErrnr(-1)).toBe('FAILED');
  });
});

describe('canMoveResponse over every pair', () => {
  it('covers all 81 pairs', () => {
    expect(ALL_PAIRS).toHaveLength(RESPONSE_STATUSES.length ** 2);
    expect(ALL_PAIRS).toHaveLength(81);
  });

  it.each(ALL_PAIRS)('%s -> %s is %s', (from, to, allowed) => {
    expect(canMoveResponse(from, to)).toBe(allowed);
  });

  it('never moves a row back to an earlier state', () => {
    for (const [from, to] of ALL_PAIRS) {
      if (ORDER[to] < ORDER[from]) expect(canMoveResponse(from, to)).toBe(false);
    }
  });

  it('lets a non-terminal state repeat so progress updates land', () => {
    expect(canMoveResponse('PENDING', 'PENDING')).toBe(true);
    expect(canMoveResponse('RECEIVED', 'RECEIVED')).toBe(true);
    expect(canMoveResponse('RUNNING', 'RUNNING')).toBe(true);
  });

  it('never moves a terminal row, not even to itself, except UNDELIVERED to a finish', () => {
    for (const from of TERMINAL) {
      const targets = RESPONSE_STATUSES.filter((to) => canMoveResponse(from, to));
      expect(targets).toEqual(from === 'UNDELIVERED' ? ['DONE', 'FAILED', 'TIMED_OUT'] : []);
    }
  });
});

function row(status: ResponseStatus, expected = true): ResponseSummary {
  return { status, expected };
}

function aggregate(overrides: Partial<AggregateInput>): ReturnType<typeof aggregateStatus> {
  return aggregateStatus({
    current: 'SENT',
    addressed: true,
    deadlinePassed: false,
    responses: [],
    ...overrides,
  });
}

describe('aggregateStatus: addressed tasks', () => {
  it('stays SENT while an expected endpoint is not terminal', () => {
    const result = aggregate({ responses: [row('DONE'), row('RUNNING')] });
    expect(result.status).toBe('SENT');
  });

  it('is DONE when every expected endpoint is DONE, deadline or not', () => {
    expect(aggregate({ responses: [row('DONE'), row('DONE')] }).status).toBe('DONE');
    expect(aggregate({ responses: [row('DONE'), row('DONE')], deadlinePassed: true }).status).toBe(
      'DONE',
    );
  });

  it('is FAILED when one expected endpoint FAILED or TIMED_OUT and the rest are DONE', () => {
    expect(aggregate({ responses: [row('DONE'), row('FAILED')] }).status).toBe('FAILED');
    expect(aggregate({ responses: [row('TIMED_OUT'), row('DONE')] }).status).toBe('FAILED');
  });

  it('is INCOMPLETE when an expected endpoint is UNDELIVERED, even beside a FAILED one', () => {
    expect(aggregate({ responses: [row('DONE'), row('UNDELIVERED')] }).status).toBe('INCOMPLETE');
    expect(
      aggregate({ responses: [row('FAILED'), row('UNDELIVERED'), row('TIMED_OUT')] }).status,
    ).toBe('INCOMPLETE');
  });

  it('orders the verdict INCOMPLETE > FAILED > DONE whatever the row order', () => {
    const rows = [row('DONE'), row('FAILED'), row('UNDELIVERED')];
    for (const order of [rows, [...rows].reverse(), [rows[1], rows[2], rows[0]]]) {
      expect(aggregate({ responses: order }).status).toBe('INCOMPLETE');
    }
    expect(aggregate({ responses: [row('FAILED'), row('DONE')] }).status).toBe('FAILED');
  });

  it('ignores unexpected rows when deciding', () => {
    const stillRunning = aggregate({ responses: [row('RUNNING'), row('DONE', false)] });
    expect(stillRunning.status).toBe('SENT');

    const unexpectedFailed = aggregate({
      responses: [row('DONE'), row('FAILED', false), row('UNDELIVERED', false)],
    });
    expect(unexpectedFailed.status).toBe('DONE');

    const unexpectedRunning = aggregate({ responses: [row('DONE'), row('RUNNING', false)] });
    expect(unexpectedRunning.status).toBe('DONE');
  });

  it('decides before the delivery deadline once all expected rows are terminal', () => {
    expect(aggregate({ responses: [row('FAILED')], deadlinePassed: false }).status).toBe('FAILED');
  });
});

describe('aggregateStatus: open broadcasts', () => {
  const open = (overrides: Partial<AggregateInput>): ReturnType<typeof aggregateStatus> =>
    aggregate({ addressed: false, ...overrides });

  it('is not decided before the delivery deadline, even when every responder is done', () => {
    const result = open({ responses: [row('DONE', false), row('DONE', false)] });
    expect(result.status).toBe('SENT');
  });

  it('is decided after the deadline when every responder is terminal', () => {
    expect(open({ deadlinePassed: true, responses: [row('DONE', false)] }).status).toBe('DONE');
    expect(
      open({ deadlinePassed: true, responses: [row('DONE', false), row('TIMED_OUT', false)] })
        .status,
    ).toBe('FAILED');
  });

  it('waits past the deadline while any responder is still running', () => {
    const result = open({
      deadlinePassed: true,
      responses: [row('DONE', false), row('RUNNING', false)],
    });
    expect(result.status).toBe('SENT');
  });

  it('is INCOMPLETE after the deadline when nobody answered', () => {
    expect(open({ deadlinePassed: true, responses: [] }).status).toBe('INCOMPLETE');
    expect(open({ deadlinePassed: false, responses: [] }).status).toBe('SENT');
  });

  it('counts every responder of an open broadcast as deciding', () => {
    const result = open({
      deadlinePassed: true,
      responses: [row('DONE', false), row('FAILED', false)],
    });
    expect(result.status).toBe('FAILED');
  });
});

describe('aggregateStatus: never moves back', () => {
  it.each<TaskStatus>(['DONE', 'FAILED', 'INCOMPLETE'])(
    'a %s task stays terminal when a new responder is not finished',
    (current) => {
      const result = aggregate({
        current,
        addressed: false,
        deadlinePassed: true,
        responses: [row('DONE', false), row('RECEIVED', false)],
      });
      expect(result.status).toBe(current);
    },
  );

  it('a terminal task may change to another terminal verdict on a late fact', () => {
    const result = aggregate({ current: 'INCOMPLETE', responses: [row('DONE'), row('DONE')] });
    expect(result.status).toBe('DONE');
  });

  it('SENT never returns to CREATED', () => {
    const result = aggregate({ current: 'SENT', responses: [row('PENDING'), row('PENDING')] });
    expect(result.status).toBe('SENT');
  });

  it('CREATED stays CREATED while no endpoint has reported', () => {
    const result = aggregate({ current: 'CREATED', responses: [row('PENDING'), row('PENDING')] });
    expect(result.status).toBe('CREATED');
  });

  it.each<ResponseStatus>(['RECEIVED', 'RUNNING'])(
    'CREATED becomes SENT once an endpoint reported %s',
    (status) => {
      const result = aggregate({ current: 'CREATED', responses: [row('PENDING'), row(status)] });
      expect(result.status).toBe('SENT');
    },
  );

  it('CREATED becomes SENT on an unexpected responder of an addressed task', () => {
    const result = aggregate({
      current: 'CREATED',
      responses: [row('PENDING'), row('RECEIVED', false)],
    });
    expect(result.status).toBe('SENT');
  });
});

describe('aggregateStatus: a task held SCHEDULED', () => {
  it('stays SCHEDULED while its rows wait, whatever the deadline', () => {
    const held = { current: 'SCHEDULED' as const, deadlinePassed: true };
    expect(aggregate({ ...held, responses: [row('PENDING')] }).status).toBe('SCHEDULED');
    // a broadcast held past its deadline was never sent: not INCOMPLETE
    expect(aggregate({ ...held, addressed: false }).status).toBe('SCHEDULED');
  });

  it('is CANCELLED once every row was cancelled while it waited', () => {
    const result = aggregate({
      current: 'SCHEDULED',
      responses: [row('CANCELLED'), row('CANCELLED')],
    });
    expect(result.status).toBe('CANCELLED');
  });

  it('counts SCHEDULED as held, not final; CREATED as neither', () => {
    expect(isTerminalTask('SCHEDULED')).toBe(false);
    expect(isHeldTask('SCHEDULED')).toBe(true);
    expect(isHeldTask('CREATED')).toBe(false);
  });
});

describe('countResponses', () => {
  it('counts each kind of row', () => {
    const counts = countResponses([
      row('PENDING'),
      row('RECEIVED'),
      row('RUNNING'),
      row('DONE'),
      row('FAILED'),
      row('TIMED_OUT'),
      row('UNDELIVERED'),
      row('CANCELLED'),
      row('DONE', false),
      row('RUNNING', false),
    ]);
    expect(counts).toEqual({
      expected: 8,
      received: 7,
      done: 2,
      failed: 2,
      undelivered: 1,
      cancelled: 1,
      pending: 4,
      unexpected: 2,
    });
  });

  it('is all zeros for no rows', () => {
    expect(countResponses([])).toEqual({
      expected: 0,
      received: 0,
      done: 0,
      failed: 0,
      undelivered: 0,
      cancelled: 0,
      pending: 0,
      unexpected: 0,
    });
  });

  it('is what aggregateStatus returns alongside the status', () => {
    const responses = [row('DONE'), row('UNDELIVERED'), row('FAILED', false)];
    const result = aggregate({ responses });
    expect(result.status).toBe('INCOMPLETE');
    expect(result.counts).toEqual(countResponses(responses));
    expect(result.counts).toMatchObject({ expected: 2, unexpected: 1, received: 2, failed: 1 });
  });
});

const T0 = '2026-01-01T10:00:00.000Z';
const T1 = '2026-01-01T10:00:05.000Z';
const T2 = '2026-01-01T10:00:10.000Z';
const T3 = '2026-01-01T10:00:20.000Z';
/** when the recorder records: after every event's own time unless a test says otherwise */
const NOW = new Date('2026-01-01T11:00:00.000Z');

function event(overrides: Partial<ResultEvent>): ResultEvent {
  return {
    v: 1,
    task_id: 7,
    type: 'demo',
    endpoint: 'console1',
    event: 'progress',
    status: 'RUNNING',
    errnr: null,
    errmsg: null,
    payload: null,
    progress: null,
    at: T1,
    attempt: 1,
    agent: null,
    round: null,
    ...overrides,
  };
}

function apply(state: ResponseState, ...events: Partial<ResultEvent>[]): ResponseState {
  let current = state;
  for (const e of events) {
    const next = applyResultEvent(current, event(e), NOW);
    if (next === null) throw new Error(`event ${JSON.stringify(e)} unexpectedly ignored`);
    current = next;
  }
  return current;
}

describe('applyResultEvent', () => {
  const agent = { hostname: 'host-a', pid: 42, version: '0.1.0' };

  it('moves PENDING to RECEIVED and records when', () => {
    const next = apply(pendingState(), { event: 'received', status: 'RECEIVED', at: T0, agent });
    expect(next).toMatchObject({
      status: 'RECEIVED',
      attempt: 1,
      agent,
      errnr: null,
      errmsg: null,
      payload: null,
      finishedAt: null,
    });
    expect(next.startTime).toEqual(new Date(T0));
    expect(next.lastEventAt).toEqual(new Date(T0));
  });

  it('does not change the state object it was given', () => {
    const state = pendingState();
    const snapshot = structuredClone(state);
    apply(state, { status: 'DONE', errnr: 0, at: T1 });
    expect(state).toEqual(snapshot);
  });

  it('returns null for a repeated terminal event', () => {
    const done = apply(pendingState(), { event: 'finished', status: 'DONE', errnr: 0, at: T1 });
    expect(
      applyResultEvent(done, event({ event: 'finished', status: 'DONE', at: T1 }), NOW),
    ).toBeNull();
    expect(
      applyResultEvent(done, event({ event: 'finished', status: 'DONE', at: T2 }), NOW),
    ).toBeNull();
  });

  it('returns null for any event after a terminal state', () => {
    const failed = apply(pendingState(), { event: 'finished', status: 'FAILED', errnr: 3 });
    for (const status of ['RECEIVED', 'RUNNING', 'DONE', 'TIMED_OUT', 'CANCELLED'] as const) {
      expect(applyResultEvent(failed, event({ status, at: T3 }), NOW)).toBeNull();
    }
  });

  it('returns null for an event that would move the row back', () => {
    const running = apply(pendingState(), { status: 'RUNNING', at: T1 });
    expect(applyResultEvent(running, event({ status: 'RECEIVED', at: T2 }), NOW)).toBeNull();
  });

  it('ignores an older progress report than the one stored', () => {
    const running = apply(pendingState(), {
      status: 'RUNNING',
      at: T2,
      progress: { current: 5, total: 10, line: 'half' },
    });
    const stale = event({ at: T1, progress: { current: 1, total: 10, line: 'start' } });
    expect(applyResultEvent(running, stale, NOW)).toBeNull();
  });

  it('applies a newer progress report', () => {
    const progress = { current: 5, total: 10, line: 'half' };
    const next = apply(
      pendingState(),
      { status: 'RUNNING', at: T1, progress: { current: 1, total: 10, line: null } },
      { status: 'RUNNING', at: T2, progress },
    );
    expect(next.progress).toEqual(progress);
    expect(next.lastEventAt).toEqual(new Date(T2));
    expect(next.startTime).toEqual(new Date(T1));
  });

  it('keeps the stored progress and agent when an event carries none', () => {
    const progress = { current: 2, total: null, line: 'x' };
    const next = apply(
      pendingState(),
      { status: 'RUNNING', at: T1, progress, agent },
      { status: 'RUNNING', at: T2, progress: null, agent: null },
    );
    expect(next.progress).toEqual(progress);
    expect(next.agent).toEqual(agent);
  });

  it('records when the server heard the event, on its own clock', () => {
    const next = apply(pendingState(), { event: 'received', status: 'RECEIVED', at: T0 });
    expect(next.lastHeardAt).toEqual(NOW);
  });

  it('never dates a start or a finish after the server recorded it (an agent clock ahead)', () => {
    const future = '9999-12-31T23:59:59.000Z';
    const running = apply(pendingState(), { status: 'RUNNING', at: future });
    expect(running.startTime).toEqual(NOW);
    expect(running.lastEventAt).toEqual(NOW);
    const done = apply(running, { event: 'finished', status: 'DONE', errnr: 0, at: future });
    expect(done.finishedAt).toEqual(NOW);
  });

  it('takes the attempt of a run started again after a crash, though its status is behind', () => {
    const running = apply(pendingState(), { status: 'RUNNING', attempt: 1, at: T1 });
    const later = new Date(NOW.getTime() + 60_000);
    const again = applyResultEvent(
      running,
      event({ event: 'received', status: 'RECEIVED', attempt: 2, at: T2 }),
      later,
    );
    expect(again).toMatchObject({ status: 'RUNNING', attempt: 2, lastHeardAt: later });
    // the same attempt again is no news
    expect(
      applyResultEvent(again as ResponseState, event({ status: 'RECEIVED', attempt: 2 }), later),
    ).toBeNull();
  });

  it('keeps the highest attempt seen', () => {
    const up = apply(pendingState(), { status: 'RECEIVED', attempt: 3, at: T0 });
    expect(up.attempt).toBe(3);
    const lower = apply(up, { status: 'RUNNING', attempt: 2, at: T1 });
    expect(lower.attempt).toBe(3);
    const higher = apply(lower, { status: 'RUNNING', attempt: 4, at: T2 });
    expect(higher.attempt).toBe(4);
  });

  it('keeps startTime from the first event and lastEventAt at the latest', () => {
    const next = apply(
      pendingState(),
      { event: 'received', status: 'RECEIVED', at: T1 },
      { status: 'RUNNING', at: T2 },
      // a terminal event stamped earlier than the last progress (clock skew)
      { event: 'finished', status: 'DONE', errnr: 0, at: T0 },
    );
    expect(next.startTime).toEqual(new Date(T1));
    expect(next.lastEventAt).toEqual(new Date(T2));
    expect(next.finishedAt).toEqual(new Date(T0));
  });

  it('sets the terminal fields on DONE', () => {
    const next = apply(
      pendingState(),
      { status: 'RUNNING', at: T1 },
      { event: 'finished', status: 'DONE', errnr: 0, payload: { ok: true }, at: T2 },
    );
    expect(next).toMatchObject({
      status: 'DONE',
      errnr: 0,
      errmsg: null,
      payload: { ok: true },
      finishedAt: new Date(T2),
    });
  });

  it('sets the terminal fields on FAILED', () => {
    const next = apply(pendingState(), {
      event: 'finished',
      status: 'FAILED',
      errnr: 32,
      errmsg: 'disk full',
      payload: { partial: 1 },
      at: T2,
    });
    expect(next).toMatchObject({
      status: 'FAILED',
      errnr: 32,
      errmsg: 'disk full',
      payload: { partial: 1 },
      finishedAt: new Date(T2),
    });
  });

  it('defaults a missing errnr to 0 for DONE and 1 for FAILED or TIMED_OUT', () => {
    const finish = (status: ResponseStatus): ResponseState =>
      apply(pendingState(), { event: 'finished', status, errnr: null, at: T1 });
    expect(finish('DONE').errnr).toBe(0);
    expect(finish('FAILED').errnr).toBe(1);
    expect(finish('TIMED_OUT').errnr).toBe(1);
  });

  it('leaves errnr, errmsg and payload alone for non-terminal events', () => {
    const next = apply(pendingState(), {
      status: 'RUNNING',
      errnr: 5,
      errmsg: 'ignored',
      payload: { ignored: true },
      at: T1,
    });
    expect(next).toMatchObject({ errnr: null, errmsg: null, payload: null, finishedAt: null });
  });

  it('replaces an UNDELIVERED verdict with the late result', () => {
    const undelivered = markUndelivered(pendingState(), new Date(T1));
    expect(undelivered).not.toBeNull();
    const next = apply(undelivered as ResponseState, {
      event: 'finished',
      status: 'DONE',
      errnr: 0,
      payload: 'late but done',
      at: T3,
    });
    expect(next).toMatchObject({
      status: 'DONE',
      errnr: 0,
      errmsg: null,
      payload: 'late but done',
      finishedAt: new Date(T3),
      startTime: new Date(T3),
    });
  });

  it('does not let a late non-final report replace an UNDELIVERED verdict', () => {
    const undelivered = markUndelivered(pendingState(), new Date(T1)) as ResponseState;
    expect(applyResultEvent(undelivered, event({ status: 'RECEIVED', at: T2 }), NOW)).toBeNull();
    expect(applyResultEvent(undelivered, event({ status: 'RUNNING', at: T2 }), NOW)).toBeNull();
    expect(applyResultEvent(undelivered, event({ status: 'CANCELLED', at: T2 }), NOW)).toBeNull();
  });
});

describe('markUndelivered', () => {
  const deadline = new Date(T2);

  it('turns a PENDING row into UNDELIVERED at the deadline', () => {
    const next = markUndelivered(pendingState(), deadline);
    expect(next).not.toBeNull();
    expect(next?.status).toBe('UNDELIVERED');
    expect(next?.finishedAt).toEqual(deadline);
    expect(next?.errmsg).toContain('delivery deadline');
    expect(next?.errmsg).toContain(deadline.toISOString());
  });

  it.each<ResponseStatus>(RESPONSE_STATUSES.filter((s) => s !== 'PENDING'))(
    'leaves a %s row alone',
    (status) => {
      expect(markUndelivered({ ...pendingState(), status }, deadline)).toBeNull();
    },
  );
});

describe('markSilentTimeout', () => {
  const now = new Date(T3);

  it.each<ResponseStatus>(['RECEIVED', 'RUNNING'])(
    'times out a silent %s row with errnr -1',
    (status) => {
      const state: ResponseState = { ...pendingState(), status, lastEventAt: new Date(T0) };
      const next = markSilentTimeout(state, now, 90_000);
      expect(next).toMatchObject({ status: 'TIMED_OUT', errnr: -1, finishedAt: now });
      expect(next?.errmsg).toContain('within 90 s');
      expect(next?.lastEventAt).toEqual(new Date(T0));
    },
  );

  it.each<ResponseStatus>(['PENDING', 'UNDELIVERED', 'DONE', 'FAILED', 'TIMED_OUT', 'CANCELLED'])(
    'leaves a %s row alone',
    (status) => {
      expect(markSilentTimeout({ ...pendingState(), status }, now, 1000)).toBeNull();
    },
  );
});
