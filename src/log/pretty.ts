/**
 * Log records for people: what a terminal shows instead of JSON. One line per record (time,
 * level, message, then the fields as key=value), with an error's stack frames indented below
 * it; the level in colour when the terminal takes it.
 */

const LEVEL_COLOURS: Record<string, string> = {
  debug: '\u001b[90m',
  info: '\u001b[32m',
  warn: '\u001b[33m',
  error: '\u001b[31m',
};
const RESET = '\u001b[0m';
const BARE = /^[^\s"=]+$/;

function isSerializedError(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { name?: unknown }).name === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}

/** `TypeError: could not publish ← Error: connect ECONNREFUSED (ECONNREFUSED)` */
function describeError(err: Record<string, unknown>): string {
  const parts: string[] = [];
  for (let at: unknown = err; at !== undefined; at = (at as { cause?: unknown }).cause) {
    if (!isSerializedError(at)) {
      parts.push(JSON.stringify(at));
      break;
    }
    const code = at.code === undefined ? '' : ` (${String(at.code)})`;
    parts.push(`${String(at.name)}: ${String(at.message)}${code}`);
  }
  return parts.join(' ← ');
}

function describeValue(value: unknown): string {
  if (isSerializedError(value)) return JSON.stringify(describeError(value));
  if (typeof value === 'string') return BARE.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/** `hh:mm:ss.mmm` of an ISO time, which a terminal's reader knows the day of. */
function clock(time: unknown): string {
  return typeof time === 'string' && time.length >= 23 ? time.slice(11, 23) : String(time);
}

/** One JSON record as a readable line (and its error's frames), ending with a newline. */
export function formatRecord(record: Record<string, unknown>, colour = false): string {
  const { time, level, msg, ...fields } = record;
  const name = String(level);
  const label = name.toUpperCase().padEnd(5);
  const shown = colour ? `${LEVEL_COLOURS[name] ?? ''}${label}${RESET}` : label;
  const pairs = Object.entries(fields).map(([key, value]) => `${key}=${describeValue(value)}`);
  const line = [clock(time), shown, String(msg ?? ''), ...pairs].join(' ');
  const frames = Object.values(fields)
    .filter(isSerializedError)
    .flatMap((err) => (typeof err.stack === 'string' ? [err.stack] : []))
    .flatMap((stack) => stack.split('\n').filter((text) => text.startsWith('    at ')));
  return [line, ...frames].join('\n') + '\n';
}
