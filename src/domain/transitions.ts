/**
 * How one endpoint's response row changes when a result event arrives or a deadline passes.
 * Pure: the store loads the row, calls these, and writes back what they return.
 */
import type { AgentInfo, Progress, ResultEvent } from './messages';
import { canMoveResponse, isTerminalResponse, type ResponseStatus } from './states';

export interface ResponseState {
  status: ResponseStatus;
  errnr: number | null;
  errmsg: string | null;
  payload: unknown;
  progress: Progress | null;
  attempt: number;
  agent: AgentInfo | null;
  startTime: Date | null;
  lastEventAt: Date | null;
  finishedAt: Date | null;
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
    finishedAt: null,
  };
}

/**
 * The row after `event`, or null when the event changes nothing: it would move the row back,
 * it repeats a terminal state, or it is an older progress report than one already stored.
 */
export function applyResultEvent(state: ResponseState, event: ResultEvent): ResponseState | null {
  if (!canMoveResponse(state.status, event.status)) return null;
  const at = new Date(event.at);
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
  };
  if (isTerminalResponse(event.status)) {
    next.errnr = event.errnr ?? (event.status === 'DONE' ? 0 : 1);
    next.errmsg = event.errmsg;
    next.payload = event.payload;
    next.finishedAt = at;
  }
  return next;
}

/** PENDING past the delivery deadline: the endpoint never got the task. */
export function markUndelivered(state: ResponseState, deadline: Date): ResponseState | null {
  if (state.status !== 'PENDING') return null;
  return {
    ...state,
    status: 'UNDELIVERED',
    errmsg: `not received by the endpoint before the delivery deadline ${deadline.toISOString()}`,
    finishedAt: deadline,
  };
}

/** Still running long after the handler's time ran out, with no word from the agent. */
export function markSilentTimeout(
  state: ResponseState,
  now: Date,
  limitMs: number,
): ResponseState | null {
  if (state.status !== 'RECEIVED' && state.status !== 'RUNNING') return null;
  return {
    ...state,
    status: 'TIMED_OUT',
    errnr: -1,
    errmsg: `no result from the endpoint within ${Math.round(limitMs / 1000)} s of its last report`,
    finishedAt: now,
  };
}
