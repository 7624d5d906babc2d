/**
 * Parsers for the unit-carrying values of the config: durations, byte sizes and booleans. They
 * accept the YAML-native type and the string spellings that come from env, flags and `${VAR}`.
 * Each throws an Error whose message reads as a problem with the value ("must be ..."), so the
 * loader can prefix the key path.
 */

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_PATTERN = /^(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?$/i;

const SIZE_UNITS_BYTES: Record<string, number> = {
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};
const SIZE_PATTERN = /^(\d+(?:\.\d+)?|\.\d+)\s*(b|kb?|kib|mb?|mib|gb?|gib)?$/i;

const TRUE_WORDS = ['true', '1', 'yes', 'on'];
const FALSE_WORDS = ['false', '0', 'no', 'off'];

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/**
 * A duration in milliseconds. A number (or a bare numeric string) means SECONDS, as in the original tasker's
 * `wait_for_endpoints_timeout: 60`; a string may carry a unit: "250ms", "30s", "5m", "2h".
 */
export function parseDuration(value: unknown): number {
  let ms: number | undefined;
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) {
    ms = value * 1000;
  } else if (typeof value === 'string') {
    const match = DURATION_PATTERN.exec(value.trim());
    if (match) ms = Number(match[1]) * DURATION_UNITS_MS[(match[2] ?? 's').toLowerCase()];
  }
  if (ms === undefined || !Number.isSafeInteger(Math.round(ms))) {
    throw new Error(
      `must be a duration: a number of seconds or a string such as "250ms", "30s", "5m", "2h"; got ${show(value)}`,
    );
  }
  return Math.round(ms);
}

/** A size in bytes. A number means bytes; a string may carry a unit: "512kb", "1mb" (1024-based). */
export function parseBytes(value: unknown): number {
  let bytes: number | undefined;
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) {
    bytes = value;
  } else if (typeof value === 'string') {
    const match = SIZE_PATTERN.exec(value.trim());
    if (match) bytes = Number(match[1]) * SIZE_UNITS_BYTES[(match[2] ?? 'b').toLowerCase()];
  }
  if (bytes === undefined || !Number.isSafeInteger(Math.round(bytes))) {
    throw new Error(
      `must be a size: a number of bytes or a string such as "512kb", "1mb"; got ${show(value)}`,
    );
  }
  return Math.round(bytes);
}

/** true/false from YAML, or "true"/"false"/"1"/"0"/"yes"/"no"/"on"/"off" from env and flags. */
export function parseBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (TRUE_WORDS.includes(word)) return true;
    if (FALSE_WORDS.includes(word)) return false;
  }
  throw new Error(`must be true or false (or yes/no, 1/0); got ${show(value)}`);
}

/** An integer from a YAML number or a decimal string. */
export function parseInteger(value: unknown): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  if (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) {
    const number = Number(value);
    if (Number.isSafeInteger(number)) return number;
  }
  throw new Error(`must be an integer, got ${show(value)}`);
}
