/**
 * The sweeper settles deadlines: endpoints that never got a task become UNDELIVERED, endpoints
 * silent past the execution timeout become TIMED_OUT, endpoints that did not confirm a cancel
 * become CANCELLED, and the task status is recomputed.
 */
import type { Logger } from '../log';
import { sweepDeadlines, type Db, type TaskChange } from '../store';
import { startLoop, type Loop } from './loop';

const BATCH = 100;

export function startSweeper(
  db: Db,
  intervalMs: number,
  timeoutGraceMs: number,
  log: Logger,
  onChanged: (changes: TaskChange[]) => void = () => undefined,
): Loop {
  return startLoop(
    'sweeper',
    intervalMs,
    async () => {
      const outcome = await sweepDeadlines(db, { limit: BATCH, timeoutGraceMs });
      for (const task of outcome.finished) log.info('task settled by deadline', task);
      if (outcome.changed.length > 0) onChanged(outcome.changed);
      return outcome.tasks >= BATCH;
    },
    log,
  );
}
