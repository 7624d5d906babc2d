/**
 * Waiting for news of tasks: a GET that answers once the task is final or past a version (long
 * poll), and Server-Sent Events streams of one task (a snapshot, then every change, ending when
 * it is final) or of every task (the change events, for dashboards). Changes reach this server
 * through the change feed whichever server made them; each watcher also looks at the database
 * every few seconds, so a lost change event costs a delay, never a missed final state.
 */
import type { Request, Response } from 'express';
import { isTerminalTask, type ChangeEvent } from '../domain';
import type { ChangeFeed } from '../server';
import { findTask, type Db, type TaskWithResponses } from '../store';

/** a watcher reads the database again at least this often */
const RECHECK_MS = 5000;
/** an event stream sends a comment this often, so proxies keep it open */
const HEARTBEAT_MS = 15_000;
/** changes that come close together are read once */
const COALESCE_MS = 20;

export interface WatchDeps {
  db: Db;
  changes: ChangeFeed;
}

/**
 * Reads of a task that watchers share: the watchers of one task woken by one change read it
 * once, however many they are, instead of each reading every response row. A read is shared
 * only with watchers woken before it started, so it is sure to see what woke them.
 */
const sharedReads = new Map<string, { started: number; read: Promise<TaskWithResponses | null> }>();

function readTask(
  db: Db,
  type: string,
  identifier: string,
  wokenAt: number,
): Promise<TaskWithResponses | null> {
  const key = `${type}\u0000${identifier}`;
  const shared = sharedReads.get(key);
  if (shared !== undefined && shared.started >= wokenAt) return shared.read;
  const entry = { started: Date.now(), read: findTask(db, type, identifier) };
  sharedReads.set(key, entry);
  const forget = (): void => {
    if (sharedReads.get(key) === entry) sharedReads.delete(key);
  };
  entry.read.then(forget, forget);
  return entry.read;
}

/**
 * Resolves at the next change of the task, after `ms`, or when `abort` fires, with the time it
 * was woken.
 */
function nextChange(
  changes: ChangeFeed,
  taskId: number,
  ms: number,
  abort: AbortSignal,
): Promise<number> {
  return new Promise((resolve) => {
    const done = (): void => {
      const wokenAt = Date.now();
      clearTimeout(timer);
      stop();
      abort.removeEventListener('abort', done);
      // let changes that come together land before the reader looks
      setTimeout(() => resolve(wokenAt), COALESCE_MS);
    };
    const timer = setTimeout(done, ms);
    const stop = changes.watch(taskId, done);
    abort.addEventListener('abort', done, { once: true });
  });
}

/** An AbortSignal that fires when the client goes away. */
function clientGone(req: Request, res: Response): AbortSignal {
  const controller = new AbortController();
  const gone = (): void => controller.abort();
  req.once('close', gone);
  res.once('close', gone);
  return controller.signal;
}

/**
 * The task once it is final or its version passed `afterVersion`, or as it is when `waitMs`
 * ran out or the client left.
 */
export async function waitForTask(
  deps: WatchDeps,
  first: TaskWithResponses,
  options: { waitMs: number; afterVersion: number | null },
  req: Request,
  res: Response,
): Promise<TaskWithResponses> {
  const done = (found: TaskWithResponses): boolean =>
    isTerminalTask(found.task.status) ||
    (options.afterVersion !== null && found.task.version > options.afterVersion);
  let found = first;
  if (options.waitMs <= 0 || done(found)) return found;
  const gone = clientGone(req, res);
  const deadline = Date.now() + options.waitMs;
  while (!gone.aborted && Date.now() < deadline) {
    const left = deadline - Date.now();
    const wokenAt = await nextChange(deps.changes, found.task.id, Math.min(left, RECHECK_MS), gone);
    const again = await readTask(deps.db, found.task.type, found.task.identifier, wokenAt);
    if (again === null) return found;
    found = again;
    if (done(found)) return found;
  }
  return found;
}

/** Start an event stream: headers, and a heartbeat comment until it ends. */
function openStream(res: Response): {
  send(event: string, data: unknown, id?: number): void;
  end(): void;
} {
  res.status(200);
  res.set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    // nginx would buffer the stream otherwise
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
  let ended = false;
  return {
    send: (event, data, id) => {
      if (ended) return;
      const idLine = id === undefined ? '' : `id: ${id}\n`;
      res.write(`event: ${event}\n${idLine}data: ${JSON.stringify(data)}\n\n`);
    },
    end: () => {
      if (ended) return;
      ended = true;
      clearInterval(heartbeat);
      res.end();
    },
  };
}

/**
 * The event stream of one task: `snapshot` (the task with every response), then `task` when
 * the task changes and `response` for each row that changes, and `end` once it is final.
 */
export async function streamTask(
  deps: WatchDeps,
  first: TaskWithResponses,
  req: Request,
  res: Response,
): Promise<void> {
  const stream = openStream(res);
  const gone = clientGone(req, res);
  gone.addEventListener('abort', () => stream.end(), { once: true });
  let current = first;
  stream.send('snapshot', current, current.task.version);
  const sent = new Map(current.taskResponseList.map((r) => [r.endpoint, r.last_modified_time]));
  while (!gone.aborted && !isTerminalTask(current.task.status)) {
    const wokenAt = await nextChange(deps.changes, current.task.id, RECHECK_MS, gone);
    if (gone.aborted) break;
    const again = await readTask(deps.db, current.task.type, current.task.identifier, wokenAt);
    if (again === null) break;
    if (again.task.version !== current.task.version) {
      stream.send('task', again.task, again.task.version);
    }
    for (const response of again.taskResponseList) {
      if (sent.get(response.endpoint) === response.last_modified_time) continue;
      sent.set(response.endpoint, response.last_modified_time);
      stream.send('response', response, again.task.version);
    }
    current = again;
  }
  if (!gone.aborted) stream.send('end', { status: current.task.status }, current.task.version);
  stream.end();
}

/** The event stream of every task's changes, optionally of some types and statuses only. */
export function streamChanges(
  deps: WatchDeps,
  filter: { types: string[] | null; statuses: string[] | null },
  req: Request,
  res: Response,
): void {
  const stream = openStream(res);
  const stop = deps.changes.watchAll((event: ChangeEvent) => {
    if (filter.types !== null && !filter.types.includes(event.type)) return;
    if (filter.statuses !== null && !filter.statuses.includes(event.status)) return;
    stream.send('change', event, event.version);
  });
  const gone = clientGone(req, res);
  gone.addEventListener(
    'abort',
    () => {
      stop();
      stream.end();
    },
    { once: true },
  );
}
