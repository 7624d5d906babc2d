/**
 * The scheduler makes and releases tasks by the clock and by their order: the tasks of the
 * recurring schedules due (named `<schedule>@<due time>`), delayed tasks whose `not_before` has
 * come, and waiting tasks whose dependencies are all final (or cancels those a failed dependency
 * cancels). Each is one transaction that writes the task CREATED with its outbox row; the relay
 * publishes it. Several servers may run it at once: each claims its work with SKIP LOCKED.
 */
import type { TaskTypeConfig } from '../config';
import type { Logger } from '../log';
import {
  fireDueSchedules,
  releaseDueTasks,
  releaseReadyTasks,
  type Db,
  type TaskChange,
} from '../store';
import { startLoop, type Loop } from './loop';

const BATCH = 100;

export interface SchedulerOptions {
  intervalMs: number;
  /** the configured task types, which a schedule's tasks take their settings from */
  types: Record<string, TaskTypeConfig>;
  /** tasks were made or released: the relay should look now */
  onReleased?: () => void;
  onChanged?: (changes: TaskChange[]) => void;
}

export function startScheduler(db: Db, options: SchedulerOptions, log: Logger): Loop {
  return startLoop(
    'scheduler',
    options.intervalMs,
    async () => {
      const fired = await fireDueSchedules(db, options.types, { limit: BATCH });
      // dependencies before delays: a task they release to SCHEDULED may be due already
      const ready = await releaseReadyTasks(db, { limit: BATCH });
      const due = await releaseDueTasks(db, { limit: BATCH });
      const released = fired.fired + ready.released + due.released;
      if (fired.fired + fired.skipped > 0) {
        log.info('schedules fired', { fired: fired.fired, skipped: fired.skipped });
      }
      if (ready.cancelled > 0) log.info('waiting tasks cancelled', { cancelled: ready.cancelled });
      if (ready.released + due.released > 0) {
        log.info('held tasks released', { released: ready.released + due.released });
      }
      if (released > 0) options.onReleased?.();
      const changed = [
        ...fired.tasks.map((task) => ({ task, rows: [] })),
        ...ready.changed,
        ...due.changed,
      ];
      if (changed.length > 0) options.onChanged?.(changed);
      return (
        fired.schedules >= BATCH || ready.changed.length >= BATCH || due.changed.length >= BATCH
      );
    },
    log,
  );
}
