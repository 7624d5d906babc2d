/**
 * The POST body check: the original body passes; every bad field is a ValidationError naming it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseCreateTaskBody, type BodyLimits } from '../../src/api/validate';
import { TaskerError, ValidationError } from '../../src/domain/errors';
import { MAX_JSON_DEPTH } from '../../src/domain/fields';

const LIMITS: BodyLimits = {
  maxIdentifierLength: 255,
  maxPayloadBytes: 1024,
  maxEndpoints: 5,
  maxDelayMs: 24 * 3_600_000,
};

/** The example body shipped with the original tasker. */
const ORIGINAL_BODY: unknown = JSON.parse(
  fs.readFileSync(path.resolve(__dirname, '..', '..', 'testdata.json'), 'utf8'),
);

function parse(
  body: unknown,
  limits: Partial<BodyLimits> = {},
): ReturnType<typeof parseCreateTaskBody> {
  return parseCreateTaskBody(body, { ...LIMITS, ...limits });
}

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, but the body was accepted');
}

/** The ValidationError `run` throws, checked to name `field` in its message and details. */
function validationError(run: () => unknown, field: string): ValidationError {
  const err = thrown(run);
  expect(err).toBeInstanceOf(ValidationError);
  const error = err as ValidationError;
  expect(error.code).toBe('bad_request');
  expect(error.details).toEqual({ field });
  expect(error.message.startsWith(`${field} `)).toBe(true);
  return error;
}

describe('parseCreateTaskBody: accepted bodies', () => {
  it('accepts the original body unchanged', () => {
    expect(parse(ORIGINAL_BODY)).toEqual({
      identifier: 'e7bd91d0-16ad-11e2-892e-0800200c9a66',
      payload: { foo: 'bar' },
      endpoints: ['console1', 'console2'],
      selector: null,
    });
  });

  it('defaults a missing payload to null and missing endpoints to a broadcast', () => {
    expect(parse({ identifier: 'x' })).toEqual({
      identifier: 'x',
      payload: null,
      endpoints: null,
      selector: null,
    });
  });

  it('reads endpoints null as a broadcast', () => {
    expect(parse({ identifier: 'x', endpoints: null }).endpoints).toBeNull();
  });

  it('accepts a payload nested exactly to the depth limit', () => {
    let payload: unknown = 1;
    for (let i = 0; i < MAX_JSON_DEPTH; i += 1) payload = [payload];
    expect(parse({ identifier: 'x', payload }).payload).toEqual(payload);
  });

  it('accepts any JSON payload type', () => {
    for (const payload of [0, false, 'text', [1, 2], { nested: { deep: [null] } }]) {
      expect(parse({ identifier: 'x', payload }).payload).toEqual(payload);
    }
  });

  it('accepts an identifier exactly at the length limit', () => {
    const identifier = 'i'.repeat(LIMITS.maxIdentifierLength);
    expect(parse({ identifier }).identifier).toBe(identifier);
  });

  it('accepts a payload exactly at the byte limit', () => {
    // {"s":"…"} is 8 bytes of JSON around the string
    const payload = { s: 'p'.repeat(LIMITS.maxPayloadBytes - 8) };
    expect(Buffer.byteLength(JSON.stringify(payload))).toBe(LIMITS.maxPayloadBytes);
    expect(parse({ identifier: 'x', payload }).payload).toEqual(payload);
  });

  it('accepts exactly the maximum number of endpoints', () => {
    const endpoints = ['a', 'b', 'c', 'd', 'e'];
    expect(parse({ identifier: 'x', endpoints }).endpoints).toEqual(endpoints);
  });

  it('accepts endpoint names with dots, dashes and underscores', () => {
    const endpoints = ['host-1.example.com', 'Console_2', '9lives'];
    expect(parse({ identifier: 'x', endpoints }).endpoints).toEqual(endpoints);
  });

  it.each([
    ['emoji', '🚀 launch ✅ done'],
    ['SQL metacharacters', 'x\'; DROP TABLE tasks; -- " OR 1=1 /* %_'],
    ['shell metacharacters', '$(rm -rf /) `id` && | ; > < * ? ~ \\ !'],
    ['HTML', '<script>alert(1)</script>'],
  ])('passes %s through identifier and payload unchanged', (_what, text) => {
    const body = { identifier: text, payload: { text, list: [text] } };
    expect(parse(body)).toEqual({
      identifier: text,
      payload: { text, list: [text] },
      endpoints: null,
      selector: null,
    });
  });
});

