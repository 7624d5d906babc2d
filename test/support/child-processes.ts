/**
 * Real child processes for the tests and the bench: the built `tasker` CLI (or another script of
 * the build) run by node, its output kept for assertions and error messages (and written to a
 * file for a long bench run), stopped with a signal and, if asked, SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { findPackageRoot } from '../../src/package';
import { freePort } from './ports';
import { sleep } from './waiting';

/** The repository, from test/support under ts-jest as from dist/test/support in the bench. */
export const ROOT = findPackageRoot();
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

export function assertBuilt(): void {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`);
}

/** The environment for a child, without any TASKER_* of the caller's. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('TASKER_')) env[key] = value;
  }
  return { ...env, ...extra };
}

export interface Child {
  /** for messages: `tasker <command>` unless named otherwise */
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  /** what it printed on stdout and stderr (with `keepOutput`, the last that many characters) */
  output(): string;
  /** resolves once it printed `text`; fails if it ends first, or after `timeoutMs` */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /**
   * Send `signal` (SIGTERM) and wait for the exit; resolves to the exit code (null after a
   * signal). With `killAfterMs` (by default the start option's), SIGKILL if it is still running
   * then.
   */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<number | null>;
  /** resolves to the exit code (null after a signal) once it exits by itself */
  exited(): Promise<number | null>;
}

export interface StartOptions {
  name?: string;
  /** default: childEnv() */
  env?: NodeJS.ProcessEnv;
  /** default: the repository */
  cwd?: string;
  /** node flags before the script */
  nodeArgs?: string[];
  /** also write everything it prints to this file */
  logFile?: string;
  /** keep only the last this many characters of output in memory */
  keepOutput?: number;
  /** what stop() waits before SIGKILL when not told; without it, stop() waits for good */
  killAfterMs?: number;
  /** lead a process group of its own, as a shell's job does, so a test can signal the group */
  detached?: boolean;
}

const running = (child: ChildProcess): boolean =>
  child.exitCode === null && child.signalCode === null;

/** Run `node [nodeArgs] script args…`. */
export function startNode(script: string, args: string[], options: StartOptions = {}): Child {
  const name = options.name ?? script;
  const proc = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached === true,
  });
  if (proc.pid === undefined) throw new Error(`could not start ${name}`);
  const log = options.logFile === undefined ? null : createWriteStream(options.logFile);
  let output = '';
  let closed = false;
  // each waiter sees the kept output plus the new chunk, so that a line split across two
  // chunks is found even where only the last few KB are kept
  const waiters = new Set<(seen: string) => void>();
  const take = (chunk: Buffer): void => {
    log?.write(chunk);
    const seen = output + chunk.toString();
    output = options.keepOutput === undefined ? seen : seen.slice(-options.keepOutput);
    for (const waiter of [...waiters]) waiter(seen);
  };
  proc.stdout?.on('data', take);
  proc.stderr?.on('data', take);
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code) => {
      log?.end();
      resolve(code);
    }),
  );
  // 'close' comes after the exit and the last of its output
  const ended: Array<() => void> = [];
  proc.once('close', () => {
    closed = true;
    for (const end of ended.splice(0)) end();
  });
  return {
    name,
    process: proc,
    pid: proc.pid,
    output: () => output,
    waitForOutput: (text, timeoutMs = 15_000) =>
      new Promise<void>((resolve, reject) => {
        if (output.includes(text)) return resolve();
        const fail = (why: string): void => {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`${name}: ${why} before printing "${text}":\n${output}`));
        };
        const check = (seen: string): void => {
          if (!seen.includes(text)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => fail(`${timeoutMs} ms passed`), timeoutMs);
        const exitedEarly = (): void =>
          fail(`exited (${proc.exitCode ?? proc.signalCode ?? 'unknown'})`);
        if (closed) return exitedEarly();
        waiters.add(check);
        ended.push(() => {
          if (waiters.has(check)) exitedEarly();
        });
      }),
    stop: async (signal = 'SIGTERM', killAfterMs = options.killAfterMs) => {
      if (running(proc)) {
        proc.kill(signal);
        if (killAfterMs !== undefined) {
          const timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
          await exited;
          clearTimeout(timer);
        }
      }
      return exited;
    },
    exited: () => exited,
  };
}

/** Start the built CLI: `tasker <args…>`. */
export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = childEnv(),
  cwd: string = ROOT,
): Child {
  return startNode(CLI, args, { name: `tasker ${args[0] ?? ''}`.trim(), env, cwd });
}

/**
 * Start `tasker server <args…>` on a free port of 127.0.0.1 and wait until it is ready: the
 * process and its base URL.
 */
export async function startServerCli(args: string[]): Promise<{ server: Child; url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = startCli(['server', ...args, '--port', String(port)]);
  await waitForHttp(`${url}/readyz`, server);
  return { server, url };
}

/** Run the built CLI to its end: its exit code and output. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = childEnv(),
  cwd: string = ROOT,
): Promise<{ code: number | null; output: string }> {
  const child = startCli(args, env, cwd);
  return new Promise((resolve) =>
    child.process.once('exit', (code) => resolve({ code, output: child.output() })),
  );
}

/** Wait until `url` answers 200, or fail with the process output. */
export async function waitForHttp(url: string, child: Child, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!running(child.process)) {
      throw new Error(
        `${child.name} exited early (${child.process.exitCode ?? child.process.signalCode}):\n` +
          child.output(),
      );
    }
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms:\n${child.output()}`);
}
