/**
 * The AMQP wire formats: valid messages parse, anything else is a MessageError naming the field.
 */
import { MessageError } from '../../src/domain/errors';
import {
  MAX_EVENTS_PER_MESSAGE,
  WIRE_VERSION,
  encodeResultEvents,
  RESULT_LIMITS,
  parseResultMessage,
  parseTaskMessage,
  readResultEvent,
  type ResultEvent,
  type TaskMessage,
} from '../../src/domain/messages';

const TASK: TaskMessage = {
  v: 1,
  id: 12,
  identifier: 'e7bd91d0-16ad-11e2-892e-0800200c9a66',
  type: 'demo',
  payload: { foo: 'bar' },
  endpoints: ['console1', 'console2'],
  created_at: '2026-01-01T10:00:00.000Z',
  deliver_by: '2026-01-01T10:05:00.000Z',
  execution_timeout_ms: 60_000,
  max_deliveries: 3,
  round: 1,
};

const EVENT: ResultEvent = {
  v: 1,
  task_id: 12,
  type: 'demo',
  endpoint: 'console1',
  event: 'finished',
  status: 'DONE',
  errnr: 0,
  errmsg: null,
  payload: { answer: 42 },
  progress: { current: 3, total: 10, line: 'step 3' },
  at: '2026-01-01T10:00:03.000Z',
  attempt: 1,
  agent: { hostname: 'host-a', pid: 4242, version: '0.1.0' },
  round: 1,
};

/** JSON for `base` with `changes` applied; an `undefined` value removes the key. */
function json(base: object, changes: Record<string, unknown> = {}): string {
  const obj: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined) delete obj[key];
    else obj[key] = value;
  }
  return JSON.stringify(obj);
}

function messageError(parse: () => unknown): MessageError {
  try {
    parse();
  } catch (err) {
    expect(err).toBeInstanceOf(MessageError);
    expect((err as MessageError).code).toBe('invalid_message');
    return err as MessageError;
  }
  throw new Error('expected a MessageError, but parsing succeeded');
}

