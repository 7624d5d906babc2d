/**
 * Counts deliveries of each task to this endpoint in small files under the state directory, so
 * the count survives the agent being killed by the handler it runs. That is what bounds a
 * poison task that crashes the agent every time: RabbitMQ's classic queues count nothing.
 */
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export class DeliveryCounter {
  private ready: Promise<void> | null = null;

  constructor(private readonly dir: string) {}

  private file(taskId: number): string {
    return join(this.dir, `task-${taskId}.count`);
  }

  private ensureDir(): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true }).then(() => undefined);
    return this.ready;
  }

  /**
   * Record one more delivery and return the count. A first delivery (not `redelivered`) starts
   * again at 1, whatever an older run left behind.
   */
  async next(taskId: number, redelivered: boolean): Promise<number> {
    await this.ensureDir();
    let count = 0;
    if (redelivered) {
      try {
        count = Number.parseInt(await readFile(this.file(taskId), 'utf8'), 10) || 0;
      } catch {
        count = 0;
      }
    }
    count += 1;
    // No fsync: the count must survive the agent process dying, which the page cache does;
    // losing it to a power cut only gives a poison task a few more tries.
    await writeFile(this.file(taskId), String(count));
    return count;
  }

  async clear(taskId: number): Promise<void> {
    try {
      await unlink(this.file(taskId));
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
    }
  }
}
