/**
 * Handler calls run in child processes, one call at a time per child, as BullMQ's sandboxed
 * processors do. A handler that exits, segfaults, runs out of memory or blocks its event loop
 * ends only its own run: that run is FAILED (or TIMED_OUT) with what happened, and the tasks
 * running beside it carry on. Without this, one crashing handler took the agent down with every
 * task it ran, and each of them was counted a failed delivery.
 *
 * Children are kept for later runs. When none is free a run waits for the first to come free;
 * when runs wait and no child has come free for GROW_AFTER_MS, one more is started, one at a
 * time, up to `size` (agents in one process share a sandbox). Starting Node costs some 100 ms
 * of CPU (more on a busy machine), more than most runs take: short runs keep coming free and are served by the
 * processes there are, even a long queue of them; only runs that keep every child busy start
 * more. A run past its execution timeout is aborted inside its
 * child; a child that does not answer within `killGraceMs` after that (or after a shutdown
 * abort) is killed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TaskerError } from '../domain';
import type { Logger } from '../log';
import { findPackageRoot } from '../package';
import { CancelRequest, TIMEOUT_ERRNR, cancelledOutcome, exitErrnr, lastLine } from './run';
import type { Outcome } from './run';
import type { HandlerRunner, RunRequest } from './runner';
import type { ChildMessage, ParentMessage } from './sandbox-protocol';
import { handlerVersions } from './loader';

export interface SandboxOptions {
  /** the handler file of each task type */
  files: ReadonlyMap<string, string>;
  /** children at most: the runs the agents using it may have at once */
  size: number;
  /** after an abort (timeout or shutdown), how long a handler may take to stop before its
   * process is killed */
  killGraceMs: number;
  log: Logger;
}

/** how long the first child may take to import every handler at start */
const LOAD_TIMEOUT_MS = 60_000;
/** how long every child must have stayed busy, with runs waiting, before another is started */
const GROW_AFTER_MS = 1000;
/** the end of a crashed child's stderr kept for the run's errmsg */
const STDERR_TAIL_CHARS = 2000;

interface ActiveRun {
  id: number;
  request: RunRequest;
  /** why the agent killed the child, if it did */
  killedFor: 'timeout' | 'shutdown' | 'cancel' | null;
  settle(outcome: Outcome): void;
}

interface Worker {
  child: ChildProcess;
  /** started and able to take runs */
  ready: boolean;
  run: ActiveRun | null;
  stderrTail: string;
  /** answers the start-up load */
  onLoaded: ((errors: string[], versions: Record<string, string | null>) => void) | null;
}

/** The compiled child script; under ts-jest the sources run, but a child needs the build. */
function childScript(): string {
  const script = __filename.endsWith('.ts')
    ? join(findPackageRoot(), 'dist', 'src', 'agent', 'sandbox-child.js')
    : join(__dirname, 'sandbox-child.js');
  if (!existsSync(script)) {
    throw new Error(`${script} is missing: run "npm run build" first`);
  }
  return script;
}

const describeExit = (code: number | null, signal: NodeJS.Signals | null): string =>
  signal !== null ? `was killed by ${signal}` : `exited with code ${code ?? 'unknown'}`;

export class HandlerSandbox implements HandlerRunner {
  private readonly script = childScript();
  private readonly workers = new Set<Worker>();
  private readonly idle: Worker[] = [];
  /** runs waiting for a child, first come first served, with when they began to wait */
  private readonly waiting: Array<{ since: number; take: (worker: Worker | null) => void }> = [];
  private growTimer: NodeJS.Timeout | null = null;
  /** when a child last came free (or was started) */
  private lastFreed = Date.now();
  /** the child being started, not ready yet */
  private starting: Worker | null = null;
  private nextId = 1;
  private closed = false;
  private handlerVersions: ReadonlyMap<string, string> = new Map();

  private constructor(private readonly options: SandboxOptions) {}

  /** Fork the first child and import every handler in it; fails naming the files that fail. */
  static async start(options: SandboxOptions): Promise<HandlerSandbox> {
    const sandbox = new HandlerSandbox(options);
    const worker = sandbox.spawn();
    let exported: Record<string, string | null> = {};
    const errors = await new Promise<string[]>((resolve) => {
      const timer = setTimeout(
        () => resolve([`handlers did not load within ${LOAD_TIMEOUT_MS} ms`]),
        LOAD_TIMEOUT_MS,
      );
      worker.onLoaded = (found, versions) => {
        clearTimeout(timer);
        exported = versions;
        resolve(found);
      };
      worker.child.once('exit', (code, signal) => {
        clearTimeout(timer);
        const tail = lastLine(worker.stderrTail);
        resolve([
          `the handler process ${describeExit(code, signal)} while loading handlers` +
            (tail === '' ? '' : `: ${tail}`),
        ]);
      });
      sandbox.post(worker, { kind: 'load', files: [...new Set(options.files.values())] });
    });
    worker.onLoaded = null;
    if (errors.length > 0) {
      await sandbox.close();
      throw new TaskerError('handler_invalid', errors.join('; '));
    }
    sandbox.handlerVersions = await handlerVersions(
      options.files,
      new Map(Object.entries(exported)),
    );
    // it said it was ready before it loaded: it is idle now, its modules imported
    return sandbox;
  }

