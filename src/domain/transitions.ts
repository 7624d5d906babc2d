/**
 * How one endpoint's response row changes when a result event arrives or a deadline passes.
 * Pure: the store loads the row, calls these, and writes back what they return.
 */
import type { AgentInfo, Progress, ResultEvent } from './messages';
import {
  CANCELLED_ERRNR,
  canMoveResponse,
  isTerminalResponse,
  type ResponseStatus,
} from './states';

export interface ResponseState {
  status: ResponseStatus;
  errnr: number | null;
  errmsg: string | null;
  payload: unknown;
  progress: Progress | null;
  attempt: number;
  agent: AgentInfo | null;
  startTime: Date | null;
  /** the agent's time of its latest event (information: its clock may be off) */
  lastEventAt: Date | null;
  /** when the server last heard from the endpoint about this row, on the server's clock */
  lastHeardAt: Date | null;
  finishedAt: Date | null;
  /** how long the finished run's output was (the text is kept apart); null: none */
  outputBytes: number | null;
  /** RETRYING: when the agent runs the task again */
  nextAttemptAt: Date | null;
}

export function pendingState(): ResponseState {
  return {
    status: 'PENDING',
    errnr: null,
    errmsg: null,
    payload: null,
    progress: null,
    attempt: 0,
    agent: null,
    startTime: null,
    lastEventAt: null,
    lastHeardAt: null,
    finishedAt: null,
    outputBytes: null,
    nextAttemptAt: null,
  };
}

/**
 * The row after `event`, recorded at `now` (the server's clock), or null when the event changes
 * nothing: it would move the row back, it repeats a terminal state, or it is an older progress
 * report than one already stored. An event of a newer attempt on an unfinished row (the agent
 * ran the task again after a crash) is news even when its status is not: the row takes its
 * attempt and the server's silence clock starts again.
 *
 * The agent's `at` is kept as information, but never later than `now`: an agent whose clock
 * runs ahead must not date a start or a finish in the future.
 */
export function applyResultEvent(
  state: ResponseState,
  event: ResultEvent,
  now: Date,
): ResponseState | null {
  const at = new Date(Math.min(Date.parse(event.at), now.getTime()));
  const retry = applyRetryStep(state, event, at, now);
  if (retry !== undefined) return retry;
  if (!canMoveResponse(state.status, event.status)) {
    if (isTerminalResponse(state.status) || event.attempt <= state.attempt) return null;
    return {
      ...state,
      attempt: event.attempt,
      agent: event.agent ?? state.agent,
      lastHeardAt: now,
    };
  }
  if (event.status === state.status && state.lastEventAt !== null && at < state.lastEventAt) {
    return null;
  }
  const next: ResponseState = {
    ...state,
    status: event.status,
    attempt: Math.max(state.attempt, event.attempt),
    agent: event.agent ?? state.agent,
    progress: event.progress ?? state.progress,
    startTime: state.startTime ?? at,
    lastEventAt: state.lastEventAt !== null && state.lastEventAt > at ? state.lastEventAt : at,
    lastHeardAt: now,
  };
  if (isTerminalResponse(event.status)) {
    next.nextAttemptAt = null;
    next.errnr = event.errnr ?? (event.status === 'DONE' ? 0 : 1);
    next.errmsg = event.errmsg;
    next.payload = event.payload;
    next.finishedAt = at;
    next.outputBytes =
      event.output === undefined || event.output === null
        ? null
        : (event.output_bytes ?? event.output.length);
  }
  return next;
}

/**
 * The moves between a run and the wait before the next one, which share a rank (both are
 * "the endpoint is working on it"): undefined when `event` is no such move.
 * - a retrying event of attempt n ends that run: the row shows RETRYING with the run's errnr and
 *   errmsg and when the next starts; the same or an older attempt again changes nothing;
 * - while RETRYING, only a newer attempt's report moves the row back to RECEIVED or RUNNING
 *   (a late report of the run that failed is stale).
 */
function applyRetryStep(
  state: ResponseState,
  event: ResultEvent,
  at: Date,
  now: Date,
): ResponseState | null | undefined {
  if (event.status === 'RETRYING') {
    if (state.status === 'UNDELIVERED' || isTerminalResponse(state.status)) return null;
    if (event.attempt < state.attempt) return null;
    if (state.status === 'RETRYING' && event.attempt === state.attempt) return null;
    return {
      ...state,
      status: 'RETRYING',
      attempt: event.attempt,
      agent: event.agent ?? state.agent,
      errnr: event.errnr,
      errmsg: event.errmsg,
      progress: null,
      startTime: state.startTime ?? at,
      lastEventAt: state.lastEventAt !== null && state.lastEventAt > at ? state.lastEventAt : at,
      lastHeardAt: now,
      nextAttemptAt: event.next_attempt_at == null ? null : new Date(event.next_attempt_at),
    };
  }
  if (state.status !== 'RETRYING' || isTerminalResponse(event.status)) return undefined;
  if (event.attempt <= state.attempt) return null;
  return {
    ...state,
    status: event.status,
    attempt: event.attempt,
    agent: event.agent ?? state.agent,
    errnr: null,
    errmsg: null,
    progress: event.progress,
    lastEventAt: at,
    lastHeardAt: now,
    nextAttemptAt: null,
  };
}

/** PENDING past the delivery deadline: the endpoint never got the task. */
export function markUndelivered(state: ResponseState, deadline: Date): ResponseState | null {
  if (state.status !== 'PENDING') return null;
  return {
    ...state,
    status: 'UNDELIVERED',
    errmsg: `the endpoint did not report receiving the task before the delivery deadline ${deadline.toISOString()}`,
    finishedAt: deadline,
  };
}

/**
 * Still running long after the handler's time ran out, with no word from the agent: silent for
 * `limitMs` since the server last heard of the row (the caller measures that on its own clock).
 */
export function markSilentTimeout(
  state: ResponseState,
  now: Date,
  limitMs: number,
): ResponseState | null {
  if (!isWorking(state.status)) return null;
  return {
    ...state,
    status: 'TIMED_OUT',
    errnr: -1,
    errmsg: `no result from the endpoint within ${Math.round(limitMs / 1000)} s of its last report`,
    finishedAt: now,
  };
}

/** The endpoint has the task and works on it: a run, or the wait before the next. */
export function isWorking(status: ResponseStatus): boolean {
  return status === 'RECEIVED' || status === 'RUNNING' || status === 'RETRYING';
}

/** What a cancelled row says, besides why: set with the reason as its errmsg. */
export const CANCELLED_STATE = { status: 'CANCELLED', errnr: CANCELLED_ERRNR } as const;
