/**
 * Task status from its endpoint responses. Pure: the store feeds it rows, it returns the verdict.
 */
import { requiredDone, type Share } from './rollout';
import {
  isHeldTask,
  isTerminalResponse,
  isTerminalTask,
  type ResponseStatus,
  type TaskStatus,
} from './states';

export interface TaskCounts {
  /** endpoints the task was addressed to (0 for an open task sent to every subscriber) */
  expected: number;
  /** endpoints that confirmed they got the task (any state an agent reported) */
  received: number;
  done: number;
  /** FAILED or TIMED_OUT */
  failed: number;
  undelivered: number;
  cancelled: number;
  /** not yet terminal */
  pending: number;
  /** endpoints that answered without being addressed */
  unexpected: number;
}

export interface ResponseSummary {
  status: ResponseStatus;
  expected: boolean;
}

export interface AggregateInput {
  current: TaskStatus;
  /** true when the client named the endpoints; false for an open broadcast */
  addressed: boolean;
  /** the delivery deadline has passed (matters only for open broadcasts) */
  deadlinePassed: boolean;
  responses: readonly ResponseSummary[];
  /** DONE endpoints that make the task DONE, whatever the others did; null: all of them */
  successThreshold?: Share | null;
  /** its rollout was stopped by its error budget: FAILED once the rest is final */
  stopped?: boolean;
}

export interface Aggregate {
  status: TaskStatus;
  counts: TaskCounts;
}

const AGENT_REPORTED: ReadonlySet<ResponseStatus> = new Set([
  'RECEIVED',
  'RUNNING',
  'RETRYING',
  'DONE',
  'FAILED',
  'TIMED_OUT',
]);

export function countResponses(responses: readonly ResponseSummary[]): TaskCounts {
  const counts: TaskCounts = {
    expected: 0,
    received: 0,
    done: 0,
    failed: 0,
    undelivered: 0,
    cancelled: 0,
    pending: 0,
    unexpected: 0,
  };
  for (const r of responses) {
    if (r.expected) counts.expected += 1;
    else counts.unexpected += 1;
    if (AGENT_REPORTED.has(r.status)) counts.received += 1;
    if (r.status === 'DONE') counts.done += 1;
    else if (r.status === 'FAILED' || r.status === 'TIMED_OUT') counts.failed += 1;
    else if (r.status === 'UNDELIVERED') counts.undelivered += 1;
    else if (r.status === 'CANCELLED') counts.cancelled += 1;
    else counts.pending += 1;
  }
  return counts;
}

/**
 * The final status of a task whose deciding endpoints are all final: DONE when enough of them
 * are DONE (all, unless a success threshold says fewer); otherwise INCOMPLETE when one never
 * got it, FAILED when one failed or timed out, CANCELLED when one was cancelled.
 */
function verdict(
  responses: readonly ResponseSummary[],
  threshold: Share | null,
  stopped: boolean,
): TaskStatus {
  if (stopped) return 'FAILED';
  const done = responses.filter((r) => r.status === 'DONE').length;
  if (done >= requiredDone(threshold, responses.length)) return 'DONE';
  if (responses.some((r) => r.status === 'UNDELIVERED')) return 'INCOMPLETE';
  if (responses.some((r) => r.status === 'FAILED' || r.status === 'TIMED_OUT')) return 'FAILED';
  if (responses.some((r) => r.status === 'CANCELLED')) return 'CANCELLED';
  return 'DONE';
}

/**
 * Decide the task's status.
 * - An addressed task is decided by its expected endpoints once all of them are terminal
 *   (see `verdict`).
 * - An open broadcast is decided once its delivery deadline passed and everyone who answered is
 *   terminal; nobody answering at all is INCOMPLETE. One still held (SCHEDULED) was never sent.
 * - Status never moves back: a terminal task stays terminal (a late fact may change which
 *   terminal state), SENT never returns to CREATED.
 */
export function aggregateStatus(input: AggregateInput): Aggregate {
  const counts = countResponses(input.responses);
  const deciding = input.addressed ? input.responses.filter((r) => r.expected) : input.responses;
  const allTerminal = deciding.every((r) => isTerminalResponse(r.status));

  const threshold = input.successThreshold ?? null;
  const stopped = input.stopped === true;
  let decided: TaskStatus | null = null;
  if (input.addressed) {
    if (allTerminal) decided = verdict(deciding, threshold, stopped);
  } else if (input.deadlinePassed && allTerminal && !isHeldTask(input.current)) {
    decided = deciding.length === 0 ? 'INCOMPLETE' : verdict(deciding, threshold, stopped);
  }

  if (decided !== null) return { status: decided, counts };
  if (isTerminalTask(input.current)) return { status: input.current, counts };
  // Any answer from an endpoint proves the broker had the task, even if the confirm was lost.
  const status = input.current === 'CREATED' && counts.received > 0 ? 'SENT' : input.current;
  return { status, counts };
}
