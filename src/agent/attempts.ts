/**
 * Counts deliveries of each task to this endpoint in small files under the state directory, so
 * the count survives the agent being killed by the handler it runs. That is what bounds a
 * poison task that crashes the agent every time: RabbitMQ's classic queues count nothing.
 */
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export class DeliveryCounter {
  private ready: Promise<void> | null = null;
  /** tasks whose count file this process wrote */
  private readonly written = new Set<number>();

  constructor(private readonly dir: string) {}

  private file(taskId: number): string {
    return join(this.dir, `task-${taskId}.count`);
  }

  private ensureDir(): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true }).then(() => undefined);
    return this.ready;
  }

  /**
   * Record one more delivery of the task `taskId` created at `createdAt`, and return the count.
   * A first delivery (not `redelivered`) is 1 and writes nothing: only a redelivery can follow a
   * crash, and a redelivered task with no file had been delivered once. So a task that runs
   * once costs no file at all. A file left by another task with the same id (a database
   * recreated under the same state directory) is told apart by its creation time and ignored.
   */
  async next(taskId: number, redelivered: boolean, createdAt: string): Promise<number> {
    if (!redelivered) return 1;
    await this.ensureDir();
    let count = 1;
    try {
      const [stamp, stored] = (await readFile(this.file(taskId), 'utf8')).split(' ');
      if (stamp === createdAt) count = Number.parseInt(stored ?? '', 10) || 1;
    } catch {
      count = 1;
    }
    count += 1;
    // No fsync: the count must survive the agent process dying, which the page cache does;
    // losing it to a power cut only gives a poison task a few more tries.
    await writeFile(this.file(taskId), `${createdAt} ${count}`);
    this.written.add(taskId);
    return count;
  }

  /** Forget a finished task's count (only a count this process wrote has a file to remove). */
  async clear(taskId: number): Promise<void> {
    if (!this.written.delete(taskId)) return;
    try {
      await unlink(this.file(taskId));
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
    }
  }
}
