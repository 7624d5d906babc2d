/**
 * Child processes of a run (the tasker server, agents, agent hosts): started with their output
 * in a log file, tracked so that every exit path (end, exception, Ctrl-C) stops them, and
 * measured (peak RSS from /proc).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { RESULTS_DIR, ROOT } from './env';

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** the last few KB of output, for error messages */
  tail(): string;
  /** resolves once stdout contains `text` */
  waitForOutput(text: string, timeoutMs: number): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves on exit */
  stop(graceMs?: number): Promise<void>;
}

const children = new Set<Child>();
export const LOG_DIR = join(RESULTS_DIR, 'logs');

/** The environment for a child, without any TASKER_* of the caller's. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('TASKER_')) env[key] = value;
  }
  return env;
}

/** Run `node [nodeArgs] script args…` with its output going to bench/results/logs/<name>.log. */
export function startNode(
  name: string,
  script: string,
  args: string[],
  nodeArgs: string[] = [],
): Child {
  mkdirSync(LOG_DIR, { recursive: true });
  const logFile = join(LOG_DIR, `${name}.log`);
  const log = createWriteStream(logFile);
  const proc = spawn(process.execPath, [...nodeArgs, script, ...args], {
    cwd: ROOT,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (proc.pid === undefined) throw new Error(`could not start ${name}`);
  let tail = '';
  let stdout = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString()).slice(-4000);
    log.write(chunk);
  };
  proc.stdout?.on('data', (chunk: Buffer) => {
    stdout = (stdout + chunk.toString()).slice(-4000);
    keep(chunk);
  });
  proc.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) =>
    proc.once('exit', () => {
      log.end();
      resolve();
    }),
  );
  const running = (): boolean => proc.exitCode === null && proc.signalCode === null;
  const child: Child = {
    name,
    process: proc,
    pid: proc.pid,
    logFile,
    tail: () => tail,
    waitForOutput: async (text, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      while (!stdout.includes(text)) {
        if (!running()) throw new Error(`${name} exited early (${proc.exitCode}):\n${tail}`);
        if (Date.now() > deadline) throw new Error(`${name}: no "${text}" in ${timeoutMs} ms`);
        await sleep(50);
      }
    },
    stop: async (graceMs = 10_000) => {
      if (running()) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      await exited;
      children.delete(child);
    },
  };
  children.add(child);
  return child;
}

/** Stop every child still running (exception or Ctrl-C paths). */
export async function stopAll(graceMs = 5000): Promise<void> {
  await Promise.all([...children].map((child) => child.stop(graceMs)));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Wait until `url` answers 200, or fail with the child's output. */
export async function waitForHttp(url: string, child: Child, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null) {
      throw new Error(`${child.name} exited early (${child.process.exitCode}):\n${child.tail()}`);
    }
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms:\n${child.tail()}`);
}
