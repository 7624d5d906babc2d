/**
 * GroupCommit: items that arrive while a write runs go together in the next; an idle caller is
 * written at once; groups follow `take`, `maxItems` and `lingerMs`; each item gets its own result.
 */
import { GroupCommit } from '../../src/batch';

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A write that records its groups and finishes when told to. */
function gatedWrite<T>() {
  const groups: T[][] = [];
  const gates: Array<() => void> = [];
  return {
    groups,
    open: () => gates.shift()?.(),
    write: (group: T[]) => {
      groups.push(group);
      return new Promise<void>((resolve) => gates.push(resolve));
    },
  };
}

describe('GroupCommit', () => {
  it('writes an idle item at once and gathers what arrives meanwhile into the next group', async () => {
    const gate = gatedWrite<number>();
    const commit = new GroupCommit<number>(gate.write);
    const first = commit.add(1);
    await tick();
    expect(gate.groups).toEqual([[1]]);
    const rest = [2, 3, 4].map((n) => commit.add(n));
    await tick();
    expect(gate.groups).toEqual([[1]]);
    expect(commit.size).toBe(3);
    gate.open();
    await first;
    await tick();
    expect(gate.groups).toEqual([[1], [2, 3, 4]]);
    gate.open();
    await Promise.all(rest);
    expect(commit.size).toBe(0);
  });

  it('runs up to `parallel` groups at once', async () => {
    const gate = gatedWrite<number>();
    const commit = new GroupCommit<number>(gate.write, { parallel: 2 });
    const all = [1, 2, 3].map((n) => commit.add(n));
    await tick();
    expect(gate.groups).toEqual([[1], [2]]);
    gate.open();
    await tick();
    expect(gate.groups).toEqual([[1], [2], [3]]);
    gate.open();
    gate.open();
    await Promise.all(all);
  });

  it('cuts groups at maxItems, and lets `take` choose which items go together', async () => {
    const seen: number[][] = [];
    const capped = new GroupCommit<number>(
      async (group) => {
        seen.push(group);
      },
      { maxItems: 2 },
    );
    await Promise.all([1, 2, 3, 4, 5].map((n) => capped.add(n)));
    expect(seen.map((g) => g.length).every((n) => n <= 2)).toBe(true);
    expect(seen.flat().sort()).toEqual([1, 2, 3, 4, 5]);

    const gate = gatedWrite<number>();
    const busy = new GroupCommit<number>(gate.write, {
      // the even ones wait for a later group
      take: (waiting) => waiting.flatMap((n, i) => (n % 2 === 1 ? [i] : [])),
    });
    const first = busy.add(9);
    await tick();
    const later = [1, 2, 3, 4].map((n) => busy.add(n));
    gate.open();
    await first;
    await tick();
    expect(gate.groups).toEqual([[9], [1, 3]]);
    gate.open();
    await tick();
    // nothing odd left: `take` chose none, so the oldest goes alone
    expect(gate.groups).toEqual([[9], [1, 3], [2]]);
    gate.open();
    await tick();
    gate.open();
    await Promise.all(later);
    await busy.drain();
  });

  it('gives each item its own result, or its own failure', async () => {
    const commit = new GroupCommit<number, string>(async (group) =>
      group.map((n) =>
        n < 0
          ? { status: 'rejected' as const, reason: new Error(`bad ${n}`) }
          : { status: 'fulfilled' as const, value: `ok ${n}` },
      ),
    );
    const results = await Promise.allSettled([1, -2, 3].map((n) => commit.add(n)));
    expect(results).toEqual([
      { status: 'fulfilled', value: 'ok 1' },
      { status: 'rejected', reason: new Error('bad -2') },
      { status: 'fulfilled', value: 'ok 3' },
    ]);
  });

  it('fails every item of a group whose write throws, and carries on with the next', async () => {
    let calls = 0;
    const commit = new GroupCommit<number>(async () => {
      calls += 1;
      if (calls === 1) throw new Error('database away');
    });
    await expect(commit.add(1)).rejects.toThrow('database away');
    await expect(commit.add(2)).resolves.toBeUndefined();
  });

  it('refuses a write that answers fewer results than items', async () => {
    let release: () => void = () => undefined;
    const commit = new GroupCommit<number, number>(async (group) => {
      if (group[0] === 0) await new Promise<void>((resolve) => (release = resolve));
      return [{ status: 'fulfilled', value: group[0] as number }];
    });
    const busy = commit.add(0);
    await tick();
    // these two wait for the busy write, then go together and get one answer
    const both = Promise.allSettled([commit.add(1), commit.add(2)]);
    release();
    await busy;
    const [a, b] = await both;
    expect(a).toEqual({ status: 'fulfilled', value: 1 });
    expect(b.status === 'rejected' ? String(b.reason) : b).toMatch(/answered 1 of 2/);
  });

  it('lingers for company up to lingerMs, and sends a full group at once', async () => {
    const seen: Array<{ group: number[]; at: number }> = [];
    const started = Date.now();
    const commit = new GroupCommit<number>(
      async (group) => {
        seen.push({ group, at: Date.now() - started });
      },
      { lingerMs: 150, maxItems: 3 },
    );
    const partial = commit.add(1);
    await tick();
    expect(seen).toEqual([]);
    await partial;
    expect(seen[0]?.group).toEqual([1]);
    expect(seen[0]?.at).toBeGreaterThanOrEqual(140);
    seen.length = 0;
    await Promise.all([4, 5, 6].map((n) => commit.add(n)));
    expect(seen).toEqual([{ group: [4, 5, 6], at: expect.any(Number) }]);
  });

  it('sends a lingering partial group at once when drained', async () => {
    const seen: number[][] = [];
    const commit = new GroupCommit<number>(async (group) => void seen.push(group), {
      lingerMs: 60_000,
      maxItems: 10,
    });
    void commit.add(1);
    void commit.add(2);
    await tick();
    expect(seen).toEqual([]);
    await commit.drain();
    expect(seen).toEqual([[1, 2]]);
  });

  it('drops waiting items it is told to forget, and drains once idle', async () => {
    const gate = gatedWrite<string>();
    const commit = new GroupCommit<string>(gate.write);
    void commit.add('a1');
    await tick();
    void commit.add('b1');
    void commit.add('a2');
    commit.drop((item) => item.startsWith('b'));
    let drained = false;
    const draining = commit.drain().then(() => (drained = true));
    gate.open();
    await tick();
    expect(gate.groups).toEqual([['a1'], ['a2']]);
    expect(drained).toBe(false);
    gate.open();
    await draining;
    expect(drained).toBe(true);
    await expect(commit.drain()).resolves.toBeUndefined();
  });
});
