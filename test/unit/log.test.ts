/**
 * The structured logger, checked through its sink: one JSON object per line; and the readable
 * lines a terminal shows instead.
 */
import {
  createLogger,
  deferredLogger,
  formatRecord,
  silentLogger,
  type LogLevel,
  type Logger,
} from '../../src/log';

function capture(
  level: LogLevel,
  base?: Record<string, unknown>,
): { log: Logger; lines: string[]; records: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const log = createLogger(level, base, (line) => lines.push(line));
  const records = (): Record<string, unknown>[] =>
    lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { log, lines, records };
}

function logAll(log: Logger): void {
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
}

describe('createLogger', () => {
  it.each<[LogLevel, string[]]>([
    ['debug', ['d', 'i', 'w', 'e']],
    ['info', ['i', 'w', 'e']],
    ['warn', ['w', 'e']],
    ['error', ['e']],
  ])('at level %s writes %j', (level, expected) => {
    const { log, records } = capture(level);
    logAll(log);
    expect(records().map((r) => r.msg)).toEqual(expected);
  });

  it('writes one JSON object per line with time, level and msg', () => {
    const { log, lines, records } = capture('debug');
    const before = Date.now();
    log.warn('disk almost full', { free: 12, path: '/var/x' });
    expect(lines).toHaveLength(1);
    expect(lines[0].endsWith('\n')).toBe(true);
    expect(lines[0].indexOf('\n')).toBe(lines[0].length - 1);
    const [record] = records();
    expect(record).toEqual({
      time: expect.any(String),
      level: 'warn',
      msg: 'disk almost full',
      free: 12,
      path: '/var/x',
    });
    const time = Date.parse(record.time as string);
    expect(new Date(time).toISOString()).toBe(record.time);
    expect(time).toBeGreaterThanOrEqual(before - 1);
    expect(time).toBeLessThanOrEqual(Date.now() + 1);
  });

  it('escapes newlines in messages and fields so a record stays on one line', () => {
    const { log, lines, records } = capture('info');
    log.info('line one\nline two', { note: 'a\nb' });
    expect(lines[0].split('\n')).toHaveLength(2);
    expect(records()[0]).toMatchObject({ msg: 'line one\nline two', note: 'a\nb' });
  });

  it('serializes an Error field with its name, message, code and cause', () => {
    const { log, records } = capture('info');
    const root = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const err = new TypeError('could not publish', { cause: root });
    log.error('publish failed', { err, task_id: 7 });
    expect(records()[0]).toEqual({
      time: expect.any(String),
      level: 'error',
      msg: 'publish failed',
      task_id: 7,
      err: {
        name: 'TypeError',
        message: 'could not publish',
        stack: expect.stringContaining('TypeError: could not publish'),
        cause: { name: 'Error', message: 'connect ECONNREFUSED', code: 'ECONNREFUSED' },
      },
    });
  });

  it('cuts a very long error message in the middle, in the stack too, and keeps the frames', () => {
    const { log, records } = capture('info');
    const err = new Error(
      `insert into task_responses ${'(?, ?), '.repeat(5000)}- Data too long for column 'errmsg'`,
    );
    log.error('could not record', { err });
    const written = records()[0]?.err as { message: string; stack: string };
    expect(written.message).toHaveLength(2000);
    expect(written.message).toMatch(
      /^insert into task_responses \(\?, \?\), .*….*- Data too long for column 'errmsg'$/,
    );
    expect(written.stack).toMatch(
      /^Error: insert into task_responses .*….*- Data too long for column 'errmsg'\n/,
    );
    expect(written.stack).toMatch(/\n {4}at .*log\.test\.ts/);
    expect(written.stack.length).toBeLessThan(6000);
  });

  it('keeps a non-Error cause as it is', () => {
    const { log, records } = capture('info');
    log.error('x', { err: new Error('outer', { cause: { status: 503 } }) });
    expect(records()[0].err).toEqual({
      name: 'Error',
      message: 'outer',
      stack: expect.any(String),
      cause: { status: 503 },
    });
  });

  it('does not throw on an error whose cause chain loops', () => {
    const { log, lines } = capture('info');
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(() => log.error('loop', { err: a })).not.toThrow();
    expect(lines).toHaveLength(1);
  });

  it('writes a field that refers to itself, and a bigint, without losing the record', () => {
    const { log, records } = capture('info');
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    log.info('odd fields', { circular, big: 1n });
    expect(records()).toEqual([
      {
        time: expect.any(String),
        level: 'info',
        msg: 'odd fields',
        circular: { name: 'loop', self: '[Circular]' },
        big: 1,
      },
    ]);
  });

  it("serializes an Error given in a child logger's fields too", () => {
    const { log, records } = capture('info');
    log.child({ err: new RangeError('out of range') }).warn('w');
    expect(records()[0].err).toMatchObject({ name: 'RangeError', message: 'out of range' });
  });

  it('adds the base fields to every record', () => {
    const { log, records } = capture('info', { service: 'tasker', pid: 99 });
    log.info('hello');
    expect(records()[0]).toMatchObject({ service: 'tasker', pid: 99, msg: 'hello' });
  });

  it('child loggers add their fields, keep the parent level and the same writer', () => {
    const { log, records } = capture('info', { service: 'tasker' });
    const child = log.child({ task_id: 7 }).child({ attempt: 2, service: 'agent' });
    child.debug('dropped');
    child.info('from child', { extra: true });
    log.info('from parent');
    expect(records()).toEqual([
      {
        time: expect.any(String),
        level: 'info',
        service: 'agent',
        task_id: 7,
        attempt: 2,
        msg: 'from child',
        extra: true,
      },
      { time: expect.any(String), level: 'info', service: 'tasker', msg: 'from parent' },
    ]);
  });

  it('silentLogger writes nothing and never throws', () => {
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      logAll(silentLogger);
      silentLogger.child({ a: 1 }).error('x', { err: new Error('y') });
      expect(write).not.toHaveBeenCalled();
    } finally {
      write.mockRestore();
    }
  });
});

