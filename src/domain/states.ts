/**
 * Endpoint-response and task states, and the rules that move them. Pure: no I/O.
 *
 * A response row only moves forward. The one exception is UNDELIVERED: it is the server's
 * verdict that the deadline passed without word from the endpoint, so a later fact from that
 * endpoint (it did get the task, just late) replaces the verdict.
 */

export const RESPONSE_STATUSES = [
  'PENDING',
  'RECEIVED',
  'RUNNING',
  'RETRYING',
  'DONE',
  'FAILED',
  'TIMED_OUT',
  'UNDELIVERED',
  'CANCELLED',
] as const;
export type ResponseStatus = (typeof RESPONSE_STATUSES)[number];

/**
 * A task may be held before it is `CREATED`: `WAITING` until every task it comes after is final,
 * `SCHEDULED` until its `not_before`. Held, it is stored with its rows but not published, and
 * none of its rows has a delivery deadline yet.
 */
export const TASK_STATUSES = [
  'WAITING',
  'SCHEDULED',
  'CREATED',
  'SENT',
  'DONE',
  'FAILED',
  'INCOMPLETE',
  'CANCELLED',
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** States an agent reports as the outcome of running a handler (or of a cancel). */
export const FINISHED_STATUSES = ['DONE', 'FAILED', 'TIMED_OUT', 'CANCELLED'] as const;
export type FinishedStatus = (typeof FINISHED_STATUSES)[number];

export const RESPONSE_RANK: Record<ResponseStatus, number> = {
  PENDING: 0,
  RECEIVED: 1,
  RUNNING: 2,
  RETRYING: 2,
  UNDELIVERED: 3,
  DONE: 4,
  FAILED: 4,
  TIMED_OUT: 4,
  CANCELLED: 4,
};

export function isTerminalResponse(status: ResponseStatus): boolean {
  return RESPONSE_RANK[status] >= 3;
}

export function isTerminalTask(status: TaskStatus): boolean {
  return (
    status === 'DONE' || status === 'FAILED' || status === 'INCOMPLETE' || status === 'CANCELLED'
  );
}

/** Stored but not yet released for publishing: its dependencies or its time have not come. */
export function isHeldTask(status: TaskStatus): boolean {
  return status === 'WAITING' || status === 'SCHEDULED';
}

export function isResponseStatus(value: unknown): value is ResponseStatus {
  return typeof value === 'string' && (RESPONSE_STATUSES as readonly string[]).includes(value);
}

/**
 * May a response row in `from` move to `to`?
 * - forward by rank only (a duplicate or stale event never moves a row back or sideways);
 * - the same non-terminal state again is allowed so progress updates land;
 * - UNDELIVERED may be replaced by what the endpoint reports finishing with, and only a
 *   PENDING row may become UNDELIVERED.
 */
export function canMoveResponse(from: ResponseStatus, to: ResponseStatus): boolean {
  if (from === 'UNDELIVERED') return to === 'DONE' || to === 'FAILED' || to === 'TIMED_OUT';
  // UNDELIVERED means "no word from the endpoint": only a PENDING row can become it
  if (to === 'UNDELIVERED') return from === 'PENDING';
  if (isTerminalResponse(from)) return false;
  if (from === to) return true;
  return RESPONSE_RANK[to] > RESPONSE_RANK[from];
}

/** Agent-reported outcome from a handler's errnr. */
export function statusForErrnr(errnr: number): FinishedStatus {
  return errnr === 0 ? 'DONE' : 'FAILED';
}

/** errnr reported when a handler runs past its execution timeout */
export const TIMEOUT_ERRNR = -1;
/** errnr of an endpoint whose task was cancelled */
export const CANCELLED_ERRNR = -2;