describe('parseTaskMessage', () => {
  it('accepts a valid message from a string or a Buffer', () => {
    expect(parseTaskMessage(JSON.stringify(TASK))).toEqual(TASK);
    expect(parseTaskMessage(Buffer.from(JSON.stringify(TASK), 'utf8'))).toEqual(TASK);
    expect(WIRE_VERSION).toBe(1);
  });

  it('carries the dependencies of a task that came after others, and checks their shape', () => {
    const dependencies = [{ type: 'worker', identifier: 'a', status: 'DONE', responses: [] }];
    expect(parseTaskMessage(json(TASK, { dependencies })).dependencies).toEqual(dependencies);
    expect('dependencies' in parseTaskMessage(json(TASK, {}))).toBe(false);
    expect(() => parseTaskMessage(json(TASK, { dependencies: {} }))).toThrow(
      /dependencies must be an array/,
    );
    expect(() => parseTaskMessage(json(TASK, { dependencies: [{ type: 'worker' }] }))).toThrow(
      /dependencies\[0\] must be an object with its responses/,
    );
  });

  it('reads null or missing endpoints as a broadcast', () => {
    expect(parseTaskMessage(json(TASK, { endpoints: null })).endpoints).toBeNull();
    expect(parseTaskMessage(json(TASK, { endpoints: undefined })).endpoints).toBeNull();
  });

  it('reads a missing payload as null and keeps any JSON payload unchanged', () => {
    expect(parseTaskMessage(json(TASK, { payload: undefined })).payload).toBeNull();
    const payload = { list: [1, 'two', null], text: "'; DROP TABLE tasks; -- $(rm -rf /) 🚀" };
    expect(parseTaskMessage(json(TASK, { payload })).payload).toEqual(payload);
  });

  it('keeps control characters and emoji in the identifier', () => {
    const identifier = 'line1\nline2\t🚀';
    expect(parseTaskMessage(json(TASK, { identifier })).identifier).toBe(identifier);
  });

  it('ignores fields it does not know (newer senders)', () => {
    const parsed = parseTaskMessage(json(TASK, { extra: 'x' }));
    expect(parsed).toEqual(TASK);
    expect(parsed).not.toHaveProperty('extra');
  });

  it.each([
    ['bad JSON', '{"v":1,', /task message is not valid JSON/],
    ['empty input', '', /task message is not valid JSON/],
    ['a JSON array', '[1]', /task message must be a JSON object/],
    ['JSON null', 'null', /task message must be a JSON object/],
    ['a JSON string', '"hello"', /task message must be a JSON object/],
    ['a JSON number', '1', /task message must be a JSON object/],
  ])('rejects %s', (_what, raw, message) => {
    expect(messageError(() => parseTaskMessage(raw)).message).toMatch(message);
  });

  it.each([
    ['missing', undefined, 'undefined'],
    ['2', 2, '2'],
    ['0', 0, '0'],
    ['"1"', '1', '"1"'],
    ['null', null, 'null'],
  ])('rejects schema version %s', (_what, v, shown) => {
    const err = messageError(() => parseTaskMessage(json(TASK, { v })));
    expect(err.message).toContain('unsupported schema version');
    expect(err.message).toContain(shown);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['id missing', { id: undefined }, /^id is required/],
    ['id a string', { id: '12' }, /^id must be an integer, got a string/],
    ['id a fraction', { id: 1.5 }, /^id must be an integer/],
    ['id zero', { id: 0 }, /^id must be at least 1/],
    ['identifier missing', { identifier: undefined }, /^identifier is required/],
    ['identifier a number', { identifier: 5 }, /^identifier must be a string, got a number/],
    ['identifier empty', { identifier: '' }, /^identifier must not be empty/],
    ['type missing', { type: undefined }, /^type must be a string/],
    ['type upper-case', { type: 'Demo' }, /^type must be lower-case/],
    ['type reserved', { type: 'healthz' }, /^type "healthz" is reserved/],
    ['endpoints a string', { endpoints: 'console1' }, /^endpoints must be an array or null/],
    ['endpoints an object', { endpoints: { a: 1 } }, /^endpoints must be an array or null/],
    ['endpoint with a space', { endpoints: ['ok', 'bad name'] }, /^endpoints\[1\] must be 1-64/],
    ['endpoint a number', { endpoints: [7] }, /^endpoints\[0\] must be a string, got a number/],
    ['endpoint empty', { endpoints: [''] }, /^endpoints\[0\] must not be empty/],
    ['endpoint too long', { endpoints: ['a'.repeat(65)] }, /^endpoints\[0\] must be 1-64/],
    ['endpoint with a slash', { endpoints: ['../x'] }, /^endpoints\[0\] must be 1-64/],
    ['created_at missing', { created_at: undefined }, /^created_at is required/],
    ['created_at a number', { created_at: 1 }, /^created_at must be a string/],
    ['created_at not a date', { created_at: 'yesterday' }, /^created_at must be an ISO-8601/],
    ['deliver_by not a date', { deliver_by: 'soon' }, /^deliver_by must be an ISO-8601/],
    [
      'execution_timeout_ms zero',
      { execution_timeout_ms: 0 },
      /^execution_timeout_ms must be at least 1/,
    ],
    [
      'execution_timeout_ms a string',
      { execution_timeout_ms: '60s' },
      /^execution_timeout_ms must be an integer/,
    ],
    ['max_deliveries missing', { max_deliveries: undefined }, /^max_deliveries is required/],
    ['max_deliveries zero', { max_deliveries: 0 }, /^max_deliveries must be at least 1/],
  ])('rejects %s', (_what, changes, message) => {
    expect(messageError(() => parseTaskMessage(json(TASK, changes))).message).toMatch(message);
  });
});

