/**
 * Phase 5: agent soak. One real Agent with a no-op handler against the in-process broker (no
 * network, no database: only the agent's own work) runs N tasks. The heap after a full garbage
 * collection, once warmed up and again after the N tasks, gives the bytes an agent keeps per
 * task it ran: an agent runs for months, and a leak of a few KB a task shows here long before
 * it shows in RSS. Also prints how many tasks a second one agent process manages on its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Agent, type HandleTask } from '../../src/agent';
import { MemoryBroker, type Delivery, type Subscription } from '../../src/broker';
import { WIRE_VERSION, type TaskMessage } from '../../src/domain';
import { silentLogger } from '../../src/log';
import { sleep } from '../lib/proc';
import { rate } from '../lib/stats';

const TYPE = 'noop';
const ENDPOINT = 'soak1';
/** tasks published but not yet finished, at most */
const OUTSTANDING = 500;

export interface SoakPhaseOptions {
  warmupTasks: number;
  tasks: number;
  concurrency: number;
  prefetch: number;
  timeoutMs: number;
  progress: (line: string) => void;
}

export interface SoakPhase {
  tasks: number;
  tasks_per_s: number;
  heap_before_bytes: number;
  heap_after_bytes: number;
  /** (heap after − heap before) / tasks, after a full GC each time */
  heap_bytes_per_task: number;
}

function fullGc(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
}

function taskMessage(id: number): TaskMessage {
  const now = Date.now();
  return {
    v: WIRE_VERSION,
    id,
    identifier: `soak-${id}`,
    type: TYPE,
    payload: { n: id },
    endpoints: [ENDPOINT],
    created_at: new Date(now).toISOString(),
    deliver_by: new Date(now + 600_000).toISOString(),
    execution_timeout_ms: 30_000,
    max_deliveries: 5,
  };
}

export async function soakPhase(options: SoakPhaseOptions): Promise<SoakPhase> {
  const { progress } = options;
  const stateDir = mkdtempSync(join(tmpdir(), 'tasker-soak-'));
  const broker = new MemoryBroker({ prefix: 'soak', log: silentLogger });
  let finished = 0;
  const countFinished = (delivery: Delivery): void => {
    const parsed = JSON.parse(delivery.content.toString()) as unknown;
    const events = (Array.isArray(parsed) ? parsed : [parsed]) as Array<{ event?: unknown }>;
    finished += events.filter((event) => event.event === 'finished').length;
    delivery.ack();
  };
  const noop: HandleTask = (_task, response) => response;
  const agent = new Agent({
    endpoint: ENDPOINT,
    types: [TYPE],
    handlers: new Map([[TYPE, noop]]),
    broker,
    concurrency: options.concurrency,
    prefetch: options.prefetch,
    reportDelayMs: 1000,
    stateDir,
    log: silentLogger,
  });
  let results: Subscription | null = null;
  try {
    await broker.start();
    results = await broker.consumeResults(
      { prefetch: 2000, batchSize: 500, lingerMs: 0 },
      async (deliveries) => {
        for (const delivery of deliveries) countFinished(delivery);
      },
    );
    await agent.start();
    let published = 0;
    const runTo = async (total: number): Promise<number> => {
      const started = performance.now();
      const deadline = Date.now() + options.timeoutMs;
      let nextReport = started + 2000;
      while (finished < total) {
        if (Date.now() > deadline) {
          throw new Error(
            `soak: ${finished} of ${total} tasks finished in ${options.timeoutMs} ms`,
          );
        }
        while (published < total && published - finished < OUTSTANDING) {
          published += 1;
          await broker.publishTask(taskMessage(published));
        }
        await sleep(published < total ? 0 : 5);
        if (performance.now() >= nextReport) {
          nextReport += 2000;
          progress(`  soak: ${finished} tasks finished`);
        }
      }
      return performance.now() - started;
    };
    progress(`soak: warm-up, ${options.warmupTasks} tasks`);
    await runTo(options.warmupTasks);
    fullGc();
    const before = process.memoryUsage().heapUsed;
    progress(`soak: ${options.tasks} tasks through one agent`);
    const elapsed = await runTo(options.warmupTasks + options.tasks);
    fullGc();
    const after = process.memoryUsage().heapUsed;
    return {
      tasks: options.tasks,
      tasks_per_s: rate(options.tasks, elapsed),
      heap_before_bytes: before,
      heap_after_bytes: after,
      heap_bytes_per_task: Math.round((after - before) / options.tasks),
    };
  } finally {
    await agent.close().catch(() => undefined);
    await results?.close().catch(() => undefined);
    await broker.close().catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  }
}
