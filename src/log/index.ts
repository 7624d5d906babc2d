/**
 * Structured logging through pino: one JSON object per line, so logs from the server and many
 * agents can be collected and searched; in a terminal, readable lines instead (pretty.ts).
 * Errors in any field keep their cause chain and a long message is clipped (errors.ts).
 */
import { pino } from 'pino';
import { serializeError } from './errors';
import { formatRecord } from './pretty';

export { formatRecord } from './pretty';

/** Levels from the most to the least verbose; a logger emits its own level and those after it. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** JSON lines, readable lines, or readable lines only when stderr is a terminal. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Where a logger's records go: each a JSON object on one line, with its newline. */
export type LogSink = (line: string) => void;

/** stderr, as JSON lines or (`pretty`, or `auto` on a terminal) as readable ones. */
export function stderrSink(format: LogFormat): LogSink {
  const stderr = process.stderr;
  const pretty = format === 'pretty' || (format === 'auto' && stderr.isTTY);
  if (!pretty) return (line) => stderr.write(line);
  const colour = stderr.isTTY && process.env.NO_COLOR === undefined;
  return (line) => {
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      stderr.write(line);
      return;
    }
    stderr.write(formatRecord(record, colour));
  };
}

function fieldsOf(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) out[key] = serializeError(value);
  return out;
}

function wrap(logger: pino.Logger): Logger {
  const at =
    (level: LogLevel) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      if (!logger.isLevelEnabled(level)) return;
      if (fields === undefined) logger[level](msg);
      else logger[level](fieldsOf(fields), msg);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (fields) => wrap(logger.child(fieldsOf(fields))),
  };
}

function pinoLogger(
  level: LogLevel | 'silent',
  base: Record<string, unknown>,
  sink: LogSink,
): Logger {
  const logger = pino(
    {
      level,
      base: fieldsOf(base),
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // errors are serialized before they reach pino, with their causes and clipped (errors.ts)
      serializers: { err: (value: unknown) => value },
    },
    { write: sink },
  );
  return wrap(logger);
}

export function createLogger(
  level: LogLevel,
  base: Record<string, unknown> = {},
  sink: LogSink = stderrSink('auto'),
): Logger {
  return pinoLogger(level, base, sink);
}

/**
 * A logger made by `make` when it is first used: for a logger per handler run, which most runs
 * never write to (making a pino logger costs far more than a run of a small handler).
 */
export function deferredLogger(make: () => Logger): Logger {
  let made: Logger | null = null;
  const logger = (): Logger => (made ??= make());
  return {
    debug: (msg, fields) => logger().debug(msg, fields),
    info: (msg, fields) => logger().info(msg, fields),
    warn: (msg, fields) => logger().warn(msg, fields),
    error: (msg, fields) => logger().error(msg, fields),
    child: (fields) => deferredLogger(() => logger().child(fields)),
  };
}

/** A logger that drops everything (tests that do not care about logs). */
export const silentLogger: Logger = pinoLogger('silent', {}, () => undefined);
