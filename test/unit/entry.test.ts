/**
 * The package's entry point (package.json "main" and "types"): what a handler author imports.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

it('names a built entry point and its types, which export the handler contract and errors', () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    main: string;
    types: string;
  };
  expect(existsSync(join(ROOT, manifest.main))).toBe(true);
  expect(readFileSync(join(ROOT, manifest.types), 'utf8')).toMatch(/HandleTask/);
  // what `require('tasker')` gives a handler written in plain JavaScript
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const entry = require(join(ROOT, manifest.main)) as Record<string, unknown>;
  expect(Object.keys(entry).sort()).toEqual([
    'BLOCKED_ERRNR',
    'BlockedError',
    'RETRY_ERRNR',
    'RetryableError',
    'TaskerError',
    'VERSION',
    'coerceError',
  ]);
  expect(new (entry.RetryableError as new (m: string) => { errnr: number })('x').errnr).toBe(75);
  expect(
    new (entry.TaskerError as new (c: string, m: string) => Error)('internal', 'x'),
  ).toBeInstanceOf(Error);
});
