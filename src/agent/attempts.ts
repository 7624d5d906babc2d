/**
 * Counts the runs of each task on this endpoint in an append-only journal under the state
 * directory, so the count survives the agent being killed by the handler it runs. That is what
 * bounds a poison task that crashes the agent every time: RabbitMQ's classic queues count
 * nothing, and their `redelivered` flag does not tell a task that ran from one that only waited
 * in the agent's prefetch.
 *
 * One line per run start, `<task id> <created_at> <expires_at> <count>`, written with one
 * synchronous append to a file kept open. Finished tasks are forgotten in memory; the file is
 * rewritten with what is still open every few thousand lines, and on open. An entry is kept
 * until its task message expires (its delivery deadline plus its execution timeout): until then
 * a redelivery may come, and the journal is also what tells the agent that this endpoint started
 * the task before its delivery deadline, so it may run it again after a crash.
 */
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export interface CountedTask {
  id: number;
  created_at: string;
  /** when the task message expires: no redelivery comes after it */
  expires_at: string;
}

interface Entry {
  createdAt: string;
  expiresAt: string;
  count: number;
}

const COMPACT_AFTER_LINES = 5000;
/** journals open in this process: two agents sharing one would overwrite each other's counts */
const OPEN_HERE = new Set<string>();

export class AttemptJournal {
  private readonly file: string;
  private entries = new Map<number, Entry>();
  private fd: number | null = null;
  private linesSinceCompaction = 0;

  constructor(private readonly dir: string) {
    this.file = join(dir, 'attempts.journal');
  }

  /** Open the journal now, so a state directory in use fails at start rather than per task. */
  open(): void {
    this.ensureOpen();
  }

  /** Load what an earlier process left, rewrite it without expired tasks, keep it open. */
  private ensureOpen(): number {
    if (this.fd !== null) return this.fd;
    if (OPEN_HERE.has(this.file)) {
      throw new Error(
        `${this.file} is already in use by another agent of this process: ` +
          'give each agent of an endpoint its own agent.state_dir',
      );
    }
    mkdirSync(this.dir, { recursive: true });
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
    }
    for (const line of text.split('\n')) {
      const [id, createdAt, expiresAt, count] = line.split(' ');
      const taskId = Number(id);
      const runs = Number(count);
      if (!Number.isSafeInteger(taskId) || !Number.isSafeInteger(runs) || runs < 1) continue;
      if (createdAt === undefined || expiresAt === undefined) continue;
      this.entries.set(taskId, { createdAt, expiresAt, count: runs });
    }
    const fd = this.compact();
    OPEN_HERE.add(this.file);
    return fd;
  }

  /** Rewrite the file with what is still open; the old descriptor stays usable if this fails. */
  private compact(): number {
    const now = Date.now();
    const kept = new Map<number, Entry>();
    let text = '';
    for (const [id, entry] of this.entries) {
      if (Date.parse(entry.expiresAt) <= now) continue;
      kept.set(id, entry);
      text += line(id, entry);
    }
    const temp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temp, text);
    renameSync(temp, this.file);
    const fd = openSync(this.file, 'a');
    if (this.fd !== null) closeSync(this.fd);
    this.fd = fd;
    this.entries = kept;
    this.linesSinceCompaction = 0;
    return fd;
  }

  /**
   * Record that a run of `task` starts, and return its number. A first delivery (not
   * `redelivered`) is run 1 whatever was recorded before; a redelivery continues the count of
   * runs that started, so a task that only waited in the prefetch of a crashed agent is 1 too.
   * An entry for another task with the same id (a database recreated under the same state
   * directory) is told apart by its creation time.
   */
  start(task: CountedTask, redelivered: boolean): number {
    const fd = this.ensureOpen();
    const known = this.entries.get(task.id);
    const before = redelivered && known?.createdAt === task.created_at ? known.count : 0;
    const entry: Entry = {
      createdAt: task.created_at,
      expiresAt: task.expires_at,
      count: before + 1,
    };
    this.entries.set(task.id, entry);
    // No fsync: the count must survive the agent process dying, which the page cache does;
    // losing it to a power cut only gives a poison task a few more tries.
    writeSync(fd, line(task.id, entry));
    this.linesSinceCompaction += 1;
    if (this.linesSinceCompaction >= Math.max(COMPACT_AFTER_LINES, 2 * this.entries.size)) {
      this.compact();
    }
    return entry.count;
  }

  /** Whether a run of this task started here before (and was not finished and acked since). */
  hasStarted(task: Pick<CountedTask, 'id' | 'created_at'>): boolean {
    this.ensureOpen();
    return this.entries.get(task.id)?.createdAt === task.created_at;
  }

  /** The task is finished and acked: forget its count. */
  clear(taskId: number): void {
    this.entries.delete(taskId);
  }

  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
    OPEN_HERE.delete(this.file);
  }
}

function line(id: number, entry: Entry): string {
  return `${id} ${entry.createdAt} ${entry.expiresAt} ${entry.count}\n`;
}
