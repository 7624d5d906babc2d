/**
 * Runs one handler call and turns whatever happens into an outcome: a result, a thrown error,
 * garbage returned, or a hang past the execution timeout. Never throws.
 */
import { constants } from 'node:os';
import {
  CANCELLED_ERRNR,
  MAX_JSON_DEPTH,
  TIMEOUT_ERRNR,
  coerceError,
  isPlainObject,
  nestsDeeperThan,
  RESULT_LIMITS,
  statusForErrnr,
  type FinishedStatus,
  type Progress,
} from '../domain';
import type { HandleTask, HandlerContext, HandlerResponse, HandlerTask } from './contract';

export interface Outcome {
  status: FinishedStatus;
  errnr: number;
  errmsg: string | null;
  payload: unknown;
  /** the agent is shutting down: hand the task back instead of reporting */
  abandoned: boolean;
}

export { CANCELLED_ERRNR, TIMEOUT_ERRNR };

/**
 * The abort reason of a run the operator cancelled (any other abort is the agent shutting
 * down): the run ends CANCELLED instead of being handed back.
 */
export class CancelRequest extends Error {
  override name = 'CancelRequest';
  constructor(readonly reason: string) {
    super(`cancelled: ${reason}`);
  }
}

/** The outcome of a run cancelled before it finished. */
export function cancelledOutcome(reason: string, detail = ''): Outcome {
  return {
    status: 'CANCELLED',
    errnr: CANCELLED_ERRNR,
    errmsg: truncate(`cancelled: ${reason}${detail}`),
    payload: null,
    abandoned: false,
  };
}
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A short description of any value, for messages; never throws. */
function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return Array.isArray(value) ? 'an unserializable array' : `an unserializable ${typeof value}`;
  }
}

