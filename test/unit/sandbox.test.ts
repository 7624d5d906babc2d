/**
 * The handler sandbox with real child processes: a handler that exits, is killed or blocks its
 * event loop ends only its own run, with an outcome that says what happened; progress and log
 * lines reach the agent; shutdown abandons runs; bad handler files fail at start, naming them.
 * Needs the build (the child runs dist/src/agent/sandbox-child.js); npm test builds first.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HandlerSandbox, type RunRequest } from '../../src/agent';
import type { HandlerTask } from '../../src/agent';
import { TaskerError } from '../../src/domain';
import { createLogger, type Logger } from '../../src/log';

const HANDLERS: Record<string, string> = {
  ok: `exports.handle_task = (task, response) => { response.payload = { echo: task.payload }; return response; };`,
  slow: `exports.handle_task = async (task, response, ctx) => {
    for (let i = 1; i <= 5; i++) {
      await new Promise((r) => setTimeout(r, 150));
      ctx.progress(i, 5, 'step ' + i);
    }
    ctx.log.info('slow done', { steps: 5 });
    response.payload = { pid: process.pid };
  };`,
  exits: `exports.handle_task = () => { console.error('about to exit: disk on fire'); process.exit(3); };`,
  killed: `exports.handle_task = () => { process.kill(process.pid, 'SIGKILL'); return new Promise(() => {}); };`,
  spins: `exports.handle_task = () => { for (;;) {} };`,
  polite: `exports.handle_task = (_t, response, ctx) => new Promise((resolve, reject) => {
    ctx.signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true });
  });`,
  deaf: `exports.handle_task = () => new Promise(() => { setInterval(() => {}, 1000); });`,
  pid: `exports.handle_task = (_t, response) => { response.payload = { pid: process.pid }; };`,
};

let dir: string;
const files = (types: string[]): Map<string, string> =>
  new Map(types.map((type) => [type, join(dir, `${type}.js`)]));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tasker-sandbox-'));
  for (const [type, source] of Object.entries(HANDLERS)) {
    writeFileSync(join(dir, `${type}.js`), `${source}\n`);
  }
  writeFileSync(join(dir, 'noexport.js'), 'exports.other = () => 1;\n');
  writeFileSync(join(dir, 'syntax.js'), 'exports.handle_task = (;\n');
  writeFileSync(join(dir, 'dies.js'), 'process.exit(9);\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sandboxes: HandlerSandbox[] = [];
afterEach(async () => {
  await Promise.all(sandboxes.splice(0).map((sandbox) => sandbox.close()));
});

async function sandbox(types: string[], size = 4, killGraceMs = 500): Promise<HandlerSandbox> {
  const started = await HandlerSandbox.start({
    files: files(types),
    size,
    killGraceMs,
    log: createLogger('error', {}, () => undefined),
  });
  sandboxes.push(started);
  return started;
}

let seq = 0;
interface Seen {
  progress: unknown[][];
  logs: Array<[string, string, Record<string, unknown> | undefined]>;
  output: Array<[string, string]>;
}

function request(
  type: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): { request: RunRequest; seen: Seen } {
  seq += 1;
  const task: HandlerTask = {
    id: seq,
    identifier: `t${seq}`,
    type,
    payload: { n: seq },
    endpoints: null,
    created_at: new Date().toISOString(),
    deliver_by: new Date(Date.now() + 60_000).toISOString(),
  };
  const seen: Seen = { progress: [], logs: [], output: [] };
  const recordingLog = (): Logger => {
    const log: Logger = {
      debug: (msg, fields) => seen.logs.push(['debug', msg, fields]),
      info: (msg, fields) => seen.logs.push(['info', msg, fields]),
      warn: (msg, fields) => seen.logs.push(['warn', msg, fields]),
      error: (msg, fields) => seen.logs.push(['error', msg, fields]),
      child: () => log,
    };
    return log;
  };
  return {
    seen,
    request: {
      task,
      endpoint: 'e1',
      attempt: 1,
      timeoutMs: options.timeoutMs ?? 10_000,
      signal: options.signal ?? new AbortController().signal,
      log: recordingLog(),
      progress: (...args) => seen.progress.push(args),
      output: (stream, line) => seen.output.push([stream, line]),
    },
  };
}

describe('HandlerSandbox', () => {
  it('runs a handler in another process and returns its response', async () => {
    const box = await sandbox(['ok', 'pid']);
    const outcome = await box.run(request('ok').request);
    expect(outcome).toEqual({
      status: 'DONE',
      errnr: 0,
      errmsg: null,
      payload: { echo: { n: seq } },
      abandoned: false,
    });
    const where = await box.run(request('pid').request);
    expect((where.payload as { pid: number }).pid).not.toBe(process.pid);
  });

  it('fails only the run whose handler exits its process, with the exit code and last words', async () => {
    const box = await sandbox(['slow', 'exits']);
    const slow = request('slow');
    const [beside, culprit] = await Promise.all([
      box.run(slow.request),
      box.run(request('exits').request),
    ]);
    expect(culprit).toEqual({
      status: 'FAILED',
      errnr: 3,
      errmsg:
        "the handler's process exited with code 3 before the handler returned; its last words: " +
        'about to exit: disk on fire',
      payload: null,
      abandoned: false,
    });
    expect(beside).toMatchObject({ status: 'DONE', errnr: 0 });
    // progress and ctx.log lines crossed the process boundary
    expect(slow.seen.progress.length).toBeGreaterThanOrEqual(1);
    expect(slow.seen.progress.at(-1)).toEqual([
      expect.any(Number),
      5,
      expect.stringMatching(/^step/),
    ]);
    expect(slow.seen.logs).toContainEqual(['info', 'slow done', { steps: 5 }]);
    // and into the run's output, as the JSON line it is
    expect(slow.seen.output).toHaveLength(1);
    expect(slow.seen.output[0]?.[0]).toBe('log');
    expect(JSON.parse(slow.seen.output[0]?.[1] ?? '')).toMatchObject({
      level: 'info',
      msg: 'slow done',
      steps: 5,
    });
    // and the sandbox carries on with a new process
    expect(await box.run(request('slow').request)).toMatchObject({ status: 'DONE' });
  });

  it('reports a handler process killed by a signal with errnr 128 + the signal', async () => {
    const box = await sandbox(['killed']);
    expect(await box.run(request('killed').request)).toMatchObject({
      status: 'FAILED',
      errnr: 137,
      errmsg: "the handler's process was killed by SIGKILL before the handler returned",
    });
  });

  it('kills a handler that blocks its event loop past the timeout: TIMED_OUT', async () => {
    const box = await sandbox(['spins', 'ok'], 2, 300);
    const started = Date.now();
    const outcome = await box.run(request('spins', { timeoutMs: 300 }).request);
    expect(outcome).toMatchObject({
      status: 'TIMED_OUT',
      errnr: -1,
      errmsg: expect.stringMatching(
        /within the execution timeout of 300 ms nor stop within 300 ms/,
      ),
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    expect(await box.run(request('ok').request)).toMatchObject({ status: 'DONE' });
  });

  it('abandons a run on shutdown: the handler that listens stops, the one that does not is killed', async () => {
    const box = await sandbox(['polite', 'deaf'], 2, 300);
    const shutdown = new AbortController();
    const polite = box.run(request('polite', { signal: shutdown.signal }).request);
    const deaf = box.run(request('deaf', { signal: shutdown.signal }).request);
    await new Promise((resolve) => setTimeout(resolve, 300));
    shutdown.abort(new Error('agent shutting down'));
    expect(await polite).toMatchObject({ abandoned: true });
    expect(await deaf).toMatchObject({ abandoned: true });
  });

  it('runs at most `size` handlers at once; the others wait for a free process', async () => {
    const box = await sandbox(['pid'], 1);
    const outcomes = await Promise.all([1, 2, 3].map(() => box.run(request('pid').request)));
    const pids = new Set(outcomes.map((o) => (o.payload as { pid: number }).pid));
    expect(outcomes.every((o) => o.status === 'DONE')).toBe(true);
    expect(pids.size).toBe(1);
  });

  it('starts one process at a time while runs wait: a burst of short runs needs few', async () => {
    const box = await sandbox(['pid'], 8);
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, () => box.run(request('pid').request)),
    );
    const pids = new Set(outcomes.map((o) => (o.payload as { pid: number }).pid));
    expect(outcomes.every((o) => o.status === 'DONE')).toBe(true);
    expect(pids.size).toBeLessThan(8);
  });

  it('gives up a run still waiting for a process when the agent shuts down', async () => {
    const box = await sandbox(['slow'], 1);
    const shutdown = new AbortController();
    const first = box.run(request('slow').request);
    const waiting = box.run(request('slow', { signal: shutdown.signal }).request);
    shutdown.abort();
    expect(await waiting).toMatchObject({ abandoned: true });
    expect(await first).toMatchObject({ status: 'DONE' });
  });

  it.each([
    ['noexport', /noexport\.js does not export a handle_task function/],
    ['syntax', /syntax\.js failed to load: SyntaxError/],
    ['dies', /exited with code 9 while loading handlers/],
  ])(
    'refuses to start when handler %s cannot be loaded, naming the file',
    async (type, message) => {
      const start = HandlerSandbox.start({
        files: files([type]),
        size: 1,
        killGraceMs: 500,
        log: createLogger('error', {}, () => undefined),
      });
      await expect(start).rejects.toThrow(TaskerError);
      await expect(start).rejects.toThrow(message);
    },
  );
});
