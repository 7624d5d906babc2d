/**
 * `tasker agent`: consumes this endpoint's queue for each task type, runs the type's handler,
 * and reports by publishing result events (agents never touch the database). A task is acked
 * only after its `finished` event is confirmed by the broker, so a crash means redelivery, not
 * loss; a redelivered task whose result this process already has is answered from memory.
 */
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import type { Delivery, Subscription, TaskBroker } from '../broker';
import {
  WIRE_VERSION,
  decideRetry,
  retryFromWire,
  retryKindOf,
  parseControlMessage,
  parseTaskMessage,
  taskExpiresAt,
  type AgentInfo,
  type ResultEvent,
  type RetryKind,
  type TaskMessage,
} from '../domain';
import type { Logger } from '../log';
import { secondsSince, type AgentMetrics } from '../metrics';
import { VERSION } from '../package';
import { AttemptJournal, type RunCounts } from './attempts';
import { HeartbeatSender } from './heartbeat';
import { OutputCapture, type CapturedOutput } from './output';
import { lockStateDir, type DirLock } from './lock';
import { ReportSender } from './reports';
import type { HandlerTask } from './contract';
import { CANCELLED_ERRNR, CancelRequest, progressReport, truncate, type Outcome } from './run';
import type { HandlerRunner } from './runner';

export interface AgentOptions {
  endpoint: string;
  types: string[];
  /** runs the handlers; may be shared by agents in one process, and is closed by its owner */
  runner: HandlerRunner;
  broker: TaskBroker;
  /** handlers run at once */
  concurrency: number;
  /** output kept of a run, in bytes (head and tail); default 64 KiB */
  outputLimitBytes?: number;
  /** deliveries held at once (at least `concurrency`): the rest wait in order for a slot */
  prefetch?: number;
  reportDelayMs: number;
  stateDir: string;
  log: Logger;
  /** on close, how long in-flight handlers may finish before they are aborted and handed back */
  drainTimeoutMs?: number;
  /** how long a task may wait in the prefetch for a handler slot before it is handed back */
  slotWaitMs?: number;
  /** this endpoint's labels, as heartbeats tell the registry (none) */
  labels?: Readonly<Record<string, string>>;
  /** how often it tells the registry it is alive (HEARTBEAT_MS) */
  heartbeatMs?: number;
  /** handler durations and retries, when the agent serves metrics */
  metrics?: AgentMetrics;
}

/** how often an agent beats by default, as agent.heartbeat */
export const HEARTBEAT_MS = 15_000;
/** on close, how long running handlers may take to finish by default */
export const DRAIN_TIMEOUT_MS = 30_000;
/** output kept of a run when the agent is not told (agent.output_limit) */
export const OUTPUT_LIMIT_BYTES = 64 * 1024;
// results kept to answer redeliveries without rerunning; older duplicates rerun (handlers are idempotent)
const FINISHED_CACHE = 1000;
const PROGRESS_INTERVAL_MS = 1000;
const PUBLISH_RETRIES = 3;
/**
 * A task waiting in the prefetch longer than this goes back to the queue: RabbitMQ closes a
 * channel whose delivery stays unacked past its consumer_timeout (30 min by default), and the
 * wait adds to the handler's own run time.
 */
const SLOT_WAIT_LIMIT_MS = 60_000;
/** a task started this close to its delivery deadline reports 'received' at once */
const RECEIVED_MARGIN_MS = 1000;
/** the deadline passed while the task waited for a slot: ack it, unrun */
const LATE = Symbol('late');
/** waited SLOT_WAIT_LIMIT_MS for a slot: hand it back to the queue, uncounted */
const WAITED = Symbol('waited');
/** the agent is shutting down: hand it back */
const SHUTDOWN = Symbol('shutdown');

type Execution = ResultEvent | typeof LATE | typeof WAITED | typeof SHUTDOWN;

/** A task's run in a round: what the agent's memory of runs is keyed by. */
const runKey = (task: Pick<TaskMessage, 'id' | 'round'>): string => `${task.id}:${task.round}`;

