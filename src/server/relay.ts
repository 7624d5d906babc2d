/**
 * The relay publishes tasks the request could not (broker down, confirm lost, server crashed
 * between commit and publish), until the broker confirms them or their deadline passes.
 */
import type { TaskBroker } from '../broker';
import type { Logger } from '../log';
import { relayDueTasks, type Db, type Publishers } from '../store';
import { startLoop, type Loop } from './loop';

const BATCH = 100;

export function startRelay(
  db: Db,
  broker: TaskBroker,
  publish: Publishers,
  intervalMs: number,
  log: Logger,
): Loop {
  return startLoop(
    'relay',
    intervalMs,
    async () => {
      if (!broker.isConnected) return false;
      const outcome = await relayDueTasks(db, publish, {
        limit: BATCH,
      });
      const total = outcome.published + outcome.failed + outcome.expired;
      if (total > 0) log.info('relay pass', { ...outcome });
      return outcome.failed === 0 && total >= BATCH;
    },
    log,
  );
}