/** An errmsg the recorder takes: within its length, and none rather than empty. */
export function truncate(text: string): string | null {
  const max = RESULT_LIMITS.errmsgChars;
  if (text === '') return null;
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** An errnr the response table holds: a signed 32-bit integer. */
export function isErrnr(value: unknown): value is number {
  return (
    typeof value === 'number' &&
    Number.isInteger(value) &&
    value >= RESULT_LIMITS.minErrnr &&
    value <= RESULT_LIMITS.maxErrnr
  );
}

export function failed(errnr: number, errmsg: string): Outcome {
  return { status: 'FAILED', errnr, errmsg: truncate(errmsg), payload: null, abandoned: false };
}

/**
 * What a handler passed to `ctx.progress()`, as a report the recorder takes; null when `current`
 * is no count (not a number, infinite, past the safe integers).
 */
export function progressReport(current: unknown, total: unknown, line: unknown): Progress | null {
  const count = (value: unknown): number | null => {
    const n = typeof value === 'number' ? Math.floor(value) : Number.NaN;
    return Number.isSafeInteger(n) ? n : null;
  };
  const done = count(current);
  if (done === null) return null;
  const text =
    line === undefined || line === null
      ? ''
      : String(line).slice(0, RESULT_LIMITS.progressLineChars);
  return { current: Math.max(0, done), total: count(total), line: text === '' ? null : text };
}

/** Check what a handler returned; a readable FAILED outcome when it is not a response. */
export function checkResponse(value: unknown, response: HandlerResponse): Outcome {
  const result = value === undefined ? response : value;
  if (!isPlainObject(result)) {
    return failed(1, `handler returned ${describe(result)}, not a response`);
  }
  const errnr = result.errnr ?? 0;
  if (!isErrnr(errnr)) {
    return failed(
      1,
      `handler set errnr to ${describe(errnr)}; it must be an integer from ` +
        `${RESULT_LIMITS.minErrnr} to ${RESULT_LIMITS.maxErrnr}`,
    );
  }
  const errmsg = result.errmsg === '' ? null : (result.errmsg ?? null);
  if (errmsg !== null && typeof errmsg !== 'string') {
    return failed(1, 'handler set errmsg to a non-string');
  }
  const payload = result.payload ?? null;
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (err) {
    return failed(1, `handler payload cannot be sent as JSON: ${coerceError(err).message}`);
  }
  // the data as sent, taken now: no function or toJSON() is called again later, and what the
  // handler changes after returning is not reported; nothing to send is no payload
  const sent: unknown = json === undefined ? null : JSON.parse(json);
  if (nestsDeeperThan(sent, MAX_JSON_DEPTH)) {
    return failed(
      errnr === 0 ? 1 : errnr,
      `handler payload nests deeper than ${MAX_JSON_DEPTH} levels of arrays and objects`,
    );
  }
  const bytes = json === undefined ? 0 : Buffer.byteLength(json);
  if (bytes > RESULT_LIMITS.payloadBytes) {
    return failed(
      errnr === 0 ? 1 : errnr,
      `handler payload is ${bytes} bytes as JSON; the limit is ${RESULT_LIMITS.payloadBytes}` +
        (errmsg === null ? '' : `; its errmsg: ${errmsg}`),
    );
  }
  return {
    status: statusForErrnr(errnr),
    errnr,
    errmsg: errmsg === null ? null : truncate(errmsg),
    payload: sent,
    abandoned: false,
  };
}

/** The outcome of a run past its execution timeout; `what` ran ("handler", "command"). */
export function timedOutOutcome(what: string, timeoutMs: number): Outcome {
  return {
    status: 'TIMED_OUT',
    errnr: TIMEOUT_ERRNR,
    errmsg: `${what} did not finish within the execution timeout of ${timeoutMs} ms`,
    payload: null,
    abandoned: false,
  };
}

/** errnr for a handler process that died: its exit code, or 128 + the signal as shells do */
export function exitErrnr(code: number | null, signal: NodeJS.Signals | null): number {
  if (signal !== null) return 128 + (constants.signals[signal] ?? 0);
  return code !== null && code !== 0 ? code : 1;
}

/** The last line of `text` that is not blank, trimmed ('' when none). */
export function lastLine(text: string): string {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  return lines[lines.length - 1]?.trim() ?? '';
}

/** A run stopped by `stop`: cancelled by the operator, or abandoned for a shutdown. */
export function stoppedOutcome(stop: AbortSignal): Outcome {
  const reason: unknown = stop.reason;
  if (reason instanceof CancelRequest) return cancelledOutcome(reason.reason);
  return { ...failed(1, 'agent shut down'), abandoned: true };
}

/**
 * Run one handler call. `stop` aborts it: with a CancelRequest as its reason the run ends
 * CANCELLED, with any other (the agent shutting down) it is abandoned and the task handed back.
 */
export async function runHandler(
  handler: HandleTask,
  task: HandlerTask,
  ctx: Omit<HandlerContext, 'signal'>,
  timeoutMs: number,
  shutdown: AbortSignal,
): Promise<Outcome> {
  // stopped before the handler started: not run at all
  if (shutdown.aborted) return stoppedOutcome(shutdown);
  // One controller per run, aborted by its timer or by shutdown. Not AbortSignal.any() over the
  // agent's long-lived shutdown signal: that keeps every run's combined signal alive once it has
  // a listener (nodejs/node#55328): 3-4 KB per task for the life of the agent.
  const controller = new AbortController();
  const { signal } = controller;
  const response: HandlerResponse = { payload: null, errnr: 0, errmsg: null };
  let timedOut = false;
  const onShutdown = (): void => controller.abort(shutdown.reason);
  shutdown.addEventListener('abort', onShutdown, { once: true });
  // setTimeout fires at once for delays past 2^31-1 ms; such a timeout means "about never"
  const timer = setTimeout(
    () => {
      timedOut = true;
      controller.abort(new Error('execution timeout'));
    },
    Math.min(timeoutMs, MAX_TIMER_MS),
  );
  const stopped = new Promise<'stopped'>((resolve) => {
    signal.addEventListener('abort', () => resolve('stopped'), { once: true });
  });
  try {
    const call = Promise.resolve().then(() => handler(task, response, { ...ctx, signal }));
    const settled = await Promise.race([call.then((value) => ({ value })), stopped]);
    if (settled === 'stopped') {
      call.catch(() => undefined);
      if (timedOut) return timedOutOutcome('handler', timeoutMs);
      return stoppedOutcome(shutdown);
    }
    return checkResponse(settled.value, response);
  } catch (thrown) {
    if (shutdown.aborted) return stoppedOutcome(shutdown);
    const err = coerceError(thrown);
    const errnr = (err as { errnr?: unknown }).errnr;
    const code = isErrnr(errnr) && errnr !== 0 ? errnr : 1;
    return failed(code, err.message || err.name);
  } finally {
    clearTimeout(timer);
    shutdown.removeEventListener('abort', onShutdown);
  }
}
