/**
 * The process a sandboxed handler runs in (sandbox.ts forks it). It imports handler modules,
 * runs one call at a time as the agent asks over IPC, and reports progress, log lines and the
 * outcome back. Whatever the handler does to this process (exit, crash, leak, block) ends here;
 * the agent sees the exit and fails that one run.
 */
import { createLogger, deferredLogger, type Logger } from '../log';
import { importHandler, type LoadedHandler } from './loader';
import { CancelRequest, runHandler } from './run';
import type { ChildMessage, ParentMessage } from './sandbox-protocol';

/** ctx.progress() reaches the agent at most this often; the agent throttles what it reports */
const PROGRESS_IPC_INTERVAL_MS = 100;

const handlers = new Map<string, Promise<LoadedHandler>>();
const running = new Map<number, AbortController>();

function send(message: ChildMessage): void {
  process.send?.(message);
}

function handlerAt(file: string): Promise<LoadedHandler> {
  let handler = handlers.get(file);
  if (handler === undefined) {
    handler = importHandler(file);
    handlers.set(file, handler);
  }
  return handler;
}

/**
 * A logger whose JSON lines go to the agent, which logs them with the run's fields; made only
 * if the handler writes to it.
 */
function runLogger(id: number): Logger {
  return deferredLogger(() => createLogger('debug', {}, (line) => send({ kind: 'log', id, line })));
}

async function load(files: string[]): Promise<void> {
  const errors: string[] = [];
  const versions: Record<string, string | null> = {};
  for (const file of files) {
    try {
      versions[file] = (await handlerAt(file)).version;
    } catch (err) {
      handlers.delete(file);
      errors.push((err as Error).message);
    }
  }
  send({ kind: 'loaded', errors, versions });
}

async function run(message: Extract<ParentMessage, { kind: 'run' }>): Promise<void> {
  const { id, file, task, endpoint, attempt, timeoutMs } = message;
  const controller = new AbortController();
  running.set(id, controller);
  let lastProgress = 0;
  try {
    const { handleTask } = await handlerAt(file);
    const outcome = await runHandler(
      handleTask,
      task,
      {
        endpoint,
        attempt,
        log: runLogger(id),
        progress: (current, total, line) => {
          const now = Date.now();
          if (now - lastProgress < PROGRESS_IPC_INTERVAL_MS) return;
          lastProgress = now;
          send({ kind: 'progress', id, current, total: total ?? null, line: line ?? null });
        },
      },
      timeoutMs,
      controller.signal,
    );
    send({ kind: 'done', id, outcome });
  } catch (err) {
    // only importHandler can throw here: runHandler never does
    send({
      kind: 'done',
      id,
      outcome: {
        status: 'FAILED',
        errnr: 1,
        errmsg: (err as Error).message,
        payload: null,
        abandoned: false,
      },
    });
  } finally {
    running.delete(id);
  }
}

process.on('message', (message: ParentMessage) => {
  switch (message.kind) {
    case 'load':
      void load(message.files);
      break;
    case 'run':
      void run(message);
      break;
    case 'abort':
      running
        .get(message.id)
        ?.abort(
          message.cause === 'cancel'
            ? new CancelRequest(message.reason)
            : new Error(message.reason),
        );
      break;
  }
});
// the agent is gone (killed, or closed the channel): nothing can receive an outcome any more
process.on('disconnect', () => process.exit(0));
send({ kind: 'ready' });
