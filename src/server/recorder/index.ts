/**
 * The recorder turns result events from the agents into response rows, and their heartbeats
 * into the endpoint registry (heartbeats.ts). It checks every message
 * (messages.ts), writes a batch in one transaction, and acks only after the commit. A batch the
 * database could not take goes back to the queue after a pause that grows while failures last,
 * so an outage is no busy loop; when the batch failed for something in it rather than the
 * database being away, its messages are written one by one (isolate.ts) to find the bad one,
 * which then cannot hold back the others for ever.
 */
import type { Delivery, Subscription, TaskBroker } from '../../broker';
import type { ResultEvent } from '../../domain';
import type { Logger } from '../../log';
import type { ServerMetrics } from '../../metrics';
import {
  failsEveryWrite,
  recordResultEvents,
  type Db,
  type RecordOutcome,
  type TaskChange,
} from '../../store';
import { FailureCounts, isolateBadMessages, type WriteResult } from './isolate';
import { recordHeartbeatDeliveries } from './heartbeats';
import { acceptMessage, settleMessage, type Accepted, type HeardBeat } from './messages';

export interface RecorderOptions {
  batchSize: number;
  prefetch: number;
  lingerMs?: number;
  /** when set, an event is trusted only if published by the broker user `<prefix><endpoint>` */
  agentUserPrefix?: string | null;
  /** told of what each committed batch changed */
  onChanged?: (changes: TaskChange[]) => void;
  /** batch sizes, events by outcome and their age at commit */
  metrics?: ServerMetrics;
}

/** the longest pause before a batch that could not be written goes back to the queue */
const MAX_PAUSE_MS = 10_000;
/** batches handed back in a row for a failure every write meets, before looking into one */
const ISOLATE_AFTER_FAILURES = 3;

/** The pause after `failures` batches in a row went back to the queue: 0.5 s, 1 s, 2 s … 10 s. */
export function outagePauseMs(failures: number): number {
  return Math.min(MAX_PAUSE_MS, 250 * 2 ** Math.min(failures, 6));
}

/** The events of a committed write: by outcome, and each recorded one's age (its agent's `at`). */
function observeCommit(
  metrics: ServerMetrics | undefined,
  events: readonly ResultEvent[],
  outcome: RecordOutcome,
): void {
  if (metrics === undefined) return;
  const committedAt = Date.now();
  const orphaned = new Set(outcome.orphaned);
  const ages = events
    .filter((event) => !orphaned.has(event))
    .map((event) => (committedAt - Date.parse(event.at)) / 1000)
    .filter((age) => Number.isFinite(age));
  metrics.eventsCommitted(
    { applied: outcome.applied, ignored: outcome.ignored, orphaned: outcome.orphaned.length },
    ages,
  );
}

export async function startRecorder(
  db: Db,
  broker: TaskBroker,
  options: RecorderOptions,
  log: Logger,
): Promise<Subscription> {
  const agentUserPrefix = options.agentUserPrefix ?? null;
  const failures = new FailureCounts();
  /** batches handed back in a row */
  let handedBack = 0;

  const write = async (events: ResultEvent[]): Promise<WriteResult> => {
    try {
      const outcome = await recordResultEvents(db, events);
      observeCommit(options.metrics, events, outcome);
      log.debug('recorded result events', {
        applied: outcome.applied,
        ignored: outcome.ignored,
        orphaned: outcome.orphaned.length,
      });
      if (outcome.changed.length > 0) options.onChanged?.(outcome.changed);
      return { orphaned: outcome.orphaned };
    } catch (error) {
      return { error };
    }
  };
  const settle = (message: Accepted, orphaned: ReadonlySet<ResultEvent>): void =>
    settleMessage(message, orphaned, log);

  /** Record the batch's result events; returns what to hand back to the queue, and why. */
  const recordResults = async (
    accepted: Accepted[],
  ): Promise<{ retry: Delivery[]; error?: unknown }> => {
    if (accepted.length === 0) return { retry: [] };
    const batch = await write(accepted.flatMap((a) => a.events));
    if (!('error' in batch)) {
      const orphaned = new Set(batch.orphaned);
      for (const message of accepted) settle(message, orphaned);
      return { retry: [] };
    }
    // A failure every write meets hands the batch back; after a few in a row, look anyway: a
    // batch too large for a statement timeout or the lock table looks the same. The search
    // stops at the first write when the database is in fact away.
    const retry =
      failsEveryWrite(batch.error) && handedBack < ISOLATE_AFTER_FAILURES
        ? accepted
        : await isolateBadMessages(accepted, batch.error, { write, settle, failures, log });
    return { retry: retry.map((message) => message.delivery), error: batch.error };
  };

  const onBatch = async (deliveries: Delivery[]): Promise<void> => {
    options.metrics?.recorderBatchTaken(deliveries.length);
    const results: Accepted[] = [];
    const beats: HeardBeat[] = [];
    for (const delivery of deliveries) {
      const taken = acceptMessage(delivery, agentUserPrefix, log);
      if (taken === null) continue;
      if ('heartbeat' in taken) beats.push(taken);
      else results.push(taken);
    }
    // side by side: a batch of heartbeats is one upsert of another table, and results are
    // acked as soon as theirs commit
    const [fromResults, fromBeats] = await Promise.all([
      recordResults(results),
      recordHeartbeatDeliveries(db, beats, log),
    ]);
    const retry = [...fromResults.retry, ...fromBeats.retry];
    if (retry.length === 0) {
      handedBack = 0;
      return;
    }
    handedBack += 1;
    const pause = outagePauseMs(handedBack);
    log.warn('could not record what agents sent; returning it to the queue', {
      err: fromResults.error ?? fromBeats.error,
      messages: retry.length,
      pause_ms: pause,
    });
    await new Promise((resolve) => setTimeout(resolve, pause));
    for (const delivery of retry) delivery.requeue();
  };
  return broker.consumeResults(
    { batchSize: options.batchSize, prefetch: options.prefetch, lingerMs: options.lingerMs ?? 10 },
    onBatch,
  );
}
