/**
 * Following a task through its event stream until the `end` event. A stream that breaks (a
 * server restarting, a proxy closing it) is opened again, and its snapshot brings the state up
 * to date; a server that stays away for a while is an error.
 */
import { readEvents } from './events';
import { ConnectionError, taskPath, type Api } from './http';
import { applyEvent, type WatchState } from './watch-state';

/** reconnect for at most this long since the stream last worked */
const GIVE_UP_MS = 60_000;
const RETRY_MS = [250, 500, 1000, 2000, 5000];

export async function followTask(
  api: Api,
  type: string,
  identifier: string,
  onState: (state: WatchState) => void,
  signal: AbortSignal,
): Promise<WatchState | null> {
  let state: WatchState | null = null;
  let failures = 0;
  let lastWorked = Date.now();
  while (!signal.aborted) {
    try {
      const body = await api.stream(taskPath(type, identifier, 'events'), signal);
      lastWorked = Date.now();
      failures = 0;
      for await (const event of readEvents(body)) {
        const next = applyEvent(state, event);
        if (next === null || next === state) continue;
        state = next;
        onState(state);
        if (state.ended) return state;
      }
    } catch (thrown) {
      if (signal.aborted) break;
      // the server answered, with an error: asking again will not help
      if (!(thrown instanceof ConnectionError) && !isStreamBreak(thrown)) throw thrown;
      if (Date.now() - lastWorked > GIVE_UP_MS || state === null) {
        if (thrown instanceof ConnectionError) throw thrown;
        throw new ConnectionError(`lost the event stream from ${api.url}`, { cause: thrown });
      }
    }
    if (signal.aborted) break;
    const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)] as number;
    failures += 1;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  return state;
}

/** a body that stopped mid-stream: undici's "terminated", a reset socket */
function isStreamBreak(thrown: unknown): boolean {
  const error = thrown as { name?: string; message?: string };
  return error.name === 'TypeError' || error.message === 'terminated';
}
