/**
 * A value read at scrape time, kept for a short while: scrapes close together (several
 * Prometheus servers, a dashboard's refresh) share one read, and a scrape never waits longer
 * than `timeoutMs` for it. A read that failed or took too long gives null, and is kept as such
 * for the same while, so that a database that is away is not asked again by every scrape.
 */
export class CachedProbe<T> {
  private last: { at: number; value: Promise<T | null> } | null = null;

  constructor(
    private readonly read: () => Promise<T>,
    private readonly options: { ttlMs: number; timeoutMs: number; now?: () => number },
  ) {}

  get(): Promise<T | null> {
    const now = (this.options.now ?? Date.now)();
    if (this.last !== null && now - this.last.at < this.options.ttlMs) return this.last.value;
    const value = this.readWithin(this.options.timeoutMs);
    this.last = { at: now, value };
    return value;
  }

  private async readWithin(timeoutMs: number): Promise<T | null> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs).unref();
    });
    const read = this.read().catch(() => null);
    try {
      return await Promise.race([read, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}