describe("formatRecord (a terminal's lines)", () => {
  const record = (fields: Record<string, unknown>): Record<string, unknown> => {
    const { log, records } = capture('debug', { process: 'server' });
    log.child({ request_id: 'r-1' }).warn('publish failed', fields);
    return records()[0] as Record<string, unknown>;
  };

  it('writes time, level, message and key=value fields on one line', () => {
    const line = formatRecord(record({ task_id: 7, path: '/worker/a b', ok: true }));
    expect(line).toMatch(
      /^\d{2}:\d{2}:\d{2}\.\d{3} WARN  publish failed process=server request_id=r-1 task_id=7 path="\/worker\/a b" ok=true\n$/,
    );
  });

  it('writes an error with its cause chain, and its stack frames indented below', () => {
    const root = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const text = formatRecord(record({ err: new TypeError('could not publish', { cause: root }) }));
    const [line, ...frames] = text.trimEnd().split('\n');
    expect(line).toContain(
      'err="TypeError: could not publish ← Error: connect ECONNREFUSED (ECONNREFUSED)"',
    );
    expect(frames.length).toBeGreaterThan(0);
    for (const frame of frames) expect(frame).toMatch(/^ {4}at /);
    expect(frames[0]).toContain('log.test.ts');
  });

  it('colours the level only when asked', () => {
    const plain = formatRecord(record({}));
    const coloured = formatRecord(record({}), true);
    expect(plain).not.toContain('\u001b[');
    expect(coloured).toContain('\u001b[33mWARN \u001b[0m');
  });
});

describe('deferredLogger', () => {
  it('makes its logger only when first written to, and a child only when the child is', () => {
    const lines: string[] = [];
    let made = 0;
    const logger = deferredLogger(() => {
      made += 1;
      return createLogger('debug', {}, (line) => lines.push(line));
    });
    const child = logger.child({ run: 1 });
    expect(made).toBe(0);
    child.info('hello', { n: 2 });
    expect(made).toBe(1);
    logger.warn('again');
    expect(made).toBe(1);
    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toMatchObject([
      { level: 'info', msg: 'hello', run: 1, n: 2 },
      { level: 'warn', msg: 'again' },
    ]);
  });
});
