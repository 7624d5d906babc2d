/**
 * The attempt journal that bounds a task which crashes its agent: kept in a file so it outlives
 * the process, counting runs that started (not deliveries that only waited in the prefetch).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttemptJournal } from '../../src/agent/attempts';

const future = new Date(Date.now() + 3_600_000).toISOString();
const task = (id: number, createdAt = '2026-11-23T10:00:00.000Z', round = 1) => ({
  id,
  round,
  created_at: createdAt,
  expires_at: future,
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tasker-attempts-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const journalLines = (): string[] =>
  readFileSync(join(dir, 'attempts.journal'), 'utf8').split('\n').filter(Boolean);

describe('AttemptJournal', () => {
  it("counts a retry's new round afresh, and reads lines written before rounds as round 1", () => {
    writeFileSync(join(dir, 'attempts.journal'), `4 2026-11-23T10:00:00.000Z ${future} 2\n`);
    const journal = new AttemptJournal(dir);
    expect(journal.hasStarted(task(4))).toBe(true);
    expect(journal.hasStarted(task(4, undefined, 2))).toBe(false);
    expect(journal.start(task(4, undefined, 2), false)).toBe(1);
    expect(journal.start(task(4), true)).toBe(3);
    journal.close();
  });

  it('counts runs across processes: a crashed run counts, a finished task is forgotten', () => {
    const first = new AttemptJournal(dir);
    expect(first.start(task(7), false)).toBe(1);
    expect(first.start(task(8), false)).toBe(1);
    first.clear(task(8));
    // the process dies (its writes are in the file already); task 7 goes to the next one
    first.close();
    const second = new AttemptJournal(dir);
    expect(second.start(task(7), true)).toBe(2);
    second.close();
    const third = new AttemptJournal(dir);
    expect(third.start(task(7), true)).toBe(3);
    third.clear(task(7));
    expect(third.start(task(7), true)).toBe(1);
    third.close();
  });

  it('counts a redelivered task that never started (it only waited in the prefetch) as run 1', () => {
    const first = new AttemptJournal(dir);
    expect(first.start(task(1), false)).toBe(1);
    first.close();
    const second = new AttemptJournal(dir);
    expect(second.start(task(2), true)).toBe(1);
    expect(second.start(task(1), true)).toBe(2);
    second.close();
  });

  it('starts a first delivery at 1 and ignores another task that had the same id', () => {
    const first = new AttemptJournal(dir);
    first.start(task(9, '2026-01-01T00:00:00.000Z'), false);
    first.start(task(9, '2026-01-01T00:00:00.000Z'), true);
    first.close();
    const second = new AttemptJournal(dir);
    expect(second.start(task(9), true)).toBe(1);
    expect(second.start(task(9), false)).toBe(1);
    second.close();
  });

  it('drops expired and unreadable entries when it opens', () => {
    mkdirSync(dir, { recursive: true });
    const past = new Date(Date.now() - 1000).toISOString();
    writeFileSync(
      join(dir, 'attempts.journal'),
      `1 2026-11-23T10:00:00.000Z ${past} 3\n` +
        `2 2026-11-23T10:00:00.000Z ${future} 2\n` +
        'garbage\n' +
        `3 2026-11-23T10:00:00.000Z ${future} x\n` +
        `4 2026-11-23T10:00:00.000Z`,
    );
    const journal = new AttemptJournal(dir);
    expect(journal.start(task(2), true)).toBe(3);
    expect(journal.start(task(1), true)).toBe(1);
    expect(journal.start(task(3), true)).toBe(1);
    journal.close();
    expect(journalLines().map((l) => l.split(' ')[0])).toEqual(['2', '2', '1', '3']);
  });

  it('rewrites itself so the file stays as small as what is still open', () => {
    const journal = new AttemptJournal(dir);
    for (let id = 1; id <= 12_000; id += 1) {
      journal.start(task(id), false);
      if (id !== 5) journal.clear(task(id));
    }
    journal.close();
    expect(journalLines().length).toBeLessThan(5000);
    expect(new AttemptJournal(dir).start(task(5), true)).toBe(2);
  });

  it('refuses a second agent of this process on the same journal', () => {
    const first = new AttemptJournal(dir);
    first.start(task(1), false);
    expect(() => new AttemptJournal(dir).start(task(2), false)).toThrow(/own agent.state_dir/);
    first.close();
    const next = new AttemptJournal(dir);
    expect(next.start(task(1), true)).toBe(2);
    next.close();
  });
});
