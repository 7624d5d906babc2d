/**
 * Heartbeats into the endpoint registry: the heartbeats of a batch go in one upsert, each
 * endpoint's latest winning, and are acked once it commits. When the database is away they go
 * back to the queue with the batch's results (a hello or beat expires there after its interval,
 * so a stale one never makes a dead agent look alive); when it refuses the batch for something
 * in it, each is written alone and the one it refuses is dead-lettered.
 */
import type { Delivery } from '../../broker';
import type { Logger } from '../../log';
import { failsEveryWrite, isDatabaseAway, recordHeartbeats, type Db } from '../../store';
import type { HeardBeat } from './messages';

export async function recordHeartbeatDeliveries(
  db: Db,
  beats: readonly HeardBeat[],
  log: Logger,
): Promise<{ retry: Delivery[]; error?: unknown }> {
  if (beats.length === 0) return { retry: [] };
  try {
    await recordHeartbeats(
      db,
      beats.map((beat) => beat.heartbeat),
    );
    for (const { delivery } of beats) delivery.ack();
    return { retry: [] };
  } catch (error) {
    if (failsEveryWrite(error)) return { retry: beats.map((beat) => beat.delivery), error };
    log.warn('a batch of heartbeats was refused; writing them one by one', { err: error });
    for (const [i, beat] of beats.entries()) {
      try {
        await recordHeartbeats(db, [beat.heartbeat]);
        beat.delivery.ack();
      } catch (alone) {
        if (isDatabaseAway(alone) || failsEveryWrite(alone)) {
          return { retry: beats.slice(i).map((rest) => rest.delivery), error: alone };
        }
        log.error('dead-lettering a heartbeat the database does not take', {
          err: alone,
          endpoint: beat.heartbeat.endpoint,
        });
        beat.delivery.deadLetter();
      }
    }
    return { retry: [] };
  }
}
