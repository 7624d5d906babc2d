/**
 * Counts the runs of each task on this endpoint in an append-only journal under the state
 * directory, so the count survives the agent being killed by the handler it runs. That is what
 * bounds a poison task that crashes the agent every time: RabbitMQ's classic queues count
 * nothing, and their `redelivered` flag does not tell a task that ran from one that only waited
 * in the agent's prefetch.
 *
 * One line per run start or retry, `<task id> <created_at> <expires_at> <count> <round> <ended>
 * <blocked>`, written with one synchronous append to a file kept open: `count` runs started,
 * `ended` of them ended asking to be retried (so a crash is a run that started and never ended),
 * `blocked` of those were blocked (not counted against the type's retry.max_attempts). Finished tasks are forgotten in memory; the file is
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
  /** a retry's new round is counted afresh */
  round: number;
  created_at: string;
  /** when the task message expires: no redelivery comes after it */
  expires_at: string;
}

interface Entry {
  id: number;
  round: number;
  createdAt: string;
  expiresAt: string;
  count: number;
  ended: number;
  blocked: number;
}

/** The runs of a task counted so far. */
export interface RunCounts {
  started: number;
  /** runs that ended asking to be run again */
  ended: number;
  /** of those, runs that were blocked */
  blocked: number;
}

const COMPACT_AFTER_LINES = 5000;
/** journals open in this process: two agents sharing one would overwrite each other's counts */
const OPEN_HERE = new Set<string>();

export class AttemptJournal {
  private readonly file: string;
  /** by `<task id>:<round>` */
  private entries = new Map<string, Entry>();
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
      // lines from before rounds have no fifth field: round 1; from before retries no sixth
      const [id, createdAt, expiresAt, count, round = '1', ended = '0', blocked = '0'] =
        line.split(' ');
      const taskId = Number(id);
      const runs = Number(count);
      if (!Number.isSafeInteger(taskId) || !Number.isSafeInteger(runs) || runs < 1) continue;
      if (createdAt === undefined || expiresAt === undefined) continue;
      const taskRound = Number(round);
      if (!Number.isSafeInteger(taskRound) || taskRound < 1) continue;
      this.entries.set(keyOf(taskId, taskRound), {
        id: taskId,
        round: taskRound,
        createdAt,
        expiresAt,
        count: runs,
        ended: Number(ended) || 0,
        blocked: Number(blocked) || 0,
      });
    }
    const fd = this.compact();
    OPEN_HERE.add(this.file);
    return fd;
  }

  /** Rewrite the file with what is still open; the old descriptor stays usable if this fails. */
  private compact(): number {
    const now = Date.now();
    const kept = new Map<string, Entry>();
    let text = '';
    for (const [key, entry] of this.entries) {
      if (Date.parse(entry.expiresAt) <= now) continue;
      kept.set(key, entry);
      text += line(entry);
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
   * `redelivered`) is run 1 whatever was recorded before; a redelivery (or a retry of the run
   * before) continues the count of runs that started, so a task that only waited in the
   * prefetch of a crashed agent is 1 too.
   * An entry for another task with the same id (a database recreated under the same state
   * directory) is told apart by its creation time.
   */
  start(task: CountedTask, redelivered: boolean): number {
    this.ensureOpen();
    const key = keyOf(task.id, task.round);
    const known = this.entries.get(key);
    const before = redelivered && known?.createdAt === task.created_at ? known : undefined;
    const entry: Entry = {
      id: task.id,
      round: task.round,
      createdAt: task.created_at,
      expiresAt: task.expires_at,
      count: (before?.count ?? 0) + 1,
      ended: before?.ended ?? 0,
      blocked: before?.blocked ?? 0,
    };
    this.write(key, entry);
    return entry.count;
  }

  /** The run that started last ended asking to be run again (`blocked`: not counted). */
  ended(task: Pick<CountedTask, 'id' | 'round'>, blocked: boolean): void {
    const key = keyOf(task.id, task.round);
    const known = this.entries.get(key);
    if (known === undefined) return;
    this.write(key, {
      ...known,
      ended: known.ended + 1,
      blocked: known.blocked + (blocked ? 1 : 0),
    });
  }

  /** The runs counted of this task (all zero when none). */
  runs(task: Pick<CountedTask, 'id' | 'round' | 'created_at'>): RunCounts {
    this.ensureOpen();
    const known = this.entries.get(keyOf(task.id, task.round));
    if (known === undefined || known.createdAt !== task.created_at) {
      return { started: 0, ended: 0, blocked: 0 };
    }
    return { started: known.count, ended: known.ended, blocked: known.blocked };
  }

  private write(key: string, entry: Entry): void {
    const fd = this.ensureOpen();
    this.entries.set(key, entry);
    // No fsync: the count must survive the agent process dying, which the page cache does;
    // losing it to a power cut only gives a poison task a few more tries.
    writeSync(fd, line(entry));
    this.linesSinceCompaction += 1;
    if (this.linesSinceCompaction >= Math.max(COMPACT_AFTER_LINES, 2 * this.entries.size)) {
      this.compact();
    }
  }

  /** Whether a run of this task started here before (and was not finished and acked since). */
  hasStarted(task: Pick<CountedTask, 'id' | 'round' | 'created_at'>): boolean {
    this.ensureOpen();
    return this.entries.get(keyOf(task.id, task.round))?.createdAt === task.created_at;
  }

  /** The task is finished and acked: forget its count. */
  clear(task: Pick<CountedTask, 'id' | 'round'>): void {
    this.entries.delete(keyOf(task.id, task.round));
  }

  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
    OPEN_HERE.delete(this.file);
  }
}

const keyOf = (id: number, round: number): string => `${id}:${round}`;

function line(entry: Entry): string {
  const { id, createdAt, expiresAt, count, round, ended, blocked } = entry;
  return `${id} ${createdAt} ${expiresAt} ${count} ${round} ${ended} ${blocked}\n`;
}