describe('parseCreateTaskBody: rejected bodies', () => {
  it.each([
    ['null', null],
    ['an array', [ORIGINAL_BODY]],
    ['a string', '{"identifier":"x"}'],
    ['a number', 42],
  ])('rejects a body that is %s', (_what, body) => {
    const err = thrown(() => parse(body));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).message).toBe('request body must be a JSON object');
  });

  it('rejects a missing identifier', () => {
    const err = validationError(() => parse({ payload: { foo: 'bar' } }), 'identifier');
    expect(err.message).toBe('identifier is required');
  });

  it.each([
    ['a number', 42, 'a number'],
    ['null', null, 'null'],
    ['an object', { id: 'x' }, 'object'],
    ['an array', ['x'], 'an array'],
    ['a boolean', true, 'a boolean'],
  ])('rejects an identifier that is %s', (_what, identifier, described) => {
    const err = validationError(() => parse({ identifier }), 'identifier');
    expect(err.message).toContain('must be a string');
    expect(err.message).toContain(described);
  });

  it('rejects an empty identifier', () => {
    const err = validationError(() => parse({ identifier: '' }), 'identifier');
    expect(err.message).toContain('must not be empty');
  });

  it('rejects an identifier one character over the limit', () => {
    const identifier = 'i'.repeat(LIMITS.maxIdentifierLength + 1);
    const err = validationError(() => parse({ identifier }), 'identifier');
    expect(err.message).toContain(`at most ${LIMITS.maxIdentifierLength} characters`);
  });

  it.each([
    ['a newline', 'a\nb'],
    ['a NUL', 'a\u0000b'],
    ['a tab', 'a\tb'],
    ['an escape', '\u001b[31mred'],
    ['a DEL', 'a\u007f'],
  ])('rejects an identifier containing %s', (_what, identifier) => {
    const err = validationError(() => parse({ identifier }), 'identifier');
    expect(err.message).toContain('control characters');
  });

  it.each([
    ['a lone high surrogate', 'sur\ud800'],
    ['a lone low surrogate', 'sur\udfff'],
    ['a reversed pair', 'x\udc00\ud800'],
  ])('rejects an identifier with %s, which storage would turn into U+FFFD', (_what, identifier) => {
    const err = validationError(() => parse({ identifier }), 'identifier');
    expect(err.message).toBe('identifier must be well-formed Unicode (it holds a lone surrogate)');
  });

  it('accepts an identifier with a proper surrogate pair', () => {
    expect(parse({ identifier: 'rocket 🚀' }).identifier).toBe('rocket 🚀');
  });

  it('rejects a payload nested deeper than the limit without overflowing the stack', () => {
    for (const levels of [MAX_JSON_DEPTH + 1, 10_000]) {
      const payload: unknown = JSON.parse(`${'['.repeat(levels)}${']'.repeat(levels)}`);
      const err = validationError(() => parse({ identifier: 'x', payload }), 'payload');
      expect(err.message).toBe('payload nests deeper than 100 levels of arrays and objects');
    }
  });

  it('rejects an empty endpoint list: a broadcast omits the field', () => {
    const err = validationError(() => parse({ identifier: 'x', endpoints: [] }), 'endpoints');
    expect(err.message).toBe('endpoints must name at least one endpoint (omit it to broadcast)');
  });

  it('rejects an unknown key and lists the known ones', () => {
    const err = validationError(() => parse({ identifier: 'x', type: 'demo' }), 'type');
    expect(err.message).toContain('is not a known field');
    expect(err.message).toContain('identifier, payload, endpoints');
  });

  it('rejects a misspelled key even when the body is otherwise valid', () => {
    validationError(() => parse({ identifier: 'x', endpoint: ['console1'] }), 'endpoint');
  });

  it('rejects a payload over the byte limit with payload_too_large', () => {
    const payload = { s: 'p'.repeat(LIMITS.maxPayloadBytes - 7) };
    const err = thrown(() => parse({ identifier: 'x', payload }));
    expect(err).toBeInstanceOf(TaskerError);
    expect(err).not.toBeInstanceOf(ValidationError);
    const error = err as TaskerError;
    expect(error.code).toBe('payload_too_large');
    expect(error.details).toEqual({ field: 'payload' });
    expect(error.message).toMatch(/^payload is 1025 bytes as JSON; the limit is 1024$/);
  });

  it('counts payload size in UTF-8 bytes, not characters', () => {
    // 300 rockets: 300 characters (600 UTF-16 units) but 1200 bytes
    const payload = '🚀'.repeat(300);
    const err = thrown(() => parse({ identifier: 'x', payload }));
    expect((err as TaskerError).code).toBe('payload_too_large');
  });

  it.each([
    ['a string', 'console1'],
    ['a number', 1],
    ['true', true],
  ])('rejects endpoints that are %s', (_what, endpoints) => {
    const err = validationError(() => parse({ identifier: 'x', endpoints }), 'endpoints');
    expect(err.message).toContain('must be a list of endpoint names, "*", or a selector');
  });

  it.each([
    ['an unknown key', { 0: 'console1' }, 'endpoints.0', 'is not a known field'],
    [
      'a misspelt key',
      { label: { role: 'web' } },
      'endpoints.label',
      'expected one of: labels, status',
    ],
    ['a label that is a number', { labels: { rack: 3 } }, 'endpoints.labels.rack', 'string'],
    ['a label that is null', { labels: { role: null } }, 'endpoints.labels.role', 'string'],
    ['labels that are a list', { labels: ['web'] }, 'endpoints.labels', 'object'],
    [
      'a label name with a space',
      { labels: { 'my role': 'web' } },
      'endpoints.labels.my role',
      'label name',
    ],
    ['a status it does not know', { status: 'up' }, 'endpoints.status', 'online, offline, stopped'],
    ['neither labels nor status', {}, 'endpoints', 'must select by labels or status'],
  ])('rejects a selector with %s, naming the field', (_what, endpoints, field, problem) => {
    const err = validationError(() => parse({ identifier: 'x', endpoints }), field);
    expect(err.message).toContain(problem);
  });

  it('takes "*" and a selector of labels and status', () => {
    expect(parse({ identifier: 'x', endpoints: '*' })).toMatchObject({
      endpoints: null,
      selector: '*',
    });
    expect(
      parse({ identifier: 'x', endpoints: { labels: { role: 'web' }, status: 'online' } }),
    ).toMatchObject({ endpoints: null, selector: { labels: { role: 'web' }, status: 'online' } });
    expect(
      parse({ identifier: 'x', endpoints: { labels: { role: 'web' } }, rollout: { batch: 2 } }),
    ).toMatchObject({ selector: { labels: { role: 'web' }, status: null } });
  });

  it('rejects more endpoints than the limit', () => {
    const endpoints = ['a', 'b', 'c', 'd', 'e', 'f'];
    const err = validationError(() => parse({ identifier: 'x', endpoints }), 'endpoints');
    expect(err.message).toContain('lists 6 endpoints; the limit is 5');
  });

  it.each([
    ['a space', 'console 1', 'must be 1-64'],
    ['a slash', 'a/b', 'must be 1-64'],
    ['a leading dot', '.console', 'must be 1-64'],
    ['a leading dash', '-console', 'must be 1-64'],
    ['an emoji', 'console🚀', 'must be 1-64'],
    ['65 characters', 'c'.repeat(65), 'must be 1-64'],
    ['an AMQP wildcard', 'console.#', 'must be 1-64'],
    ['empty', '', 'must not be empty'],
    ['a number', 7, 'must be a string'],
    ['null', null, 'must be a string'],
  ])('rejects an endpoint name with %s', (_what, name, message) => {
    const endpoints = ['console1', name];
    const err = validationError(() => parse({ identifier: 'x', endpoints }), 'endpoints[1]');
    expect(err.message).toContain(message);
  });

  it('rejects a duplicate endpoint and names both positions', () => {
    const endpoints = ['console1', 'console2', 'console1'];
    const err = validationError(() => parse({ identifier: 'x', endpoints }), 'endpoints[2]');
    expect(err.message).toBe('endpoints[2] repeats endpoints[0]');
  });

  it('treats endpoint names as case-sensitive', () => {
    const endpoints = ['console1', 'Console1'];
    expect(parse({ identifier: 'x', endpoints }).endpoints).toEqual(endpoints);
  });
});

