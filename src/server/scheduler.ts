/**
 * The scheduler releases what is held: delayed tasks whose `not_before` has come, and waiting
 * tasks whose dependencies are all final (or cancels those a failed dependency cancels). Each
 * release is one transaction that makes the task CREATED with its outbox row; the relay
 * publishes it. Several servers may run it at once: each claims its tasks with SKIP LOCKED.
 */
import type { Logger } from '../log';
import { releaseDueTasks, releaseReadyTasks, type Db, type TaskChange } from '../store';
import { startLoop, type Loop } from './loop';

const BATCH = 100;

export interface SchedulerHooks {
  /** tasks were released: the relay should look now */
  onReleased?: () => void;
  onChanged?: (changes: TaskChange[]) => void;
}

export function startScheduler(
  db: Db,
  intervalMs: number,
  log: Logger,
  hooks: SchedulerHooks = {},
): Loop {
  return startLoop(
    'scheduler',
    intervalMs,
    async () => {
      // dependencies first: a task they release to SCHEDULED may be due already
      const ready = await releaseReadyTasks(db, { limit: BATCH });
      const due = await releaseDueTasks(db, { limit: BATCH });
      const released = ready.released + due.released;
      if (ready.cancelled > 0) log.info('waiting tasks cancelled', { cancelled: ready.cancelled });
      if (released > 0) {
        log.info('held tasks released', { released });
        hooks.onReleased?.();
      }
      const changed = [...ready.changed, ...due.changed];
      if (changed.length > 0) hooks.onChanged?.(changed);
      return ready.changed.length >= BATCH || due.changed.length >= BATCH;
    },
    log,
  );
}
