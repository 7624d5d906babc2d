/**
 * The kinds of setting that src/config/settings.ts declares with, and the parsers of values with
 * a unit. A kind turns a raw value (YAML, or a string from env, flags and `${VAR}`) into its
 * resolved type; a problem reads "must be ..." and names the value's path or a part of it.
 */
import path from 'node:path';
import { ConfigError } from '../domain/errors';
import { checkInt, checkString, describeType, isPlainObject } from '../domain/fields';
import { readRollout, readShare } from '../domain/rollout';
import { readRetry } from '../domain/retry';
import { readLabels } from '../domain/fleet';
import { readCommandSpec, type CommandSpec } from '../domain/command';
import type { Fail, IntRule, StringRule } from '../domain/fields';

/** Where a value is read: its path, a Fail that adds where the value came from, and the cwd. */
export type At = { path: string; fail: Fail; cwd: string };

/** A Fail whose messages end with where the value came from: "[file]", "[env NAME]", ... */
export function failFrom(origin: string): Fail {
  return (path, problem) => new ConfigError(path, `${problem} [${origin}]`);
}

export type Options<T> = {
  /** the flag that sets it, with the placeholder `tasker --help` shows: "--port N" */
  flag?: string;
  /** a further check of the parsed value */
  check?: (value: T, at: At) => T;
};

export interface Setting<T = unknown, Suffix extends string = string> {
  flag?: string;
  /** in YAML form, or a function of the package root; null: unset unless a source sets it */
  default: unknown;
  /** one line for docs/configuration.md and `tasker --help` */
  doc: string;
  /** what the value is, for the reference: "duration", "integer 1–100", ... */
  type: string;
  /** added to the camelCased key to make the resolved name: its unit, e.g. "Ms" */
  suffix: Suffix;
  /** a YAML list or mapping it takes (from env and flags: "a,b" and "key=value,key=value") */
  takes?: 'list' | 'mapping';
  /** never null: a null value is unset, and not parsed */
  parse(value: unknown, at: At): Exclude<T, null>;
}

