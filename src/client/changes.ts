/**
 * A watched task off a terminal (a pipe, a log, CI): one line per change, the task's status
 * and each endpoint's state, progress or error as it moves. Pure.
 */
import type { ResponseJson } from './wire';
import type { WatchState } from './watch-state';
import { isTerminalTask } from '../domain';
import { rowDetail } from './view';

function rowKey(row: ResponseJson): string {
  return JSON.stringify([
    row.status,
    row.progress?.current,
    row.progress?.line,
    row.errnr,
    row.round,
  ]);
}

/** The lines that tell what changed from `before` (null: nothing seen yet) to `after`. */
export function describeChanges(
  before: WatchState | null,
  after: WatchState,
  time: string,
): string[] {
  const lines: string[] = [];
  const { task } = after;
  // a final status is left to the summary that follows: its rows' events come after it
  const moved =
    before === null || before.task.status !== task.status || before.task.round !== task.round;
  if (moved && !isTerminalTask(task.status)) {
    const round = task.round > 1 ? ` round ${task.round}` : '';
    lines.push(`${time} ${task.type} ${task.identifier} ${task.status}${round}`);
  }
  for (const row of after.rows.values()) {
    const previous = before?.rows.get(row.endpoint);
    if (previous !== undefined && rowKey(previous) === rowKey(row)) continue;
    lines.push(`${time}   ${row.endpoint} ${row.status} ${rowDetail(row, 0)}`.trimEnd());
  }
  return lines;
}
