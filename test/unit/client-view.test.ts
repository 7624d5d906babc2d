/**
 * What the client shows of a task, pure: the live view for a screen of a given size, the line
 * per change off a terminal, the summary and its grouping of failures, the event stream's
 * parser and the state it builds.
 */
import type { ResponseStatus } from '../../src/domain';
import { describeChanges } from '../../src/client/changes';
import { EventParser } from '../../src/client/events';
import { renderSummary, summarize } from '../../src/client/summary';
import { displayWidth, fit } from '../../src/client/text';
import { LiveRegion } from '../../src/client/terminal';
import { renderView, rowDetail } from '../../src/client/view';
import { applyEvent, stateOf, type WatchState } from '../../src/client/watch-state';
import type { ResponseJson, TaskDocument, TaskJson } from '../../src/client/wire';

const START = Date.parse('2026-11-30T10:00:00.000Z');

function task(fields: Partial<TaskJson> = {}): TaskJson {
  return {
    id: 1,
    identifier: 'release-42',
    type: 'worker',
    status: 'SENT',
    start_time: new Date(START).toISOString(),
    finished_at: null,
    endpoints: [],
    counts: {
      expected: 0,
      received: 0,
      done: 0,
      failed: 0,
      undelivered: 0,
      cancelled: 0,
      pending: 0,
      unexpected: 0,
    },
    version: 1,
    round: 1,
    stopped_reason: null,
    cancel_reason: null,
    ...fields,
  };
}

function row(endpoint: string, status: ResponseStatus, fields: Partial<ResponseJson> = {}) {
  return {
    endpoint,
    status,
    errnr: status === 'DONE' ? 0 : null,
    errmsg: null,
    progress: null,
    attempt: 1,
    round: 1,
    ...fields,
  } satisfies ResponseJson;
}

function document(rows: ResponseJson[], fields: Partial<TaskJson> = {}): TaskDocument {
  const counts = { ...task().counts, expected: rows.length };
  return { task: task({ counts, ...fields }), taskResponseList: rows };
}

const running = (endpoint: string, current: number): ResponseJson =>
  row(endpoint, 'RUNNING', { progress: { current, total: 20, line: `step ${current} of 20` } });

describe('the live view', () => {
  const state = stateOf(
    document([
      running('console1', 10),
      row('console2', 'DONE'),
      row('console3', 'FAILED', { errnr: 32, errmsg: 'could not backup!' }),
      row('console4', 'PENDING'),
    ]),
  );

  it('shows the bar, the figures and every endpoint when they fit', () => {
    expect(renderView(state, { width: 100, height: 20 }, START + 12_000)).toEqual([
      'worker release-42  SENT',
      `${'█'.repeat(20)}${'░'.repeat(20)}  2/4 final  0.2/s  00:12`,
      'done 1  failed 1  running 1  waiting 1',
      `  console1  RUNNING      ${'█'.repeat(5)}${'░'.repeat(5)} 10/20 step 10 of 20`,
      '  console2  DONE',
      '  console3  FAILED       errnr 32 could not backup!',
      '  console4  PENDING',
    ]);
  });

  it('keeps to the screen: the running and failed first, the rest counted by state', () => {
    const many = stateOf(
      document([
        ...Array.from({ length: 30 }, (_, i) => row(`web${String(i).padStart(2, '0')}`, 'DONE')),
        ...Array.from({ length: 7 }, (_, i) => row(`db${i}`, 'PENDING')),
        running('app1', 3),
        row('app2', 'TIMED_OUT', { errnr: -1, errmsg: 'timed out after 60 s' }),
      ]),
    );
    const lines = renderView(many, { width: 60, height: 8 }, START + 1000);
    expect(lines).toHaveLength(7);
    expect(lines.slice(3)).toEqual([
      '  app1  RUNNING      3/20 step 3 of 20',
      '  app2  TIMED_OUT    errnr -1 timed out after 60 s',
      '  db0   PENDING',
      '  … 36 more: 30 DONE, 6 PENDING',
    ]);
    for (const line of lines) expect(displayWidth(line)).toBeLessThanOrEqual(60);
  });

  it('cuts lines to the width, wide characters counted twice, control characters cleaned', () => {
    const hostile = stateOf(
      document([
        row('console1', 'FAILED', {
          errnr: 1,
          errmsg: '\u001b[2J错误错误错误错误错误错误错误错误',
        }),
      ]),
    );
    const lines = renderView(hostile, { width: 40, height: 10 }, START);
    expect(lines[3]).toBe('  console1  FAILED       errnr 1  [2J错…');
    for (const line of lines) expect(displayWidth(line)).toBeLessThanOrEqual(40);
    expect(fit('abcdef', 4)).toBe('abc…');
  });

  it('tells of a row waiting to be retried: the next attempt, when, and after what', () => {
    const waiting = row('web1', 'RETRYING', {
      attempt: 2,
      errnr: 75,
      errmsg: 'mirror busy',
      next_attempt_at: '2026-11-30T10:00:15.000Z',
    });
    expect(rowDetail(waiting, 10)).toBe('attempt 3 at 10:00:15, after errnr 75: mirror busy');
  });

  it('on a tiny screen shows what fits of the header', () => {
    expect(renderView(state, { width: 30, height: 3 }, START)).toHaveLength(2);
  });

  it('counts a broadcast against the endpoints that answered', () => {
    const broadcast = stateOf({
      task: task(),
      taskResponseList: [row('a', 'DONE'), running('b', 1)],
    });
    expect(renderView(broadcast, { width: 80, height: 10 }, START + 2000)[1]).toMatch(
      /  1\/2 final  0\.5\/s  00:02$/,
    );
  });
});

