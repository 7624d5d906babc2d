/**
 * Running the built `tasker` CLI as real child processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..', '..');
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
  process: ChildProcess;
  output(): string;
  /** SIGTERM and wait for exit; returns the exit code */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = childEnv(),
  cwd: string = ROOT,
): Child {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return {
    process: child,
    output: () => output,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

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

/**
 * A port to give a server process started later. Not one the kernel picks (port 0): those come
 * from the ephemeral range, where any outgoing connection made meanwhile (the database, the
 * broker, curl) could take it first. Below that range only listeners compete, and the port was
 * free a moment ago.
 */
export async function freePort(): Promise<number> {
  const below = ephemeralLow();
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * (below - 10_000));
    if (await canListen(port)) return port;
  }
}

/** Where Linux starts picking ports for outgoing connections (32768 by default). */
function ephemeralLow(): number {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    return low > 11_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Wait until `url` answers 200, or fail with the process output. */
export async function waitForHttp(url: string, child: Child, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null)
      throw new Error(`process exited early:\n${child.output()}`);
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not come up in ${timeoutMs} ms:\n${child.output()}`);
}

/** Wait until the output contains `text`. */
export async function waitForOutput(child: Child, text: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!child.output().includes(text)) {
    if (child.process.exitCode !== null)
      throw new Error(`process exited early:\n${child.output()}`);
    if (Date.now() > deadline)
      throw new Error(`no "${text}" within ${timeoutMs} ms:\n${child.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
