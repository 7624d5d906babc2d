/**
 * The delivery counter that bounds a task which crashes its agent: kept in files so it outlives
 * the process, and written only for redeliveries.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliveryCounter } from '../../src/agent/attempts';

const AT = '2026-11-23T10:00:00.000Z';
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tasker-attempts-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const files = (): string[] => (existsSync(dir) ? readdirSync(dir) : []);

describe('DeliveryCounter', () => {
  it('counts a first delivery as 1 without touching the disk', async () => {
    const counter = new DeliveryCounter(join(dir, 'e1'));
    expect(await counter.next(7, false, AT)).toBe(1);
    expect(existsSync(join(dir, 'e1'))).toBe(false);
    await counter.clear(7);
  });

  it('counts redeliveries across processes and forgets a task once cleared', async () => {
    const first = new DeliveryCounter(dir);
    expect(await first.next(7, false, AT)).toBe(1);
    // the agent died; the broker redelivers to the next process
    const second = new DeliveryCounter(dir);
    expect(await second.next(7, true, AT)).toBe(2);
    expect(files()).toEqual(['task-7.count']);
    const third = new DeliveryCounter(dir);
    expect(await third.next(7, true, AT)).toBe(3);
    expect(await third.next(7, true, AT)).toBe(4);
    await third.clear(7);
    expect(files()).toEqual([]);
  });

  it('ignores a count left by another task with the same id', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'task-9.count'), '2026-01-01T00:00:00.000Z 4');
    const counter = new DeliveryCounter(dir);
    expect(await counter.next(9, false, AT)).toBe(1);
    expect(await counter.next(9, true, AT)).toBe(2);
    expect(await counter.next(9, true, AT)).toBe(3);
  });
});
