/**
 * The run's child processes (the tasker server, agents, agent hosts): started through the tests'
 * child-processes module with their output in bench/results/logs/<name>.log, tracked so that
 * every exit path (end, exception, Ctrl-C) stops them, and measured (peak RSS from /proc).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNode, type Child } from '../../test/support/child-processes';
import { RESULTS_DIR } from './run-resources';

export const LOG_DIR = join(RESULTS_DIR, 'logs');
/** what stop() gives a process to drain before SIGKILL */
const STOP_GRACE_MS = 10_000;
/** output kept in memory for error messages; the whole of it is in the log file */
const KEEP_OUTPUT = 4000;

const running = new Set<Child>();

/** Run `node [nodeArgs] script args…` with its output going to bench/results/logs/<name>.log. */
export function startLogged(
  name: string,
  script: string,
  args: string[],
  nodeArgs: string[] = [],
): Child {
  mkdirSync(LOG_DIR, { recursive: true });
  const child = startNode(script, args, {
    name,
    nodeArgs,
    logFile: join(LOG_DIR, `${name}.log`),
    keepOutput: KEEP_OUTPUT,
    killAfterMs: STOP_GRACE_MS,
  });
  running.add(child);
  child.process.once('exit', () => running.delete(child));
  return child;
}

/** Stop every child still running (exception or Ctrl-C paths). */
export async function stopAll(graceMs = 5000): Promise<void> {
  await Promise.all([...running].map((child) => child.stop('SIGTERM', graceMs)));
}

/** Peak resident set size of a live process, in bytes (VmHWM), or null once it is gone. */
export function peakRss(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return match === null ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}
