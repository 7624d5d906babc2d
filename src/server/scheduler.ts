/**
 * The scheduler releases what waits for its time: delayed tasks whose `not_before` has come
 * become CREATED with their outbox row, in one transaction, and the relay publishes them.
 * Several servers may run it at once: each claims its tasks with SKIP LOCKED.
 */
import type { Logger } from '../log';
import { releaseDueTasks, type Db, type TaskChange } from '../store';
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
      const outcome = await releaseDueTasks(db, { limit: BATCH });
      if (outcome.released > 0) {
        log.info('delayed tasks released', { released: outcome.released });
        hooks.onReleased?.();
        hooks.onChanged?.(outcome.changed);
      }
      return outcome.released >= BATCH;
    },
    log,
  );
}