  has(type: string): boolean {
    return this.options.files.has(type);
  }

  versions(): ReadonlyMap<string, string> {
    return this.handlerVersions;
  }

  private spawn(): Worker {
    const child = fork(this.script, [], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // the agent's own flags (an inspector port, say) are not the handler's
      execArgv: [],
    });
    const worker: Worker = { child, ready: false, run: null, stderrTail: '', onLoaded: null };
    this.workers.add(worker);
    child.stdout?.on('data', (chunk: Buffer) => process.stdout.write(chunk));
    child.stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      worker.stderrTail = (worker.stderrTail + chunk.toString()).slice(-STDERR_TAIL_CHARS);
    });
    child.on('message', (message: ChildMessage) => this.onMessage(worker, message));
    child.on('error', (err) => this.options.log.warn('handler process error', { err }));
    child.on('exit', (code, signal) => this.onExit(worker, code, signal));
    return worker;
  }

  private post(worker: Worker, message: ParentMessage): void {
    if (!worker.child.connected) return;
    worker.child.send(message, (err) => {
      // the child is going away; its exit settles the run
      if (err !== null) this.options.log.debug('could not reach a handler process', { err });
    });
  }

  private onMessage(worker: Worker, message: ChildMessage): void {
    if (message.kind === 'ready') {
      worker.ready = true;
      if (this.starting === worker) this.starting = null;
      this.release(worker);
      this.grow();
      return;
    }
    if (message.kind === 'loaded') {
      worker.onLoaded?.(message.errors, message.versions);
      return;
    }
    const run = worker.run;
    if (run === null || run.id !== message.id) return;
    switch (message.kind) {
      case 'progress':
        run.request.progress(message.current, message.total, message.line);
        break;
      case 'log':
        relayLogLine(run.request.log, message.line);
        run.request.output?.('log', message.line.trimEnd());
        break;
      case 'done':
        run.settle(message.outcome);
        break;
    }
  }

  private onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(worker);
    const at = this.idle.indexOf(worker);
    if (at >= 0) this.idle.splice(at, 1);
    if (this.starting === worker) this.starting = null;
    this.grow();
    const run = worker.run;
    if (run === null) return;
    if (run.killedFor === 'shutdown') {
      run.settle(abandoned());
      return;
    }
    if (run.killedFor === 'cancel') {
      const reason: unknown = run.request.signal.reason;
      run.settle(
        cancelledOutcome(
          reason instanceof CancelRequest ? reason.reason : 'cancelled',
          `; the handler did not stop within ${this.options.killGraceMs} ms and its process was killed`,
        ),
      );
      return;
    }
    const { timeoutMs } = run.request;
    if (run.killedFor === 'timeout') {
      run.settle({
        status: 'TIMED_OUT',
        errnr: TIMEOUT_ERRNR,
        errmsg:
          `handler did not finish within the execution timeout of ${timeoutMs} ms nor stop ` +
          `within ${this.options.killGraceMs} ms after; its process was killed`,
        payload: null,
        abandoned: false,
      });
      return;
    }
    const tail = lastLine(worker.stderrTail);
    run.settle({
      status: 'FAILED',
      errnr: exitErrnr(code, signal),
      errmsg:
        `the handler's process ${describeExit(code, signal)} before the handler returned` +
        (tail === '' ? '' : `; its last words: ${tail}`),
      payload: null,
      abandoned: false,
    });
  }

  run(request: RunRequest): Promise<Outcome> {
    const file = this.options.files.get(request.task.type);
    if (file === undefined || this.closed) {
      return Promise.resolve({
        status: 'FAILED',
        errnr: 1,
        errmsg: `no handler for task type ${request.task.type} on this endpoint`,
        payload: null,
        abandoned: this.closed,
      });
    }
    return this.acquire(request.signal).then((worker) => {
      if (worker !== null) return this.runIn(worker, file, request);
      const reason: unknown = request.signal.reason;
      return reason instanceof CancelRequest ? cancelledOutcome(reason.reason) : abandoned();
    });
  }

  /** A free child, or the next to come free or be started; null if aborted while waiting. */
  private acquire(signal: AbortSignal): Promise<Worker | null> {
    const idle = this.idle.pop();
    if (idle !== undefined) return Promise.resolve(idle);
    return new Promise((resolve) => {
      const take = (worker: Worker | null): void => {
        signal.removeEventListener('abort', onAbort);
        resolve(worker);
      };
      const entry = { since: Date.now(), take };
      const onAbort = (): void => {
        const at = this.waiting.indexOf(entry);
        if (at >= 0) this.waiting.splice(at, 1);
        resolve(null);
      };
      if (signal.aborted) return resolve(null);
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
      this.grow();
    });
  }

  /**
   * Start one more child when runs wait and no child came free for GROW_AFTER_MS, none is
   * starting, and there is room; check again later while runs wait.
   */
  private grow(): void {
    if (this.closed || this.starting !== null || this.waiting.length === 0) return;
    if (this.workers.size >= this.options.size) return;
    const waited = Date.now() - Math.max(this.lastFreed, this.waiting[0]?.since ?? 0);
    if (waited >= GROW_AFTER_MS || this.workers.size === 0) {
      this.starting = this.spawn();
      return;
    }
    this.growTimer ??= setTimeout(() => {
      this.growTimer = null;
      this.grow();
    }, GROW_AFTER_MS - waited);
  }

  /** Hand a child that came free to the next waiting run, or keep it idle. */
  private release(worker: Worker): void {
    if (!this.workers.has(worker) || !worker.ready || this.closed) return;
    this.lastFreed = Date.now();
    const next = this.waiting.shift();
    if (next !== undefined) next.take(worker);
    else this.idle.push(worker);
  }

  private runIn(worker: Worker, file: string, request: RunRequest): Promise<Outcome> {
    worker.stderrTail = '';
    const id = this.nextId++;
    const { log, killGraceMs } = this.options;
    return new Promise<Outcome>((resolve) => {
      const timers: NodeJS.Timeout[] = [];
      const kill = (reason: 'timeout' | 'shutdown' | 'cancel'): void => {
        if (worker.run !== run) return;
        run.killedFor = reason;
        log.warn('killing a handler process that did not stop', { task_id: request.task.id });
        worker.child.kill('SIGKILL');
      };
      const onAbort = (): void => {
        const reason: unknown = request.signal.reason;
        const cancel = reason instanceof CancelRequest;
        this.post(worker, {
          kind: 'abort',
          id,
          cause: cancel ? 'cancel' : 'shutdown',
          reason: cancel ? reason.reason : 'agent shutting down',
        });
        timers.push(setTimeout(() => kill(cancel ? 'cancel' : 'shutdown'), killGraceMs));
      };
      const run: ActiveRun = {
        id,
        request,
        killedFor: null,
        settle: (outcome) => {
          if (worker.run !== run) return;
          worker.run = null;
          for (const timer of timers) clearTimeout(timer);
          request.signal.removeEventListener('abort', onAbort);
          this.release(worker);
          resolve(outcome);
        },
      };
      worker.run = run;
      // the child enforces the timeout itself; this catches a handler blocking its event loop
      timers.push(setTimeout(() => kill('timeout'), request.timeoutMs + killGraceMs));
      if (request.signal.aborted) onAbort();
      else request.signal.addEventListener('abort', onAbort, { once: true });
      this.post(worker, {
        kind: 'run',
        id,
        file,
        task: request.task,
        endpoint: request.endpoint,
        attempt: request.attempt,
        timeoutMs: request.timeoutMs,
      });
    });
  }

  /** Stop every child: idle ones at once, any still running (there should be none) by force. */
  async close(): Promise<void> {
    this.closed = true;
    this.idle.length = 0;
    for (const waiter of this.waiting.splice(0)) waiter.take(null);
    if (this.growTimer !== null) clearTimeout(this.growTimer);
    const exits = [...this.workers].map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.child.exitCode !== null || worker.child.signalCode !== null) return resolve();
          worker.child.once('exit', () => resolve());
          if (worker.run !== null) worker.child.kill('SIGKILL');
          // an idle child exits when its channel closes
          else if (worker.child.connected) worker.child.disconnect();
          setTimeout(() => worker.child.kill('SIGKILL'), this.options.killGraceMs).unref();
        }),
    );
    await Promise.all(exits);
  }
}

/** The outcome of a run the agent gave up on to shut down: the task goes back to the queue. */
function abandoned(): Outcome {
  return { status: 'FAILED', errnr: 1, errmsg: 'agent shut down', payload: null, abandoned: true };
}

/** A JSON log line from a handler's ctx.log, logged again with the run's own fields. */
function relayLogLine(log: Logger, line: string): void {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    log.info(line.trim());
    return;
  }
  const { level, msg, ...fields } = record;
  delete fields.time;
  const text = typeof msg === 'string' ? msg : '';
  if (level === 'debug' || level === 'info' || level === 'warn' || level === 'error') {
    log[level](text, fields);
  } else {
    log.info(text, fields);
  }
}
