/**
 * How the agent has a handler call run: it hands a RunRequest to a HandlerRunner and gets an
 * Outcome back, whatever the handler did. The sandbox (sandbox.ts) runs each call in a child
 * process, so a handler that exits, crashes or hangs ends only its own run; the inline runner
 * calls functions in this process, for tests and benchmarks that give handlers as functions.
 */
import type { Logger } from '../log';
import type { Handlers, HandlerTask } from './contract';
import type { OutputStream } from './output';
import { runHandler, type Outcome } from './run';

export interface RunRequest {
  task: HandlerTask;
  endpoint: string;
  attempt: number;
  timeoutMs: number;
  /**
   * aborted when the agent shuts down (the run is abandoned and the task handed back) or, with
   * a CancelRequest as its reason, when the task is cancelled (the run ends CANCELLED)
   */
  signal: AbortSignal;
  log: Logger;
  /** what the handler passed to ctx.progress(), unchecked */
  progress(current: unknown, total: unknown, line: unknown): void;
  /** a line the run printed: a command's stdout or stderr, a module's ctx.log */
  output?(stream: OutputStream, line: string): void;
}

/** `log`, also writing each line to the run's output. */
export function capturingLog(log: Logger, output: RunRequest['output']): Logger {
  if (output === undefined) return log;
  const write =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (msg: string, fields?: Record<string, unknown>): void => {
      log[level](msg, fields);
      let extra = '';
      try {
        extra = fields === undefined ? '' : ` ${JSON.stringify(fields)}`;
      } catch {
        extra = ' (fields that cannot be written as JSON)';
      }
      output('log', `${level} ${msg}${extra}`);
    };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (fields) => capturingLog(log.child(fields), output),
  };
}

export interface HandlerRunner {
  /** whether a handler for this task type is loaded */
  has(type: string): boolean;
  /** each task type's handler version, as heartbeats report it */
  versions(): ReadonlyMap<string, string>;
  /** run the type's handler once; never rejects */
  run(request: RunRequest): Promise<Outcome>;
  /** stop whatever the runner keeps (child processes); its owner calls it after its agents closed */
  close(): Promise<void>;
}

/**
 * Handlers called in this process: no isolation, for `agent.isolation: inline` and for handlers
 * given as functions.
 */
export function inlineRunner(
  handlers: Handlers,
  versions: ReadonlyMap<string, string> = new Map(),
): HandlerRunner {
  return {
    has: (type) => handlers.has(type),
    versions: () => versions,
    run: async (request) => {
      const handler = handlers.get(request.task.type);
      if (handler === undefined) throw new Error(`no handler for ${request.task.type}`);
      return runHandler(
        handler,
        request.task,
        {
          endpoint: request.endpoint,
          attempt: request.attempt,
          log: capturingLog(request.log, request.output),
          progress: (current, total, line) => request.progress(current, total, line),
        },
        request.timeoutMs,
        request.signal,
      );
    },
    close: () => Promise.resolve(),
  };
}
