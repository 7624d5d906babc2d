/**
 * The relay publishes what the outbox holds: tasks the request could not (broker down, confirm
 * lost, server crashed between commit and publish), until the broker confirms them or their
 * deadline passes; a task's later waves (after their pause) and rounds; cancels.
 */
import type { TaskBroker } from '../broker';
import type { Logger } from '../log';
import { relayDueTasks, type Db, type Publishers, type TaskChange } from '../store';
import { startLoop, type Loop } from './loop';

const BATCH = 100;

export function startRelay(
  db: Db,
  broker: TaskBroker,
  publish: Publishers,
  intervalMs: number,
  log: Logger,
  onChanged: (changes: TaskChange[]) => void = () => undefined,
): Loop {
  return startLoop(
    'relay',
    intervalMs,
    async () => {
      if (!broker.isConnected) return false;
      const outcome = await relayDueTasks(db, publish, {
        limit: BATCH,
      });
      const { changed, ...counts } = outcome;
      const total = counts.published + counts.failed + counts.expired;
      if (total > 0) log.info('relay pass', counts);
      if (changed.length > 0) onChanged(changed.map((task) => ({ task, rows: [] })));
      return outcome.failed === 0 && total >= BATCH;
    },
    log,
  );
}
