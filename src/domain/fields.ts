/**
 * Small readers for untrusted JSON objects (HTTP bodies, AMQP messages, config). Each failure
 * names the path of the offending field; the caller decides which error class to raise.
 */

export type Fail = (path: string, problem: string) => Error;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
/** in Unicode mode a proper surrogate pair is one code point, so only a lone half matches */
const LONE_SURROGATE = /\p{Surrogate}/u;

export interface StringRule {
  maxLength?: number;
  pattern?: RegExp;
  patternHint?: string;
  allowControl?: boolean;
}

export function checkString(
  value: unknown,
  path: string,
  fail: Fail,
  rule: StringRule = {},
): string {
  if (typeof value !== 'string') throw fail(path, `must be a string, got ${describeType(value)}`);
  if (value.length === 0) throw fail(path, 'must not be empty');
  if (rule.maxLength !== undefined && value.length > rule.maxLength) {
    throw fail(path, `must be at most ${rule.maxLength} characters, got ${value.length}`);
  }
  if (!rule.allowControl && CONTROL_CHARS.test(value)) {
    throw fail(path, 'must not contain control characters');
  }
  // a lone surrogate cannot be stored as UTF-8: the database would keep U+FFFD instead, and two
  // different names would become one
  if (LONE_SURROGATE.test(value)) {
    throw fail(path, 'must be well-formed Unicode (it holds a lone surrogate)');
  }
  if (rule.pattern && !rule.pattern.test(value)) {
    throw fail(path, rule.patternHint ?? `must match ${String(rule.pattern)}`);
  }
  return value;
}

export function readString(
  obj: Record<string, unknown>,
  key: string,
  path: string,
  fail: Fail,
  rule: StringRule = {},
): string {
  if (!(key in obj) || obj[key] === undefined) throw fail(join(path, key), 'is required');
  return checkString(obj[key], join(path, key), fail, rule);
}

export function readOptionalString(
  obj: Record<string, unknown>,
  key: string,
  path: string,
  fail: Fail,
  rule: StringRule = {},
): string | null {
  const value = obj[key];
  if (value === undefined || value === null) return null;
  return checkString(value, join(path, key), fail, rule);
}

export interface IntRule {
  min?: number;
  max?: number;
}

export function checkInt(value: unknown, path: string, fail: Fail, rule: IntRule = {}): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw fail(path, `must be an integer, got ${describeType(value)}`);
  }
  if (rule.min !== undefined && value < rule.min) throw fail(path, `must be at least ${rule.min}`);
  if (rule.max !== undefined && value > rule.max) throw fail(path, `must be at most ${rule.max}`);
  return value;
}

export function readInt(
  obj: Record<string, unknown>,
  key: string,
  path: string,
  fail: Fail,
  rule: IntRule = {},
): number {
  if (!(key in obj) || obj[key] === undefined) throw fail(join(path, key), 'is required');
  return checkInt(obj[key], join(path, key), fail, rule);
}

export function rejectUnknownKeys(
  obj: Record<string, unknown>,
  allowed: readonly string[],
  path: string,
  fail: Fail,
): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw fail(join(path, key), `is not a known field (expected one of: ${allowed.join(', ')})`);
    }
  }
}

/** Parse an ISO-8601 timestamp; fail with the path when it is not one. */
export function readTimestamp(
  obj: Record<string, unknown>,
  key: string,
  path: string,
  fail: Fail,
): Date {
  const text = readString(obj, key, path, fail, { maxLength: 40 });
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw fail(join(path, key), 'must be an ISO-8601 timestamp');
  return date;
}

/**
 * How deeply JSON may nest: MySQL's own limit for its JSON type. Deeper values overflow the stack
 * of whatever walks them recursively (JSON.stringify, deep comparison), so they are refused
 * where they enter.
 */
export const MAX_JSON_DEPTH = 100;

/** Whether `value` nests arrays and objects deeper than `limit`; walks without recursion. */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    if (typeof item.value !== 'object' || item.value === null) continue;
    const depth = item.depth + 1;
    if (depth > limit) return true;
    for (const child of Object.values(item.value)) stack.push({ value: child, depth });
  }
  return false;
}
