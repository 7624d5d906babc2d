/**
 * First SIGTERM/SIGINT drains (the given shutdown runs once), a second one forces exit. While it
 * drains, the process says what it waits for and for how long at most, so a person at the
 * terminal is not left wondering.
 */
import type { Logger } from '../log';

export interface ShutdownOptions {
  /** what the drain waits for, e.g. "2 running tasks to finish (at most 30 s)", or null */
  waitingFor?: () => string | null;
  /** say it on stderr too, for a person at a terminal (`tasker up`) */
  tellTerminal?: boolean;
}

/** Stop on SIGTERM/SIGINT; returns a function that starts the same shutdown without a signal. */
export function onShutdownSignals(
  shutdown: () => Promise<void>,
  log: Logger,
  options: ShutdownOptions = {},
): (reason: string) => void {
  let stopping = false;
  const stop = (reason: string): void => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal: reason });
      process.exit(130);
    }
    stopping = true;
    const waiting = options.waitingFor?.() ?? null;
    log.info('shutting down; send the signal again to force', {
      signal: reason,
      ...(waiting === null ? {} : { waiting_for: waiting }),
    });
    if (options.tellTerminal === true) {
      process.stderr.write(
        `tasker: stopping${waiting === null ? '' : `: waiting for ${waiting}`}` +
          ' (press Ctrl-C again to stop at once)\n',
      );
    }
    shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return stop;
}

/** A fatal broker error (refused credentials): log it and exit non-zero. */
export function exitOnFatal(log: Logger): (err: Error) => void {
  return (err) => {
    log.error('fatal broker error', { err });
    process.exit(1);
  };
}