type Camel<K> = K extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<Camel<Tail>>}` : K;
type Named<K extends string, S> = S extends string
  ? K extends `${string}${Lowercase<S>}`
    ? Camel<K>
    : `${Camel<K>}${S}`
  : never;

/** The resolved shape of a group: `{ publish_wait: duration(…) }` → `{ publishWaitMs: number }` */
export type Resolved<G> = {
  [
    K in keyof G & string as Named<K, G[K] extends Setting<unknown, infer S> ? S : never>
  ]: G[K] extends Setting<infer T> ? T : never;
};

/** The key in camelCase plus the kind's suffix, unless the key ends with it already. */
export function resolvedName(key: string, { suffix }: Setting): string {
  const camel = key.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
  return key.endsWith(suffix.toLowerCase()) ? camel : camel + suffix;
}

interface KindSpec<S, X> extends Pick<Setting, 'takes'> {
  /** what the reference says the value is; from the options for kinds that have some */
  type: string | ((options: X) => string);
  suffix?: S;
}

/** A kind from its parser, declared as `kind(default, doc, options)`; a null default adds null. */
function kind<T, S extends string = '', X = unknown>(
  { type, suffix = '' as S, takes }: KindSpec<S, X>,
  read: (value: unknown, at: At, options: X) => T,
) {
  return <D>(def: D, doc: string, options = {} as Options<T> & X) => {
    const parse = (value: unknown, at: At) => {
      try {
        const parsed = read(value, at, options);
        return options.check ? options.check(parsed, at) : parsed;
      } catch (error) {
        throw error instanceof ConfigError ? error : at.fail(at.path, (error as Error).message);
      }
    };
    const typeText = typeof type === 'string' ? type : type(options);
    const setting = { ...options, default: def, doc, type: typeText, suffix, takes, parse };
    return setting as Setting<D extends null ? T | null : T, S>;
  };
}

const show = (value: unknown) =>
  typeof value === 'string' ? JSON.stringify(value) : String(value);

/** A number, or a numeric string with a unit, times the unit's factor; undefined if neither. */
function amount(value: unknown, pattern: RegExp, factor: (unit?: string) => number) {
  let result: number | undefined;
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) result = value * factor();
  const match = typeof value === 'string' ? pattern.exec(value.trim()) : null;
  if (match) result = Number(match[1]) * factor(match[2]?.toLowerCase());
  return result !== undefined && Number.isSafeInteger(Math.round(result))
    ? Math.round(result)
    : undefined;
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** a duration's text, once trimmed: an amount and its unit (seconds without one) */
export const DURATION_PATTERN = /^(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?$/i;

/**
 * A duration in milliseconds. A number (or a bare numeric string) means SECONDS, as in the
 * original tasker's `wait_for_endpoints_timeout: 60`; a string may carry a unit: "250ms", "5m".
 */
export function parseDuration(value: unknown): number {
  const ms = amount(value, DURATION_PATTERN, (unit = 's') => DURATION_UNITS_MS[unit]);
  if (ms !== undefined) return ms;
  throw new Error(
    `must be a duration: a number of seconds or a string such as "250ms", "30s", "5m", "2h"; got ${show(value)}`,
  );
}

/** A size in bytes. A number means bytes; a string may carry a unit: "512kb", "1mb" (1024-based). */
export function parseBytes(value: unknown): number {
  const pattern = /^(\d+(?:\.\d+)?|\.\d+)\s*(?:([kmg])(?:i?b)?|b)?$/i;
  const bytes = amount(value, pattern, (unit) => 1024 ** ('kmg'.indexOf(unit ?? '-') + 1));
  if (bytes !== undefined) return bytes;
  throw new Error(
    `must be a size: a number of bytes or a string such as "512kb", "1mb"; got ${show(value)}`,
  );
}

/** true/false from YAML, or "true"/"false"/"1"/"0"/"yes"/"no"/"on"/"off" from env and flags. */
export function parseBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  const word = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (['true', '1', 'yes', 'on'].includes(word)) return true;
  if (['false', '0', 'no', 'off'].includes(word)) return false;
  throw new Error(`must be true or false (or yes/no, 1/0); got ${show(value)}`);
}

/** An integer from a YAML number or a decimal string. */
function parseInteger(value: unknown): number {
  const number =
    typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof number === 'number' && Number.isSafeInteger(number)) return number;
  throw new Error(`must be an integer, got ${show(value)}`);
}

function positive(amount: number, what: string): number {
  if (amount <= 0) throw new Error(`must be a positive ${what}`);
  return amount;
}

/** A YAML list of strings, or one string split at `separator` (env, flags, `${VAR}`). */
function readList(value: unknown, at: At, separator: RegExp): string[] {
  if (typeof value === 'string') return value.split(separator).flatMap((item) => item.trim() || []);
  if (!Array.isArray(value)) throw new Error(`must be a list, got ${describeType(value)}`);
  return value.map((item: unknown, index) => {
    if (typeof item === 'string') return item;
    throw at.fail(`${at.path}[${index}]`, `must be a string, got ${describeType(item)}`);
  });
}

const text = (value: unknown, at: At) => checkString(value, at.path, at.fail);

/** A YAML mapping, or "key=value,key=value" from env and flags (values then strings). */
function readMapping(value: unknown): Record<string, unknown> {
  if (isPlainObject(value)) return value;
  if (typeof value !== 'string') throw new Error(`must be a mapping, got ${describeType(value)}`);
  const entries = value.split(',').flatMap((item) => (item.trim() === '' ? [] : [item]));
  return Object.fromEntries(
    entries.map((item) => {
      const equals = item.indexOf('=');
      if (equals <= 0)
        throw new Error(`must be key=value pairs separated by ",", got ${show(item)}`);
      return [item.slice(0, equals).trim(), item.slice(equals + 1).trim()];
    }),
  );
}

function intType({ min, max }: IntRule): string {
  if (min === undefined) return 'integer';
  return max === undefined ? `integer ≥ ${min}` : `integer ${min}–${max}`;
}

export const bool = kind({ type: 'true or false' }, parseBoolean);
export const string = kind({ type: 'string' }, (value, at, rule: StringRule) =>
  checkString(value, at.path, at.fail, rule),
);
export const int = kind({ type: intType }, (value, at, range: IntRule) =>
  checkInt(parseInteger(value), at.path, at.fail, range),
);
export const duration = kind({ type: 'duration', suffix: 'Ms' }, (value) =>
  positive(parseDuration(value), 'duration'),
);
export const seconds = kind({ type: 'duration, whole seconds', suffix: 'Seconds' }, (value) => {
  const ms = positive(parseDuration(value), 'duration');
  if (ms % 1000 !== 0) throw new Error('must be a whole number of seconds');
  return ms / 1000;
});
export const bytes = kind({ type: 'size', suffix: 'Bytes' }, (value) =>
  positive(parseBytes(value), 'size'),
);
export const list = kind({ type: 'list', takes: 'list' }, (value, at) => readList(value, at, /,/));
/** A directory, resolved against the working directory. */
export const dir = kind({ type: 'path' }, (value, at) => path.resolve(at.cwd, text(value, at)));
/** Directories: a list, or separated by "," or the system's path delimiter; resolved. */
export const dirs = kind({ type: 'list of paths', suffix: 's', takes: 'list' }, (value, at) => {
  const found = readList(value, at, new RegExp(`[,${path.delimiter}]`));
  if (found.length === 0) throw new Error('must name at least one directory');
  return found.map((item) => path.resolve(at.cwd, item));
});
/**
 * A URL starting with one of `schemes`, or with `several`, URLs separated by "," (each named by
 * its position). It may hold a password: messages never repeat it.
 */
export const url = kind(
  { type: 'URL' },
  (value, at, { schemes, several }: { schemes: string[]; several?: boolean }) => {
    const given = text(value, at);
    const urls = several === true ? given.split(',').map((item) => item.trim()) : [given];
    urls.forEach((url, index) => {
      const which = urls.length > 1 ? `: URL ${index + 1} of ${urls.length}` : '';
      if (!schemes.some((scheme) => url.startsWith(scheme))) {
        throw new Error(`must be a URL starting with ${schemes.join(' or ')}${which} is not`);
      }
      if (!URL.canParse(url)) throw new Error(`is not a valid URL${which} is not`);
    });
    return urls.join(',');
  },
);

const PAUSE = duration(null, 'the pause between waves');
/** A rollout in waves: `{batch, max_errors, pause}` (counts or percentages, a duration). */
export const rollout = kind(
  { type: 'mapping {batch, max_errors, pause}', takes: 'mapping' },
  (value, at) =>
    readRollout(readMapping(value), at.path, at.fail, (pause, path) =>
      PAUSE.parse(pause, { ...at, path }),
    ),
);
const RETRY_DURATION = duration(null, 'a retry delay');
/** A retry policy: `{max_attempts, delay, backoff, max_delay}`. */
export const retry = kind(
  { type: 'mapping {max_attempts, delay, backoff, max_delay}', takes: 'mapping' },
  (value, at) =>
    readRetry(readMapping(value), at.path, at.fail, (delay, path) =>
      RETRY_DURATION.parse(delay, { ...at, path }),
    ),
);
/** Labels: a mapping of names to strings, or "role=web,dc=fra1" from env and flags. */
export const labels = kind({ type: 'mapping of strings', takes: 'mapping' }, (value, at) =>
  readLabels(readMapping(value), at.path, at.fail),
);
const COMMAND_TIMEOUT = duration(null, "a command's execution timeout");
/**
 * Command handlers by task type, `{deploy: {command: [...], cwd, env, timeout}}`: in the config
 * file only (a command does not fit in an environment variable). A relative cwd is resolved.
 */
export const commands = kind(
  { type: 'mapping of task type to {command, cwd, env, timeout}', takes: 'mapping' },
  (value, at) => {
    if (!isPlainObject(value)) {
      throw new Error(
        'must be a mapping from task type to {command, cwd, env, timeout}, in the config file',
      );
    }
    const specs: Record<string, CommandSpec> = {};
    for (const [type, item] of Object.entries(value)) {
      const spec = readCommandSpec(item, `${at.path}.${type}`, at.fail, (timeout, path) =>
        COMMAND_TIMEOUT.parse(timeout, { ...at, path }),
      );
      specs[type] = { ...spec, cwd: spec.cwd === null ? null : path.resolve(at.cwd, spec.cwd) };
    }
    return specs;
  },
);
/** A count, or a percentage such as "90%". */
export const share = kind({ type: 'count or percentage' }, (value, at) =>
  readShare(value, at.path, at.fail, 1),
);

/** One of `words`, in any case. */
export function oneOf<const W extends string, D>(
  words: readonly W[],
  ...declaration: [D, string, Options<W>?]
) {
  return kind({ type: `one of ${words.join(', ')}` }, (value, at) => {
    const word = words.find((candidate) => candidate === text(value, at).toLowerCase());
    if (word === undefined) throw new Error(`must be one of ${words.join(', ')}`);
    return word;
  })(...declaration);
}