/** Wait `ms`, or less if `signal` aborts first: whether the whole wait passed. */
async function waitUnlessStopped(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/** At most `size` handlers at once; the rest wait in arrival order, and are refused on close. */
class Slots {
  private free: number;
  private closed = false;
  private readonly waiting = new Set<(outcome: 'granted' | 'closed' | 'waited') => void>();

  constructor(size: number) {
    this.free = size;
  }

  acquire(limitMs: number): Promise<'granted' | 'closed' | 'waited'> {
    if (this.closed) return Promise.resolve('closed');
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve('granted');
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(grant);
        resolve('waited');
      }, limitMs);
      const grant = (outcome: 'granted' | 'closed' | 'waited'): void => {
        clearTimeout(timer);
        resolve(outcome);
      };
      this.waiting.add(grant);
    });
  }

  release(): void {
    const next = this.waiting.values().next().value;
    if (next === undefined) {
      this.free += 1;
      return;
    }
    this.waiting.delete(next);
    next('granted');
  }

  close(): void {
    this.closed = true;
    for (const refuse of this.waiting) refuse('closed');
    this.waiting.clear();
  }
}

export class Agent {
  private readonly log: Logger;
  private readonly journal: AttemptJournal;
  private readonly reports: ReportSender;
  private readonly slots: Slots;
  private readonly heartbeats: HeartbeatSender;
  private readonly shutdown = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  /** by runKey: a retry's round is another run */
  private readonly finished = new Map<string, ResultEvent>();
  private readonly running = new Map<string, Promise<Execution>>();
  /** what stops each running handler: the agent's shutdown, or a cancel of its task */
  private readonly stops = new Map<string, AbortController>();
  /** runs cancelled here, with why and until when a copy may still arrive */
  private readonly cancelled = new Map<string, { reason: string; until: number }>();
  private readonly info: AgentInfo = { hostname: hostname(), pid: process.pid, version: VERSION };
  private readonly stateDir: string;
  private lock: DirLock | null = null;
  private subscription: Subscription | null = null;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: AgentOptions) {
    this.log = options.log;
    this.stateDir = join(options.stateDir, options.endpoint);
    this.journal = new AttemptJournal(this.stateDir);
    this.reports = new ReportSender(options.broker);
    this.slots = new Slots(options.concurrency);
    this.heartbeats = new HeartbeatSender({
      endpoint: options.endpoint,
      types: options.types,
      labels: options.labels ?? {},
      intervalMs: options.heartbeatMs ?? HEARTBEAT_MS,
      broker: options.broker,
      log: options.log,
      handlers: () => options.runner.versions(),
      load: () => ({ running: this.running.size, capacity: options.concurrency }),
    });
    // every running handler listens to the shutdown signal for the length of its run; past
    // Node's default of 10 it would warn of a leak that is not one
    setMaxListeners(options.concurrency + 10, this.shutdown.signal);
  }

  /** Tasks whose handler runs now. */
  get runningTasks(): number {
    return this.running.size;
  }

  async start(): Promise<void> {
    const { endpoint, types, concurrency, broker } = this.options;
    await this.claimStateDir();
    const prefetch = Math.max(concurrency, this.options.prefetch ?? concurrency);
    try {
      this.subscription = await broker.consumeTasks(
        { endpoint, types, prefetch },
        (delivery) => this.track(this.onDelivery(delivery)),
        (delivery) => this.onControl(delivery),
      );
    } catch (err) {
      await this.releaseStateDir();
      throw err;
    }
    this.heartbeats.start();
    this.log.info('agent consuming', { endpoint, types, concurrency, prefetch });
  }

  /**
   * Lock the state directory and open the attempt journal (start does it too): one process per
   * directory, as the journal must have a single writer. The CLI calls it before connecting, so
   * a second agent for the directory fails at once.
   */
  async claimStateDir(): Promise<void> {
    if (this.lock !== null) return;
    const lock = await lockStateDir(this.stateDir);
    try {
      this.journal.open();
    } catch (err) {
      await lock.release();
      throw err;
    }
    this.lock = lock;
  }

  private async releaseStateDir(): Promise<void> {
    this.journal.close();
    await this.lock?.release();
    this.lock = null;
  }

  private track(work: Promise<void>): Promise<void> {
    const guarded = work.catch((err: unknown) => this.log.error('task handling failed', { err }));
    this.inFlight.add(guarded);
    void guarded.finally(() => this.inFlight.delete(guarded));
    return guarded;
  }

  private event(
    task: TaskMessage,
    attempt: number,
    fields: Pick<ResultEvent, 'event' | 'status'> & Partial<Omit<ResultEvent, 'round'>>,
  ): ResultEvent {
    return {
      v: WIRE_VERSION,
      task_id: task.id,
      type: task.type,
      endpoint: this.options.endpoint,
      errnr: null,
      errmsg: null,
      payload: null,
      progress: null,
      at: new Date().toISOString(),
      attempt,
      agent: this.info,
      ...fields,
      round: task.round,
    };
  }

  private async onDelivery(delivery: Delivery): Promise<void> {
    let task: TaskMessage;
    try {
      task = parseTaskMessage(delivery.content);
    } catch (err) {
      this.log.warn('dead-lettering an invalid task message', { err });
      delivery.deadLetter();
      return;
    }
    const { endpoint } = this.options;
    if (task.endpoints !== null && !task.endpoints.includes(endpoint)) {
      this.log.debug('task not addressed to this endpoint', { task_id: task.id });
      delivery.ack();
      return;
    }
    const known = this.finished.get(runKey(task));
    if (known !== undefined) {
      await this.report(delivery, task, known);
      return;
    }
    const cancel = this.cancelReason(task);
    if (cancel !== null) {
      // cancelled before it started here: never run, and said so
      await this.report(delivery, task, this.cancelledEvent(task, 0, cancel));
      return;
    }
    if (this.isLate(task)) {
      this.log.warn('task arrived after its delivery deadline; not running it', {
        task_id: task.id,
      });
      delivery.ack();
      return;
    }
    // A duplicate of a task this agent is running now waits for that run instead of a second.
    const key = runKey(task);
    let result = this.running.get(key);
    if (result === undefined) {
      result = this.execute(task, delivery.redelivered);
      this.running.set(key, result);
      void result.finally(() => this.running.delete(key));
    }
    const event = await result;
    if (event === SHUTDOWN) {
      this.log.info('handing task back on shutdown', { task_id: task.id });
      delivery.requeue();
      return;
    }
    if (event === WAITED) {
      this.log.debug('handing back a task that waited long for a handler slot', {
        task_id: task.id,
      });
      delivery.requeue();
      return;
    }
    if (event === LATE) {
      delivery.ack();
      return;
    }
    await this.report(delivery, task, event);
  }

  /**
   * Past its delivery deadline, and not started here before it: the endpoint never got the task
   * in time. A task a run of which started before the deadline is run again after a crash, until
   * its message expires (a crash mid-run is not a late delivery).
   */
  private isLate(task: TaskMessage): boolean {
    if (Date.parse(task.deliver_by) >= Date.now()) return false;
    try {
      return !this.journal.hasStarted(task);
    } catch (err) {
      this.log.error('could not read the attempt journal; taking a late task as never started', {
        task_id: task.id,
        err,
      });
      return true;
    }
  }

  /**
   * A cancel for some of this type's endpoints: remember it for copies still to come, and stop
   * the run if it is running here. Acked at once: a cancel is asked again by nobody.
   */
  private onControl(delivery: Delivery): void {
    delivery.ack();
    let message;
    try {
      message = parseControlMessage(delivery.content);
    } catch (err) {
      this.log.warn('ignoring an invalid control message', { err });
      return;
    }
    if (message.endpoints !== null && !message.endpoints.includes(this.options.endpoint)) return;
    const key = runKey({ id: message.task_id, round: message.round });
    const now = Date.now();
    for (const [known, { until }] of this.cancelled) if (until <= now) this.cancelled.delete(known);
    this.cancelled.set(key, { reason: message.reason, until: Date.parse(message.expires_at) });
    if (this.cancelled.size > FINISHED_CACHE) {
      this.cancelled.delete(this.cancelled.keys().next().value as string);
    }
    const stop = this.stops.get(key);
    this.log.info('task cancelled', { task_id: message.task_id, running: stop !== undefined });
    stop?.abort(new CancelRequest(message.reason));
  }

  /** Why the task was cancelled here, or null. */
  private cancelReason(task: TaskMessage): string | null {
    return this.cancelled.get(runKey(task))?.reason ?? null;
  }

  private cancelledEvent(task: TaskMessage, attempt: number, reason: string): ResultEvent {
    return this.event(task, Math.max(1, attempt), {
      event: 'finished',
      status: 'CANCELLED',
      errnr: CANCELLED_ERRNR,
      errmsg: `cancelled: ${reason}`,
    });
  }

  /** Wait for a handler slot, count the run, run the handler, and return the finished event. */
  private async execute(task: TaskMessage, redelivered: boolean): Promise<Execution> {
    const slot = await this.slots.acquire(this.options.slotWaitMs ?? SLOT_WAIT_LIMIT_MS);
    if (slot === 'closed') return SHUTDOWN;
    if (slot === 'waited') return WAITED;
    try {
      const cancel = this.cancelReason(task);
      if (cancel !== null) return this.cancelledEvent(task, 0, cancel);
      if (this.isLate(task)) {
        this.log.warn('task waited past its delivery deadline; not running it', {
          task_id: task.id,
        });
        return LATE;
      }
      return await this.runCounted(task, redelivered);
    } finally {
      this.slots.release();
    }
  }

  /**
   * Count the run in the journal, run it, and run it again while it asks to be retried and its
   * type's retry policy and the execution deadline allow: the delivery stays unacked meanwhile,
   * so an agent killed during a retry wait has the task redelivered, and the journal continues
   * its count of runs.
   */
  private async runCounted(task: TaskMessage, redelivered: boolean): Promise<Execution> {
    const { runner } = this.options;
    const policy = task.retry === undefined ? null : retryFromWire(task.retry);
    const deadline = taskExpiresAt(task);
    const stop = this.stopper(task);
    try {
      let continuing = redelivered;
      let last = 0;
      for (;;) {
        const { attempt, runs } = this.countRun(task, continuing, last);
        last = attempt;
        const crashed = runs.started - 1 - runs.ended;
        if (!runner.has(task.type) || crashed >= task.max_deliveries) {
          const errmsg = !runner.has(task.type)
            ? `no handler for task type ${task.type} on this endpoint`
            : `gave up after ${task.max_deliveries} deliveries: the task never finished ` +
              '(does its handler crash the agent?)';
          this.log.warn('failing task without running it', { task_id: task.id, errmsg });
          return this.event(task, attempt, {
            event: 'finished',
            status: 'FAILED',
            errnr: 1,
            errmsg,
          });
        }
        this.options.metrics?.runStarted(task.type, attempt);
        // the first run has the whole execution timeout; a retry what is left of it
        const timeoutMs =
          attempt === 1 || !continuing
            ? task.execution_timeout_ms
            : Math.max(1, Math.min(task.execution_timeout_ms, deadline - Date.now()));
        const { outcome, output } = await this.run(task, attempt, stop.signal, timeoutMs);
        if (outcome.abandoned) return SHUTDOWN;
        const { status, errnr, errmsg, payload } = outcome;
        const kept = output === null ? {} : { output: output.text, output_bytes: output.bytes };
        const kind = retryKindOf(status, errnr);
        let why = '';
        if (kind !== null) {
          const blocked = runs.blocked + (kind === 'blocked' ? 1 : 0);
          const now = Date.now();
          const decision = decideRetry(
            policy,
            kind,
            { started: runs.started, blocked },
            now,
            deadline,
          );
          if (decision.retry) {
            const next = new Date(decision.atMs).toISOString();
            this.recordRetry(task, kind);
            await this.reports
              .send(
                this.event(task, attempt, {
                  event: 'retrying',
                  status: 'RETRYING',
                  errnr,
                  errmsg,
                  next_attempt_at: next,
                  ...kept,
                }),
              )
              .catch((err: unknown) =>
                this.log.warn('could not report a retry', { task_id: task.id, err }),
              );
            this.log.info('retrying task', {
              task_id: task.id,
              attempt,
              kind,
              next_attempt_at: next,
            });
            if (!(await waitUnlessStopped(decision.waitMs, stop.signal))) {
              const reason: unknown = stop.signal.reason;
              if (reason instanceof CancelRequest) {
                return this.cancelledEvent(task, attempt, reason.reason);
              }
              return SHUTDOWN;
            }
            continuing = true;
            continue;
          }
          why = decision.why;
        }
        return this.event(task, attempt, {
          event: 'finished',
          status,
          errnr,
          errmsg: why === '' ? errmsg : truncate(`${errmsg ?? 'failed'} (${why})`),
          payload,
          ...kept,
        });
      }
    } finally {
      this.stops.delete(runKey(task));
      stop.release();
    }
  }

  /**
   * Count a run in the journal: its number, and the runs counted so far. When the journal cannot
   * be written the run is counted here only, after `last` (the run before it in this process).
   */
  private countRun(
    task: TaskMessage,
    continuing: boolean,
    last: number,
  ): { attempt: number; runs: RunCounts } {
    try {
      const expires_at = new Date(taskExpiresAt(task)).toISOString();
      const attempt = this.journal.start({ ...task, expires_at }, continuing);
      return { attempt, runs: this.journal.runs(task) };
    } catch (err) {
      // A full or read-only disk must not stop the work; it only weakens the poison-task limit.
      this.log.error('could not record the run in the attempt journal; running it uncounted', {
        task_id: task.id,
        err,
      });
      const attempt = last > 0 ? last + 1 : continuing ? 2 : 1;
      return { attempt, runs: { started: attempt, ended: attempt - 1, blocked: 0 } };
    }
  }

  private recordRetry(task: TaskMessage, kind: RetryKind): void {
    try {
      this.journal.ended(task, kind === 'blocked');
    } catch (err) {
      this.log.error('could not record a retry in the attempt journal', { task_id: task.id, err });
    }
  }

  /**
   * What stops the runs of a task here, and the wait between them: a cancel of the task (its
   * reason a CancelRequest) or the agent's shutdown. One controller per task, not
   * AbortSignal.any(), which keeps every combined signal alive: see run.ts.
   */
  private stopper(task: TaskMessage): { signal: AbortSignal; release(): void } {
    const stop = new AbortController();
    const onShutdown = (): void => stop.abort(this.shutdown.signal.reason);
    if (this.shutdown.signal.aborted) onShutdown();
    else this.shutdown.signal.addEventListener('abort', onShutdown, { once: true });
    this.stops.set(runKey(task), stop);
    return {
      signal: stop.signal,
      release: () => this.shutdown.signal.removeEventListener('abort', onShutdown),
    };
  }

  private async run(
    task: TaskMessage,
    attempt: number,
    stop: AbortSignal,
    timeoutMs: number,
  ): Promise<{ outcome: Outcome; output: CapturedOutput | null }> {
    const log = this.log.child({ task_id: task.id, type: task.type, attempt });
    let lastProgress = 0;
    const send = (fields: Partial<ResultEvent>): void => {
      const event = this.event(task, attempt, { event: 'progress', status: 'RUNNING', ...fields });
      this.options.broker.publishResult(event).catch((err: unknown) => {
        log.debug('could not send a progress report', { err });
      });
    };
    // 'received' waits report_delay, so a quick task sends one event; but it must reach the
    // server before the delivery deadline, or the endpoint counts as UNDELIVERED meanwhile
    const untilDeadline = Date.parse(task.deliver_by) - Date.now() - RECEIVED_MARGIN_MS;
    const started = setTimeout(
      () => send({ event: 'received' }),
      Math.max(0, Math.min(this.options.reportDelayMs, untilDeadline)),
    );
    const progress = (current: unknown, total: unknown, line: unknown): void => {
      const now = Date.now();
      if (now - lastProgress < PROGRESS_INTERVAL_MS) return;
      lastProgress = now;
      const report = progressReport(current, total, line);
      if (report !== null) send({ progress: report });
    };
    const handlerTask: HandlerTask = {
      id: task.id,
      identifier: task.identifier,
      type: task.type,
      payload: task.payload,
      endpoints: task.endpoints,
      created_at: task.created_at,
      deliver_by: task.deliver_by,
      ...(task.dependencies === undefined ? {} : { dependencies: task.dependencies }),
    };
    const output = new OutputCapture(this.options.outputLimitBytes ?? OUTPUT_LIMIT_BYTES);
    try {
      log.debug('running task');
      const startedAt = process.hrtime.bigint();
      const outcome = await this.options.runner.run({
        task: handlerTask,
        endpoint: this.options.endpoint,
        attempt,
        timeoutMs,
        signal: stop,
        log,
        progress,
        output: (stream, line) => output.add(stream, line),
      });
      log.info('task finished', { status: outcome.status, errnr: outcome.errnr });
      if (!outcome.abandoned) {
        this.options.metrics?.handlerRan(task.type, outcome.status, secondsSince(startedAt));
      }
      return { outcome, output: output.result() };
    } finally {
      clearTimeout(started);
    }
  }

  /** Publish the finished event, and ack the task only once the broker confirmed it. */
  private async report(delivery: Delivery, task: TaskMessage, event: ResultEvent): Promise<void> {
    this.remember(runKey(task), event);
    for (let i = 1; i <= PUBLISH_RETRIES; i += 1) {
      try {
        await this.reports.send(event);
        delivery.ack();
        this.journal.clear(task);
        return;
      } catch (err) {
        this.log.warn('could not report a result yet', { task_id: task.id, try: i, err });
        if (i < PUBLISH_RETRIES) await new Promise((resolve) => setTimeout(resolve, 1000 * i));
      }
    }
    // Keep the result; the task comes back (now, or after a reconnect) and is answered from memory.
    delivery.requeue();
  }

  private remember(key: string, event: ResultEvent): void {
    this.finished.delete(key);
    this.finished.set(key, event);
    if (this.finished.size > FINISHED_CACHE) {
      const oldest = this.finished.keys().next().value;
      if (oldest !== undefined) this.finished.delete(oldest);
    }
  }

  /**
   * Resolves once this agent has nothing left to do: no task held or running, and its queues
   * empty, at two checks `intervalMs` apart (for `tasker agent --burst`). A check the broker
   * cannot answer (it is away) counts as work left. Resolves at once when the agent closes.
   */
  async drained(intervalMs = 500): Promise<void> {
    const { broker, endpoint, types } = this.options;
    let quiet = 0;
    while (quiet < 2 && this.closing === null) {
      await sleep(intervalMs);
      const waiting =
        this.inFlight.size > 0 ? 1 : await broker.waitingTasks(endpoint, types).catch(() => 1);
      quiet = waiting === 0 && this.inFlight.size === 0 ? quiet + 1 : 0;
    }
  }

  /** Stop taking tasks, let running ones finish (up to the drain timeout), hand back the rest. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.subscription?.cancel();
      // tasks still waiting for a slot go back to the queue at once
      this.slots.close();
      const drain = Promise.all([...this.inFlight]);
      const limit = this.options.drainTimeoutMs ?? DRAIN_TIMEOUT_MS;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        drain.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), limit);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        this.log.warn('aborting handlers still running at shutdown', {
          running: this.inFlight.size,
        });
        this.shutdown.abort(new Error('agent shutting down'));
        await drain;
      }
      try {
        if (this.subscription !== null) await this.heartbeats.stop();
        await this.subscription?.close();
      } finally {
        await this.releaseStateDir();
      }
    })();
    return this.closing;
  }
}
