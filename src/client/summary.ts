/**
 * The account of a task once it is over (or once watching stopped), after Salt's: how many
 * endpoints were targeted, how many returned, which did not, and the failures grouped by errnr
 * and message. Pure.
 */
import type { ResponseStatus } from '../domain';
import type { ResponseJson, TaskDocument } from './wire';

export interface FailureGroup {
  errnr: number | null;
  errmsg: string | null;
  endpoints: string[];
}

export interface Summary {
  title: string;
  /** addressed endpoints; for a broadcast, those that answered */
  targeted: number;
  broadcast: boolean;
  returned: number;
  /** endpoints with no outcome: never delivered, or still going when watching stopped */
  didNotReturn: Array<{ endpoint: string; status: ResponseStatus; why: string | null }>;
  done: number;
  failed: number;
  cancelled: number;
  /** FAILED and TIMED_OUT endpoints by (errnr, errmsg), the largest group first */
  failures: FailureGroup[];
  /** why a rollout stopped, why it was cancelled */
  notes: string[];
}

const RETURNED: readonly ResponseStatus[] = ['DONE', 'FAILED', 'TIMED_OUT', 'CANCELLED'];

export function summarize(document: TaskDocument): Summary {
  const { task, taskResponseList: rows } = document;
  const byName = [...rows].sort((a, b) => a.endpoint.localeCompare(b.endpoint));
  const groups = new Map<string, FailureGroup>();
  for (const row of byName) {
    if (row.status !== 'FAILED' && row.status !== 'TIMED_OUT') continue;
    const key = JSON.stringify([row.errnr, row.errmsg]);
    const group = groups.get(key) ?? { errnr: row.errnr, errmsg: row.errmsg, endpoints: [] };
    group.endpoints.push(row.endpoint);
    groups.set(key, group);
  }
  const count = (...statuses: ResponseStatus[]): number =>
    rows.filter((row) => statuses.includes(row.status)).length;
  const broadcast = task.counts.expected === 0;
  const seconds = durationSeconds(task.start_time, task.finished_at);
  return {
    title:
      `${task.type} ${task.identifier}: ${task.status}` +
      (seconds === null ? '' : ` after ${formatSeconds(seconds)}`),
    targeted: broadcast ? rows.length : task.counts.expected,
    broadcast,
    returned: count(...RETURNED),
    didNotReturn: byName
      .filter((row) => !RETURNED.includes(row.status))
      .map((row) => ({ endpoint: row.endpoint, status: row.status, why: whyMissing(row) })),
    done: count('DONE'),
    failed: count('FAILED', 'TIMED_OUT'),
    cancelled: count('CANCELLED'),
    failures: [...groups.values()].sort((a, b) => b.endpoints.length - a.endpoints.length),
    notes: [task.stopped_reason, task.cancel_reason && `cancelled: ${task.cancel_reason}`].filter(
      (note): note is string => typeof note === 'string' && note !== '',
    ),
  };
}

function whyMissing(row: ResponseJson): string | null {
  if (row.registry === undefined) return null;
  if (row.registry.status === 'never_seen') return 'no agent of that name ever started';
  return `agent ${row.registry.status}`;
}

export function durationSeconds(start: string, end: string | null): number | null {
  if (end === null) return null;
  return Math.max(0, (Date.parse(end) - Date.parse(start)) / 1000);
}

export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${whole % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** `a, b, c … and 12 more` */
export function nameList(names: string[], most: number): string {
  if (names.length <= most) return names.join(', ');
  return `${names.slice(0, most).join(', ')} … and ${names.length - most} more`;
}

/** The summary as a person reads it; at most `mostNames` names on a line (--json has all). */
export function renderSummary(summary: Summary, mostNames = 20): string[] {
  const line = (label: string, value: string): string => `  ${label.padEnd(16)}${value}`;
  const lines = [
    summary.title,
    line(
      'targeted:',
      `${summary.targeted}${summary.broadcast ? ' (broadcast: those that answered)' : ''}`,
    ),
    line('returned:', String(summary.returned)),
  ];
  const missing = summary.didNotReturn;
  const names = missing.map(
    ({ endpoint, status, why }) => `${endpoint} (${status}${why === null ? '' : `, ${why}`})`,
  );
  lines.push(
    line(
      'did not return:',
      missing.length === 0 ? '0' : `${missing.length}: ${nameList(names, mostNames)}`,
    ),
    line('done:', String(summary.done)),
    line('failed:', String(summary.failed)),
  );
  for (const group of summary.failures) {
    const message = group.errmsg === null ? 'no message' : JSON.stringify(group.errmsg);
    lines.push(
      `    errnr ${group.errnr ?? '-'} ${message} (${group.endpoints.length}): ` +
        nameList(group.endpoints, mostNames),
    );
  }
  if (summary.cancelled > 0) lines.push(line('cancelled:', String(summary.cancelled)));
  for (const note of summary.notes) lines.push(`  ${note}`);
  return lines;
}