describe('readResultEvent', () => {
  const parseResultEvent = (raw: string | Buffer): ResultEvent =>
    readResultEvent(JSON.parse(raw.toString()));

  it('accepts a valid finished event from a string or a Buffer', () => {
    expect(parseResultEvent(JSON.stringify(EVENT))).toEqual(EVENT);
    expect(parseResultEvent(Buffer.from(JSON.stringify(EVENT)))).toEqual(EVENT);
  });

  it('accepts a minimal progress event and fills the optional fields with null', () => {
    const minimal = {
      v: 1,
      task_id: 1,
      type: 'demo',
      endpoint: 'host.example-1',
      event: 'progress',
      status: 'RUNNING',
      at: '2026-01-01T10:00:03Z',
      attempt: 2,
    };
    expect(parseResultEvent(JSON.stringify(minimal))).toEqual({
      ...minimal,
      errnr: null,
      errmsg: null,
      payload: null,
      progress: null,
      agent: null,
      round: null,
    });
  });

  it.each(['RECEIVED', 'RUNNING', 'DONE', 'FAILED', 'TIMED_OUT', 'CANCELLED'])(
    'accepts status %s',
    (status) => {
      expect(parseResultEvent(json(EVENT, { status })).status).toBe(status);
    },
  );

  it.each(['received', 'progress', 'finished'])('accepts event %s', (kind) => {
    expect(parseResultEvent(json(EVENT, { event: kind })).event).toBe(kind);
  });

  it('accepts a progress object without total or line', () => {
    const parsed = parseResultEvent(json(EVENT, { progress: { current: 0 } }));
    expect(parsed.progress).toEqual({ current: 0, total: null, line: null });
  });

  it('keeps negative errnr and a multi-line errmsg', () => {
    const parsed = parseResultEvent(json(EVENT, { errnr: -1, errmsg: 'a\nb\tc' }));
    expect(parsed.errnr).toBe(-1);
    expect(parsed.errmsg).toBe('a\nb\tc');
  });

  it('reads an empty errmsg or progress line as none', () => {
    const parsed = parseResultEvent(
      json(EVENT, { errmsg: '', progress: { current: 1, line: '' } }),
    );
    expect(parsed.errmsg).toBeNull();
    expect(parsed.progress).toEqual({ current: 1, total: null, line: null });
  });

  it('takes every value at the limits the response table holds', () => {
    const parsed = parseResultEvent(
      json(EVENT, {
        errnr: RESULT_LIMITS.minErrnr,
        errmsg: 'é'.repeat(RESULT_LIMITS.errmsgChars),
        payload: 'x'.repeat(RESULT_LIMITS.payloadBytes - 2),
        attempt: RESULT_LIMITS.maxAttempt,
        at: '9999-12-31T23:59:59.999Z',
        progress: { current: 1, line: 'x'.repeat(RESULT_LIMITS.progressLineChars) },
      }),
    );
    expect(parsed.errnr).toBe(-(2 ** 31));
    expect(parsed.errmsg).toHaveLength(4000);
  });

  it('rejects a wrong schema version', () => {
    const err = messageError(() => parseResultEvent(json(EVENT, { v: 2 })));
    expect(err.message).toMatch(/result event has unsupported schema version 2/);
  });

  it.each(['PENDING', 'UNDELIVERED'])('rejects status %s, which only the server sets', (status) => {
    const err = messageError(() => parseResultEvent(json(EVENT, { status })));
    expect(err.message).toMatch(/^status must be RECEIVED, RUNNING/);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['status unknown', { status: 'SUCCESS' }, /^status must be/],
    ['status lower-case', { status: 'done' }, /^status must be/],
    ['status missing', { status: undefined }, /^status must be/],
    [
      'event unknown',
      { event: 'started' },
      /^event must be one of received, progress, retrying, finished/,
    ],
    ['event missing', { event: undefined }, /^event must be one of/],
    ['event a number', { event: 1 }, /^event must be one of/],
    ['task_id missing', { task_id: undefined }, /^task_id is required/],
    ['task_id a string', { task_id: '12' }, /^task_id must be an integer, got a string/],
    ['task_id negative', { task_id: -3 }, /^task_id must be at least 1/],
    ['type invalid', { type: 'a b' }, /^type must be lower-case/],
    ['type too long', { type: 'a'.repeat(33) }, /^type must be lower-case/],
    ['endpoint missing', { endpoint: undefined }, /^endpoint must be a string/],
    ['endpoint with a space', { endpoint: 'console 1' }, /^endpoint must be 1-64/],
    ['endpoint starting with a dot', { endpoint: '.hidden' }, /^endpoint must be 1-64/],
    ['endpoint with a newline', { endpoint: 'a\nb' }, /^endpoint must not contain control/],
    ['errnr a string', { errnr: '32' }, /^errnr must be an integer, got a string/],
    ['errnr a fraction', { errnr: 0.5 }, /^errnr must be an integer/],
    ['errmsg a number', { errmsg: 12 }, /^errmsg must be a string, got a number/],
    ['errmsg too long', { errmsg: 'x'.repeat(4001) }, /^errmsg must be at most 4000 characters/],
    ['errnr past 32 bits', { errnr: 2 ** 31 }, /^errnr must be at most 2147483647/],
    ['errnr below 32 bits', { errnr: -(2 ** 31) - 1 }, /^errnr must be at least -2147483648/],
    ['at before 1970', { at: '1969-12-31T23:59:59Z' }, /^at must be between 1970 and 9999/],
    ['at past 9999', { at: '+010000-01-01T00:00:00Z' }, /^at must be between 1970 and 9999/],
    ['attempt past 32 bits', { attempt: 2 ** 31 }, /^attempt must be at most 2147483647/],
    [
      'progress.line too long',
      { progress: { current: 1, line: 'x'.repeat(1001) } },
      /^progress\.line must be at most 1000 characters/,
    ],
    [
      'payload over the limit',
      { payload: 'x'.repeat(RESULT_LIMITS.payloadBytes) },
      /^payload is 1048578 bytes as JSON; the limit is 1048576/,
    ],
    ['at missing', { at: undefined }, /^at is required/],
    ['at not a date', { at: 'now' }, /^at must be an ISO-8601 timestamp/],
    ['at too long', { at: `2026-01-01T10:00:00Z${' '.repeat(30)}` }, /^at must be at most 40/],
    ['attempt zero', { attempt: 0 }, /^attempt must be at least 1/],
    ['attempt missing', { attempt: undefined }, /^attempt is required/],
    ['progress a number', { progress: 5 }, /^progress must be an object or null/],
    ['progress an array', { progress: [1] }, /^progress must be an object or null/],
    ['progress.current negative', { progress: { current: -1 } }, /^progress\.current must be/],
    ['progress.current missing', { progress: {} }, /^progress\.current must be an integer/],
    [
      'progress.total a string',
      { progress: { current: 1, total: '10' } },
      /^progress\.total must be an integer/,
    ],
    [
      'progress.line a number',
      { progress: { current: 1, line: 3 } },
      /^progress\.line must be a string/,
    ],
    ['agent a string', { agent: 'host-a' }, /^agent must be an object or null/],
    ['agent.hostname missing', { agent: { pid: 1, version: '1' } }, /^agent\.hostname is required/],
    [
      'agent.hostname too long',
      { agent: { hostname: 'h'.repeat(256), pid: 1, version: '1' } },
      /^agent\.hostname must be at most 255/,
    ],
    [
      'agent.pid negative',
      { agent: { hostname: 'h', pid: -1, version: '1' } },
      /^agent\.pid must be at least 0/,
    ],
    [
      'agent.version a number',
      { agent: { hostname: 'h', pid: 1, version: 1 } },
      /^agent\.version must be a string/,
    ],
  ])('rejects %s', (_what, changes, message) => {
    expect(messageError(() => parseResultEvent(json(EVENT, changes))).message).toMatch(message);
  });
});