describe('a line per change', () => {
  it('tells the task status, then each endpoint that moved, once', () => {
    const first = stateOf(document([row('console1', 'PENDING'), row('console2', 'PENDING')]));
    expect(describeChanges(null, first, '10:00:00')).toEqual([
      '10:00:00 worker release-42 SENT',
      '10:00:00   console1 PENDING',
      '10:00:00   console2 PENDING',
    ]);
    const second = applyEvent(first, {
      event: 'response',
      id: '2',
      data: JSON.stringify(running('console2', 4)),
    }) as WatchState;
    expect(describeChanges(first, second, '10:00:04')).toEqual([
      '10:00:04   console2 RUNNING 4/20 step 4 of 20',
    ]);
    expect(describeChanges(second, second, '10:00:05')).toEqual([]);
    // a final status is the summary's to tell
    const done = applyEvent(second, {
      event: 'task',
      id: '3',
      data: JSON.stringify(task({ status: 'DONE' })),
    }) as WatchState;
    expect(describeChanges(second, done, '10:00:06')).toEqual([]);
  });
});

describe('the summary', () => {
  const final = document(
    [
      row('web1', 'DONE'),
      row('web2', 'FAILED', { errnr: 32, errmsg: 'could not backup!' }),
      row('web3', 'FAILED', { errnr: 32, errmsg: 'could not backup!' }),
      row('web4', 'FAILED', { errnr: 5, errmsg: 'disk full' }),
      row('web5', 'TIMED_OUT', { errnr: -1, errmsg: 'timed out' }),
      row('web6', 'UNDELIVERED'),
      row('web7', 'PENDING', { registry: { status: 'never_seen' } }),
      row('web8', 'CANCELLED', { errnr: -2 }),
    ],
    { status: 'FAILED', finished_at: new Date(START + 61_000).toISOString() },
  );

  it('counts targeted and returned, names those that did not return, groups failures', () => {
    const summary = summarize(final);
    expect(summary).toMatchObject({
      targeted: 8,
      returned: 6,
      done: 1,
      failed: 4,
      cancelled: 1,
      didNotReturn: [
        { endpoint: 'web6', status: 'UNDELIVERED', why: null },
        { endpoint: 'web7', status: 'PENDING', why: 'no agent of that name ever started' },
      ],
      failures: [
        { errnr: 32, errmsg: 'could not backup!', endpoints: ['web2', 'web3'] },
        { errnr: 5, errmsg: 'disk full', endpoints: ['web4'] },
        { errnr: -1, errmsg: 'timed out', endpoints: ['web5'] },
      ],
    });
    expect(renderSummary(summary)).toEqual([
      'worker release-42: FAILED after 1 min 1 s',
      '  targeted:       8',
      '  returned:       6',
      '  did not return: 2: web6 (UNDELIVERED), web7 (PENDING, no agent of that name ever started)',
      '  done:           1',
      '  failed:         4',
      '    errnr 32 "could not backup!" (2): web2, web3',
      '    errnr 5 "disk full" (1): web4',
      '    errnr -1 "timed out" (1): web5',
      '  cancelled:      1',
    ]);
  });

  it('names at most so many endpoints on a line', () => {
    const rows = Array.from({ length: 25 }, (_, i) =>
      row(`h${String(i).padStart(2, '0')}`, 'FAILED', { errnr: 1, errmsg: 'x' }),
    );
    const lines = renderSummary(summarize(document(rows, { status: 'FAILED' })), 3);
    expect(lines).toContain('    errnr 1 "x" (25): h00, h01, h02 … and 22 more');
  });
});

describe('the event stream', () => {
  it('parses events split anywhere, with CRLF, comments and multi-line data', () => {
    const parser = new EventParser();
    const text =
      ': ping\r\n\r\nevent: snapshot\r\nid: 1\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: end\ndata: {}\n\n';
    const events = [...text].flatMap((char) => parser.push(char));
    expect(events).toEqual([
      { event: 'snapshot', id: '1', data: '{"a":\n1}' },
      { event: 'end', id: '1', data: '{}' },
    ]);
  });

  it('builds the state from a snapshot, then task and response events, to the end', () => {
    const snapshot = document([row('a', 'PENDING')]);
    let state = applyEvent(null, { event: 'task', id: '1', data: '{}' });
    expect(state).toBeNull();
    state = applyEvent(state, { event: 'snapshot', id: '1', data: JSON.stringify(snapshot) });
    state = applyEvent(state, {
      event: 'response',
      id: '2',
      data: JSON.stringify(row('a', 'DONE')),
    });
    state = applyEvent(state, {
      event: 'task',
      id: '2',
      data: JSON.stringify(task({ status: 'DONE' })),
    });
    expect(state?.ended).toBe(false);
    state = applyEvent(state, { event: 'end', id: '2', data: '{"status":"DONE"}' });
    expect(state?.ended).toBe(true);
    expect(state?.task.status).toBe('DONE');
    expect([...(state?.rows.values() ?? [])].map((r) => r.status)).toEqual(['DONE']);
  });
});

describe('drawing in place', () => {
  it('hides the cursor and wrapping once, goes back over what it drew, and restores both', () => {
    const written: string[] = [];
    const region = new LiveRegion({
      write: (text) => written.push(text) > 0,
      columns: 50,
      rows: 7,
    });
    expect(region.screen).toEqual({ width: 50, height: 7 });
    region.draw(['a', 'b', 'c']);
    region.draw(['d', 'e']);
    region.draw(['f']);
    region.stop();
    region.stop();
    expect(written).toEqual([
      '\u001b[?25l\u001b[?7l\r\u001b[Ja\nb\nc\n',
      '\u001b[3F\u001b[Jd\ne\n',
      '\u001b[2F\u001b[Jf\n',
      '\u001b[?7h\u001b[?25h',
    ]);
  });
});
