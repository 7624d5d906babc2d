/**
 * The "nothing lost" checker: compares what clients were told with what the database holds,
 * and watches every task and response row for a state moving backwards.
 *   lost       = accepted (201/200) but not final, or missing
 *   unexpected = in the database but never posted by a client
 *   duplicates = more than one response row for one (task, endpoint)
 *   backwards  = a task or response state seen moving back
 */
import { RESPONSE_RANK, isResponseStatus } from '../../src/domain';
import type { Db } from '../../src/store';

const TASK_RANK: Record<string, number> = {
  CREATED: 0,
  SENT: 1,
  DONE: 2,
  FAILED: 2,
  INCOMPLETE: 2,
  CANCELLED: 2,
};
/** A response row's place in its forward order (src/domain's), 0 for what is not a status. */
const responseRank = (status: string): number =>
  isResponseStatus(status) ? RESPONSE_RANK[status] : 0;

export interface Verdict {
  accepted: number;
  lost: number;
  unexpected: number;
  duplicates: number;
  backwards: number;
  /** a few examples, for the failure message */
  examples: string[];
}

/** How the checker names a task: `<type>/<identifier>`. */
export const taskKey = (type: string, identifier: string): string => `${type}/${identifier}`;

/** Polls the tables while faults happen and counts backward moves. */
export class Observer {
  private readonly tasks = new Map<string, string>();
  private readonly rows = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  backwards = 0;
  readonly examples: string[] = [];

  constructor(private readonly db: Db) {}

  start(intervalMs = 150): void {
    const tick = (): void => {
      this.polling = this.poll()
        .catch(() => undefined) // the database may be down on purpose
        .finally(() => {
          if (this.timer !== null) this.timer = setTimeout(tick, intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.polling;
    await this.poll();
  }

  private note(kind: string, key: string, before: string, after: string): void {
    this.backwards += 1;
    if (this.examples.length < 5) this.examples.push(`${kind} ${key}: ${before} -> ${after}`);
  }

  async poll(): Promise<void> {
    // a retry opens a new round, which starts afresh: states move forward within a round
    const tasks = (await this.db('tasks').select('id', 'status', 'round')) as Array<{
      id: number;
      status: string;
      round: number;
    }>;
    for (const { id, status, round } of tasks) {
      const key = `${id}#${round}`;
      const before = this.tasks.get(key);
      if (before !== undefined && (TASK_RANK[status] ?? 0) < (TASK_RANK[before] ?? 0)) {
        this.note('task', key, before, status);
      }
      this.tasks.set(key, status);
    }
    const rows = (await this.db('task_responses').select(
      'task_id',
      'endpoint',
      'status',
      'round',
    )) as Array<{
      task_id: number;
      endpoint: string;
      status: string;
      round: number;
    }>;
    for (const { task_id, endpoint, status, round } of rows) {
      const key = `${task_id}/${endpoint}#${round}`;
      const before = this.rows.get(key);
      if (before !== undefined && responseRank(status) < responseRank(before)) {
        // the one allowed move: a late result replacing the UNDELIVERED verdict
        if (!(before === 'UNDELIVERED' && ['DONE', 'FAILED', 'TIMED_OUT'].includes(status))) {
          this.note('response', key, before, status);
        }
      }
      this.rows.set(key, status);
    }
  }
}

/**
 * Keys are taskKey(type, identifier). `posted`: every task a client sent (answered or not); `accepted`: those answered 201/200.
 * A task a client sent but never heard back about may exist or not; one never sent must not.
 */
export async function check(
  db: Db,
  posted: ReadonlySet<string>,
  accepted: ReadonlySet<string>,
  observer: Observer,
): Promise<Verdict> {
  const examples = [...observer.examples];
  const rows = (await db('tasks').select('type', 'identifier', 'status')) as Array<{
    type: string;
    identifier: string;
    status: string;
  }>;
  const stored = rows.map((t) => ({ key: taskKey(t.type, t.identifier), status: t.status }));
  const byIdentifier = new Map(stored.map((t) => [t.key, t.status]));
  let lost = 0;
  for (const identifier of accepted) {
    const status = byIdentifier.get(identifier);
    if (status === undefined || TASK_RANK[status] !== 2) {
      lost += 1;
      if (examples.length < 10) examples.push(`lost ${identifier}: ${status ?? 'missing'}`);
    }
  }
  const unexpected = stored.filter((t) => !posted.has(t.key));
  for (const t of unexpected.slice(0, 3)) examples.push(`unexpected ${t.key}`);
  const dup = (await db('task_responses')
    .select('task_id', 'endpoint')
    .count({ n: '*' })
    .groupBy('task_id', 'endpoint')
    .having(db.raw('count(*) > 1'))) as unknown[];
  return {
    accepted: accepted.size,
    lost,
    unexpected: unexpected.length,
    duplicates: dup.length,
    backwards: observer.backwards,
    examples,
  };
}