describe('parseCreateTaskBody: not_before', () => {
  const now = new Date('2026-12-03T10:00:00.000Z');
  const at = (notBefore: unknown) =>
    parseCreateTaskBody({ identifier: 'd1', not_before: notBefore }, LIMITS, now).notBefore;

  it('reads a duration from now, or a time with its offset', () => {
    expect(at('10m')).toEqual(new Date('2026-12-03T10:10:00.000Z'));
    expect(at(90)).toEqual(new Date('2026-12-03T10:01:30.000Z'));
    expect(at('2026-12-03T12:00:00Z')).toEqual(new Date('2026-12-03T12:00:00.000Z'));
    expect(at('2026-12-03T12:00:00.250+01:00')).toEqual(new Date('2026-12-03T11:00:00.250Z'));
  });

  it('publishes at once a time that has come, up to a minute ago (clocks differ)', () => {
    expect(at('0s')).toBeUndefined();
    expect(at(null)).toBeUndefined();
    expect(at('2026-12-03T09:59:30Z')).toBeUndefined();
  });

  it.each([
    ['soon', /ISO 8601 time .* or a duration from now/],
    [true, /ISO 8601 time .* or a duration from now/],
    ['-5m', /or a duration from now/],
    ['2026-12-03 12:00', /with its offset from UTC/],
    ['2026-12-03T12:00:00', /with its offset from UTC/],
    ['2026-13-45T12:00:00Z', /is not a valid time/],
    ['2026-12-03T09:58:00Z', /is 120 s in the past; at most 60 s/],
    ['25h', /is more than 24 h ahead; the limit is api.max_delay/],
  ])('refuses %j, naming not_before', (value, message) => {
    const error = validationError(() => at(value), 'not_before');
    expect(error.message).toMatch(message);
  });
});
