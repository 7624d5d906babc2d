/**
 * Counts deliveries of each task to this endpoint in small files under the state directory, so
 * the count survives the agent being killed by the handler it runs. That is what bounds a
 * poison task that crashes the agent every time: RabbitMQ's classic queues count nothing.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
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
    await writeFile(this.file(taskId), String(count), { flush: true });
    return count;
  }

  async clear(taskId: number): Promise<void> {
    await rm(this.file(taskId), { force: true });
  }
}
