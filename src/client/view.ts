/**
 * The live view of a watched task, rendered to lines for a screen of a given size (pure): the
 * task, an overall bar (final of expected, rate, elapsed), then each endpoint's state, with
 * progress for the running ones. It never takes more lines than the screen has (the rest is
 * summarised by state) nor more columns (lines are cut), so redrawing it in place works.
 */
import { isTerminalResponse, type ResponseStatus } from '../domain';
import type { ResponseJson } from './wire';
import type { WatchState } from './watch-state';
import { bar, clean, clock, fit, pad } from './text';

export interface Screen {
  width: number;
  height: number;
}

/** the order endpoints are shown in when not all fit: what needs a look first */
const PRIORITY: ResponseStatus[] = [
  'RUNNING',
  'RETRYING',
  'FAILED',
  'TIMED_OUT',
  'RECEIVED',
  'PENDING',
  'UNDELIVERED',
  'CANCELLED',
  'DONE',
];
const STATUS_WIDTH = 'UNDELIVERED'.length;
const NAME_WIDTH_MOST = 24;

/** How far the task is: final rows of expected ones, and since when. */
export function progressOf(
  state: WatchState,
  now: number,
): { final: number; expected: number; seconds: number; rate: number } {
  const rows = [...state.rows.values()];
  const final = rows.filter((row) => isTerminalResponse(row.status)).length;
  const expected = state.task.counts.expected === 0 ? rows.length : state.task.counts.expected;
  const start = Date.parse(state.task.start_time);
  const end = state.task.finished_at === null ? now : Date.parse(state.task.finished_at);
  const seconds = Math.max(0, (end - start) / 1000);
  return { final, expected, seconds, rate: seconds > 0 ? final / seconds : 0 };
}

/** What to say after an endpoint's state: its progress, its error, why it waits. */
export function rowDetail(row: ResponseJson, barWidth: number): string {
  if (row.status === 'RUNNING' && row.progress !== null) {
    const { current, total, line } = row.progress;
    const amount = total === null ? String(current) : `${current}/${total}`;
    const drawn = total === null || barWidth <= 0 ? '' : `${bar(current, total, barWidth)} `;
    return `${drawn}${amount}${line === null ? '' : ` ${clean(line)}`}`;
  }
  if (row.status === 'FAILED' || row.status === 'TIMED_OUT') {
    return `errnr ${row.errnr ?? '-'}${row.errmsg === null ? '' : ` ${clean(row.errmsg)}`}`;
  }
  if (row.status === 'RETRYING') {
    const next = row.next_attempt_at == null ? '' : ` at ${row.next_attempt_at.slice(11, 19)}`;
    const error = row.errmsg === null ? '' : `: ${clean(row.errmsg)}`;
    return `attempt ${row.attempt + 1}${next}, after errnr ${row.errnr ?? '-'}${error}`;
  }
  if (row.registry !== undefined && row.status === 'PENDING') {
    return row.registry.status === 'never_seen'
      ? 'agent never seen'
      : `agent ${row.registry.status}`;
  }
  return row.attempt > 1 ? `attempt ${row.attempt}` : '';
}

function rate(perSecond: number): string {
  return perSecond >= 10 ? `${Math.round(perSecond)}/s` : `${perSecond.toFixed(1)}/s`;
}

function header(state: WatchState, screen: Screen, now: number): string[] {
  const { task } = state;
  const { final, expected, seconds, rate: perSecond } = progressOf(state, now);
  const title = `${task.type} ${task.identifier}  ${task.status}${task.round > 1 ? `  round ${task.round}` : ''}`;
  const figures = `  ${final}/${expected} final  ${rate(perSecond)}  ${clock(seconds)}`;
  const barWidth = Math.max(5, Math.min(40, screen.width - figures.length - 2));
  const rows = [...state.rows.values()];
  const count = (...statuses: ResponseStatus[]): number =>
    rows.filter((row) => statuses.includes(row.status)).length;
  const tally = [
    `done ${count('DONE')}`,
    `failed ${count('FAILED', 'TIMED_OUT')}`,
    `running ${count('RUNNING', 'RETRYING')}`,
    `waiting ${count('PENDING', 'RECEIVED')}`,
  ];
  if (count('UNDELIVERED') > 0) tally.push(`undelivered ${count('UNDELIVERED')}`);
  if (count('CANCELLED') > 0) tally.push(`cancelled ${count('CANCELLED')}`);
  return [title, `${bar(final, expected, barWidth)}${figures}`, tally.join('  ')];
}

/** The view for `screen`, at most `screen.height - 1` lines (the cursor keeps the last). */
export function renderView(state: WatchState, screen: Screen, now: number): string[] {
  const room = Math.max(1, screen.height - 1);
  const lines = header(state, screen, now);
  const byName = [...state.rows.values()].sort((a, b) => a.endpoint.localeCompare(b.endpoint));
  const space = room - lines.length;
  let shown = byName;
  let hidden: ResponseJson[] = [];
  if (byName.length > space) {
    const ranked = [...byName].sort(
      (a, b) => PRIORITY.indexOf(a.status) - PRIORITY.indexOf(b.status),
    );
    const keep = Math.max(0, space - 1);
    const kept = new Set(ranked.slice(0, keep));
    shown = byName.filter((row) => kept.has(row));
    hidden = ranked.slice(keep);
  }
  const nameWidth = Math.min(
    NAME_WIDTH_MOST,
    Math.max(0, ...shown.map((row) => row.endpoint.length)),
  );
  const barWidth = screen.width >= 70 ? 10 : 0;
  for (const row of shown) {
    const detail = rowDetail(row, barWidth);
    lines.push(
      `  ${pad(fit(row.endpoint, nameWidth), nameWidth)}  ${pad(row.status, STATUS_WIDTH)}  ${detail}`.trimEnd(),
    );
  }
  if (hidden.length > 0 && space > 0) lines.push(`  … ${hidden.length} more: ${tallyOf(hidden)}`);
  return lines.slice(0, room).map((line) => fit(line, screen.width));
}

/** `30 DONE, 7 PENDING`, the most common first */
function tallyOf(rows: ResponseJson[]): string {
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(row.status, (counts.get(row.status) ?? 0) + 1);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
}
