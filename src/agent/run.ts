/**
 * Runs one handler call and turns whatever happens into an outcome: a result, a thrown error,
 * garbage returned, or a hang past the execution timeout. Never throws.
 */
import { coerceError, isPlainObject, statusForErrnr, type FinishedStatus } from '../domain';
import type { HandleTask, HandlerContext, HandlerResponse, HandlerTask } from './contract';

export interface Outcome {
  status: FinishedStatus;
  errnr: number;
  errmsg: string | null;
  payload: unknown;
  /** the agent is shutting down: hand the task back instead of reporting */
  abandoned: boolean;
}

/** errnr reported when a handler runs past its execution timeout */
export const TIMEOUT_ERRNR = -1;
const MAX_ERRMSG = 4000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A short description of any value, for messages; never throws. */
function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return Array.isArray(value) ? 'an unserializable array' : `an unserializable ${typeof value}`;
  }
}

function truncate(text: string): string {
  return text.length > MAX_ERRMSG ? `${text.slice(0, MAX_ERRMSG)}…` : text;
}

function failed(errnr: number, errmsg: string): Outcome {
  return { status: 'FAILED', errnr, errmsg: truncate(errmsg), payload: null, abandoned: false };
}

/** Check what a handler returned; a readable FAILED outcome when it is not a response. */
export function checkResponse(value: unknown, response: HandlerResponse): Outcome {
  const result = value === undefined ? response : value;
  if (!isPlainObject(result)) {
    return failed(1, `handler returned ${describe(result)}, not a response`);
  }
  const errnr = result.errnr ?? 0;
  if (typeof errnr !== 'number' || !Number.isSafeInteger(errnr)) {
    return failed(1, `handler set errnr to ${describe(errnr)}; it must be an integer`);
  }
  const errmsg = result.errmsg ?? null;
  if (errmsg !== null && typeof errmsg !== 'string') {
    return failed(1, 'handler set errmsg to a non-string');
  }
  const payload = result.payload ?? null;
  try {
    JSON.stringify(payload);
  } catch (err) {
    return failed(1, `handler payload cannot be sent as JSON: ${coerceError(err).message}`);
  }
  return {
    status: statusForErrnr(errnr),
    errnr,
    errmsg: errmsg === null ? null : truncate(errmsg),
    payload,
    abandoned: false,
  };
}

export async function runHandler(
  handler: HandleTask,
  task: HandlerTask,
  ctx: Omit<HandlerContext, 'signal'>,
  timeoutMs: number,
  shutdown: AbortSignal,
): Promise<Outcome> {
  // shutting down before the handler started: hand the task back without running it
  if (shutdown.aborted) return { ...failed(1, 'agent shut down'), abandoned: true };
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
      if (timedOut) {
        return {
          status: 'TIMED_OUT',
          errnr: TIMEOUT_ERRNR,
          errmsg: `handler did not finish within the execution timeout of ${timeoutMs} ms`,
          payload: null,
          abandoned: false,
        };
      }
      return { ...failed(1, 'agent shut down'), abandoned: true };
    }
    return checkResponse(settled.value, response);
  } catch (thrown) {
    if (shutdown.aborted) return { ...failed(1, 'agent shut down'), abandoned: true };
    const err = coerceError(thrown);
    const errnr = (err as { errnr?: unknown }).errnr;
    const code =
      typeof errnr === 'number' && Number.isSafeInteger(errnr) && errnr !== 0 ? errnr : 1;
    return failed(code, err.message || err.name);
  } finally {
    clearTimeout(timer);
    shutdown.removeEventListener('abort', onShutdown);
  }
}
