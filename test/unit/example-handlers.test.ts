/**
 * The example handlers in handlers/ are what users copy: they must behave as the original
 * tasker's did and be clean (stop when aborted, leave no listener behind).
 */
import { getEventListeners } from 'node:events';
import { handle_task as backup } from '../../handlers/backup';
import { handle_task as worker } from '../../handlers/worker';
import type { HandlerContext, HandlerResponse, HandlerTask } from '../../src';
import { silentLogger } from '../../src/log';

function task(payload: unknown): HandlerTask {
  return {
    id: 1,
    identifier: 't1',
    type: 'worker',
    payload,
    endpoints: null,
    created_at: new Date().toISOString(),
    deliver_by: new Date().toISOString(),
  };
}

function context(signal: AbortSignal, progress: unknown[][] = []): HandlerContext {
  return {
    endpoint: 'e1',
    attempt: 1,
    log: silentLogger,
    signal,
    progress: (...args) => void progress.push(args),
  };
}

const response = (): HandlerResponse => ({ payload: null, errnr: 0, errmsg: null });

describe('handlers/worker', () => {
  it('reports progress each step and answers the original payload', async () => {
    const progress: unknown[][] = [];
    const controller = new AbortController();
    const result = await worker(
      task({ seconds: 0.05 }),
      response(),
      context(controller.signal, progress),
    );
    expect(result).toEqual({ payload: { yiya: 'yippie', yeah: 1234123 }, errnr: 0, errmsg: null });
    expect(progress).toEqual([[1, 1, 'step 1 of 1']]);
  });

  it('leaves no abort listener behind, however many steps it takes', async () => {
    // it once added one a step and never removed it: past 10, Node warned of a leak
    const controller = new AbortController();
    const { signal } = controller;
    const counts: number[] = [];
    await worker(task({ seconds: 1.2 }), response(), {
      ...context(signal),
      progress: () => void counts.push(getEventListeners(signal, 'abort').length),
    });
    expect(counts).toEqual([0, 0]);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('stops at once when aborted', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const running = worker(task({ seconds: 20 }), response(), context(controller.signal));
    setTimeout(() => controller.abort(new Error('cancelled')), 50);
    await expect(running).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('handlers/backup', () => {
  it('fails as the original example does', async () => {
    const result = await backup(task(null), response(), context(new AbortController().signal));
    expect(result).toEqual({ payload: null, errnr: 32, errmsg: 'could not backup!' });
  });
});
