/**
 * Rules for names that end up in broker queue names and URLs: task types and endpoints.
 */
import { checkString, type Fail } from './fields';

export const TASK_TYPE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
export const ENDPOINT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Names no task type may take: paths the HTTP API serves (or will) itself, and the broker's own
 * `<prefix>.results`, `<prefix>.dead`, `<prefix>.control` and `<prefix>.events` exchanges.
 */
export const RESERVED_TYPE_NAMES: readonly string[] = [
  'healthz',
  'readyz',
  'metrics',
  'tasks',
  'events',
  'endpoints',
  'schedules',
  'types',
  'ui',
  'openapi',
  'results',
  'dead',
  'control',
];

export function checkTaskType(value: unknown, path: string, fail: Fail): string {
  const type = checkString(value, path, fail, {
    pattern: TASK_TYPE_PATTERN,
    patternHint:
      'must be lower-case letters, digits, "_" or "-", starting with a letter, at most 32',
  });
  if (RESERVED_TYPE_NAMES.includes(type)) throw fail(path, `"${type}" is reserved by tasker`);
  return type;
}

export function checkEndpoint(value: unknown, path: string, fail: Fail): string {
  return checkString(value, path, fail, {
    pattern: ENDPOINT_PATTERN,
    patternHint: 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
  });
}
