/**
 * Keeping a view up to date: following an event stream through broken connections, and reading
 * again on a timer where the API has no stream (the fleet, the schedules). Everything stops
 * when the view's signal fires.
 */

/** after a broken stream or a failed read, try again this much later */
const RETRY_MS = 2000;

/** Resolves after `ms`, or at once when `signal` fires. */
export function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const stop = () => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener('abort', stop, { once: true });
  });
}

/**
 * Pass each event of the stream at `path` to `onEvent` (the first is `open`, on every
 * connection, so a view can read again what it may have missed), connecting again after a
 * failure. Resolves when the stream ends by itself, or when `signal` fires or the token is
 * refused.
 */
export async function follow(api, path, signal, onEvent, onError) {
  while (!signal.aborted) {
    try {
      for await (const event of api.events(path, signal)) onEvent(event);
      return;
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      onError(error);
    }
    await pause(RETRY_MS, signal);
  }
}

/** Run `read` now and every `ms` until `signal` fires; a failure goes to `onError`. */
export async function every(ms, signal, read, onError) {
  while (!signal.aborted) {
    try {
      await read();
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      onError(error);
    }
    await pause(ms, signal);
  }
}

/** `run` once, a moment after the last of calls that come close together. */
export function debounce(ms, signal, run) {
  let timer = null;
  signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  return () => {
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
}
