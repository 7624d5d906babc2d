/**
 * Group commit: what arrives while a write is in flight waits, and goes with the next write as
 * one group, the way InnoDB groups commits. An idle caller's item is written at once; a busy one
 * pays one round trip (and one fsync, one confirm) per group instead of one per item. Used for
 * accepting tasks, marking them SENT, sending an agent's result events and handing the
 * recorder its batches.
 */

export interface GroupCommitOptions<T> {
  /** groups written at the same time (1) */
  parallel?: number;
  /**
   * How long the first waiting item may wait for others before a partial group goes (0: it goes
   * as soon as a write slot is free). With `maxItems`, a full group goes at once.
   */
  lingerMs?: number;
  /** the most items in one group, when `take` does not choose (no limit) */
  maxItems?: number;
  /**
   * The next group: indexes of waiting items (oldest first) to write together; the others wait
   * for a later group. Default: the first `maxItems`. It must take at least one.
   */
  take?: (waiting: readonly T[]) => readonly number[];
}

/**
 * What a write answers for its group: nothing (every item done), or one settled result per
 * item, in the group's order (one item's failure need not be another's).
 */
export type GroupResults<R> = void | ReadonlyArray<PromiseSettledResult<R>>;

interface Waiting<T, R> {
  item: T;
  since: number;
  resolve: (value: R) => void;
  reject: (reason: unknown) => void;
}

export class GroupCommit<T, R = void> {
  private waiting: Array<Waiting<T, R>> = [];
  private active = 0;
  private timer: NodeJS.Timeout | null = null;
  private idle: Array<() => void> = [];
  /** draining: partial groups go without lingering */
  private flushing = false;
  private readonly parallel: number;
  private readonly lingerMs: number;
  private readonly maxItems: number;

  constructor(
    private readonly write: (group: T[]) => Promise<GroupResults<R>>,
    private readonly options: GroupCommitOptions<T> = {},
  ) {
    this.parallel = options.parallel ?? 1;
    this.lingerMs = options.lingerMs ?? 0;
    this.maxItems = options.maxItems ?? Infinity;
  }

  /** Items waiting for a write (not those being written). */
  get size(): number {
    return this.waiting.length;
  }

  /** Resolves with the item's result once the group it went with is written. */
  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, since: Date.now(), resolve, reject });
      this.pump();
    });
  }

  /**
   * Forget waiting items that `forget` picks (not those being written): their promises never
   * settle. For items that cannot be written any more, such as deliveries of a closed channel.
   */
  drop(forget: (item: T) => boolean): void {
    this.waiting = this.waiting.filter((entry) => !forget(entry.item));
    this.settleIdle();
  }

  /** Writes what waits without lingering, and resolves once nothing waits and no write runs. */
  drain(): Promise<void> {
    if (this.waiting.length === 0 && this.active === 0) return Promise.resolve();
    const drained = new Promise<void>((resolve) => this.idle.push(resolve));
    this.flushing = true;
    this.pump();
    return drained;
  }

  private pump(): void {
    while (this.active < this.parallel && this.waiting.length > 0) {
      const oldest = this.waiting[0] as Waiting<T, R>;
      const waited = Date.now() - oldest.since;
      if (!this.flushing && this.waiting.length < this.maxItems && waited < this.lingerMs) {
        this.timer ??= setTimeout(() => {
          this.timer = null;
          this.pump();
        }, this.lingerMs - waited);
        return;
      }
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      const group = this.takeGroup();
      this.active += 1;
      void this.run(group).finally(() => {
        this.active -= 1;
        this.pump();
        this.settleIdle();
      });
    }
  }

  private takeGroup(): Array<Waiting<T, R>> {
    const items = this.waiting.map((entry) => entry.item);
    const picked = this.options.take?.(items) ?? items.slice(0, this.maxItems).map((_, i) => i);
    const chosen = new Set(picked.length > 0 ? picked : [0]);
    const group = [...chosen].map((i) => this.waiting[i] as Waiting<T, R>);
    this.waiting = this.waiting.filter((_, i) => !chosen.has(i));
    return group;
  }

  private async run(group: Array<Waiting<T, R>>): Promise<void> {
    let results: GroupResults<R>;
    try {
      results = await this.write(group.map((entry) => entry.item));
    } catch (err) {
      for (const entry of group) entry.reject(err);
      return;
    }
    if (results === undefined) {
      for (const entry of group) entry.resolve(undefined as R);
      return;
    }
    group.forEach((entry, i) => {
      const result = results[i];
      if (result === undefined) {
        entry.reject(new Error(`a group write answered ${results.length} of ${group.length}`));
      } else if (result.status === 'fulfilled') entry.resolve(result.value);
      else entry.reject(result.reason);
    });
  }

  private settleIdle(): void {
    if (this.waiting.length > 0 || this.active > 0) return;
    this.flushing = false;
    for (const resolve of this.idle.splice(0)) resolve();
  }
}