describe('parseResultMessage', () => {
  const second: ResultEvent = { ...EVENT, task_id: 13, status: 'FAILED', errnr: 2, errmsg: 'no' };

  it('reads one event, or several an agent sent together, as encodeResultEvents writes them', () => {
    expect(JSON.parse(encodeResultEvents([EVENT]).toString())).toEqual(EVENT);
    expect(parseResultMessage(encodeResultEvents([EVENT]))).toEqual({
      events: [EVENT],
      invalid: [],
    });
    expect(parseResultMessage(encodeResultEvents([EVENT, second])).events).toEqual([EVENT, second]);
  });

  it('keeps the valid events of a message and says why each other one is refused', () => {
    const raw = JSON.stringify([EVENT, { ...EVENT, status: 'PENDING' }, 7, second]);
    const { events, invalid } = parseResultMessage(raw);
    expect(events).toEqual([EVENT, second]);
    expect(invalid).toEqual([
      expect.stringMatching(/^event 1 of the result message: status must be/),
      'event 2 of the result message: result event must be a JSON object',
    ]);
  });

  it('refuses a single event that is not one, naming the problem', () => {
    expect(parseResultMessage('true')).toEqual({
      events: [],
      invalid: ['result event must be a JSON object'],
    });
    expect(parseResultMessage(json(EVENT, { v: 2 })).invalid).toEqual([
      'result event has unsupported schema version 2',
    ]);
  });

  it('measures each payload as it will be stored, not as it came', () => {
    const big = { ...EVENT, payload: 'x'.repeat(RESULT_LIMITS.payloadBytes / 2) };
    expect(parseResultMessage(JSON.stringify([big, { ...big, task_id: 13 }])).events).toHaveLength(
      2,
    );
    // 1e9 is written 1000000000: 250,000 of them are 3/4 MB as sent, 2.75 MB as stored
    const numbers = `[${Array(250_000).fill('1e9').join(',')}]`;
    const raw = `[${JSON.stringify(EVENT)},${JSON.stringify(EVENT).replace(
      /"payload":\{[^}]*\}/,
      `"payload":${numbers}`,
    )}]`;
    expect(raw.length).toBeLessThan(RESULT_LIMITS.payloadBytes);
    expect(parseResultMessage(raw).invalid).toEqual([
      expect.stringMatching(/^event 1 of the result message: payload is 2750001 bytes as JSON/),
    ]);
  });

  it.each([101, 200_000])('refuses a payload nested %i levels deep, naming it', (levels) => {
    const deep = `${'['.repeat(levels)}${']'.repeat(levels)}`;
    const raw = JSON.stringify(EVENT).replace(/"payload":\{[^}]*\}/, `"payload":${deep}`);
    expect(parseResultMessage(raw).invalid).toEqual([
      'payload nests deeper than 100 levels of arrays and objects',
    ]);
  });

  it.each([
    ['[]', /1 to 1000 events, not 0/],
    [JSON.stringify(Array(MAX_EVENTS_PER_MESSAGE + 1).fill(EVENT)), /not 1001/],
    [JSON.stringify([EVENT, { ...EVENT, endpoint: 'console2' }]), /all be for one endpoint/],
    ['[{"v":1', /result message is not valid JSON/],
    ['{not json}', /result message is not valid JSON/],
  ])('refuses %s', (raw, message) => {
    expect(messageError(() => parseResultMessage(raw)).message).toMatch(message);
  });
});
