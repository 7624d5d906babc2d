/**
 * Part of the soak phase: what a run costs an agent by the kind of its handler. One real Agent
 * on the in-process broker runs N tasks with the JavaScript no-op inline, the same in the
 * sandbox, and the command `/bin/true`; the CPU of this process and its children (the sandbox's
 * processes, each command) per task, and tasks/s.
 */
import { HandlerSandbox, inlineRunner, withCommands, type HandlerRunner } from '../../src/agent';
import { silentLogger } from '../../src/log';
import { sleep } from '../../test/support/waiting';
import { cpuSeconds } from '../lib/cpu-meter';
import { HANDLERS_DIR } from '../lib/run-resources';
import { rate } from '../lib/stats';
import { startLoneAgent, taskMessage } from './soak';
import { join } from 'node:path';

const TYPE = 'noop';

export interface HandlerCost {
  handler: string;
  tasks: number;
  tasks_per_s: number;
  /** this process (agent and broker) and its children (handler processes), per task */
  cpu_ms_per_task: number;
}

async function runThrough(
  runner: HandlerRunner,
  tasks: number,
  concurrency: number,
  timeoutMs: number,
): Promise<{ elapsedMs: number; cpuS: number }> {
  const lone = await startLoneAgent(runner, { concurrency, prefetch: concurrency * 4 });
  try {
    const cpuBefore = cpuSeconds(process.pid) ?? 0;
    const started = performance.now();
    for (let id = 1; id <= tasks; id += 1) await lone.broker.publishTask(taskMessage(id));
    const deadline = Date.now() + timeoutMs;
    while (lone.finished() < tasks) {
      if (Date.now() > deadline)
        throw new Error(`${lone.finished()} of ${tasks} tasks in ${timeoutMs} ms`);
      await sleep(5);
    }
    const elapsedMs = performance.now() - started;
    return { elapsedMs, cpuS: (cpuSeconds(process.pid) ?? 0) - cpuBefore };
  } finally {
    await lone.close();
  }
}

export async function handlerCosts(options: {
  tasks: number;
  concurrency: number;
  timeoutMs: number;
  progress: (line: string) => void;
}): Promise<HandlerCost[]> {
  const kinds: Array<[string, () => Promise<HandlerRunner>]> = [
    [
      'JavaScript no-op, inline',
      () => Promise.resolve(inlineRunner(new Map([[TYPE, (_t, r) => r]]))),
    ],
    [
      'JavaScript no-op, sandboxed',
      () =>
        HandlerSandbox.start({
          files: new Map([[TYPE, join(HANDLERS_DIR, 'noop.js')]]),
          size: options.concurrency,
          killGraceMs: 5000,
          log: silentLogger,
        }),
    ],
    [
      'command /bin/true',
      () =>
        Promise.resolve(
          withCommands(
            {
              commands: new Map([
                [TYPE, { command: ['/bin/true'], cwd: null, env: {}, timeoutMs: null }],
              ]),
              versions: new Map(),
              killGraceMs: 5000,
            },
            inlineRunner(new Map()),
          ),
        ),
    ],
  ];
  const costs: HandlerCost[] = [];
  for (const [handler, start] of kinds) {
    options.progress(`handler cost: ${options.tasks} tasks, ${handler}`);
    const runner = await start();
    try {
      // a warm-up of a tenth, then the measured run
      await runThrough(
        runner,
        Math.ceil(options.tasks / 10),
        options.concurrency,
        options.timeoutMs,
      );
      const { elapsedMs, cpuS } = await runThrough(
        runner,
        options.tasks,
        options.concurrency,
        options.timeoutMs,
      );
      costs.push({
        handler,
        tasks: options.tasks,
        tasks_per_s: rate(options.tasks, elapsedMs),
        cpu_ms_per_task: Math.round((cpuS * 1000 * 1000) / options.tasks) / 1000,
      });
    } finally {
      await runner.close();
    }
  }
  return costs;
}
