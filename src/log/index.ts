/**
 * Structured logging: one JSON object per line on stderr, so logs from the server and many
 * agents can be collected and searched. Deliberately tiny; swap for pino if you need transports.
 */

/** Levels from the most to the least verbose; a logger emits its own level and those after it. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const MAX_CAUSES = 5;
/**
 * knex puts a failed statement's SQL before the database's reason in its error's message (and
 * so in the stack): a long one keeps its start and its end.
 */
const MAX_ERROR_TEXT = 2000;

function clip(text: string): string {
  if (text.length <= MAX_ERROR_TEXT) return text;
  const half = MAX_ERROR_TEXT / 2;
  return `${text.slice(0, half - 1)}…${text.slice(-half)}`;
}

function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return err;
  const out: Record<string, unknown> = { name: err.name, message: clip(err.message) };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (depth === 0 && err.stack !== undefined) {
    // the message, however long, then the frames
    const frames = err.stack.indexOf('\n    at ');
    out.stack =
      frames < 0 ? clip(err.stack) : clip(err.stack.slice(0, frames)) + err.stack.slice(frames);
  }
  // a cause chain may loop; stop after a few links
  if (err.cause !== undefined && depth < MAX_CAUSES)
    out.cause = serializeError(err.cause, depth + 1);
  return out;
}

export function createLogger(
  level: LogLevel,
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const min = RANK[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (RANK[lvl] < min) return;
    const record: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, ...base };
    record.msg = msg;
    for (const [key, value] of Object.entries(fields ?? {})) record[key] = serializeError(value);
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch {
      line = JSON.stringify({ time: record.time, level: lvl, msg, note: 'unserializable fields' });
    }
    write(`${line}\n`);
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}

/** A logger that drops everything (tests that do not care about logs). */
export const silentLogger: Logger = createLogger('error', {}, () => undefined);
