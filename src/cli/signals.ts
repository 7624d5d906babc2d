/**
 * First SIGTERM/SIGINT drains (the given shutdown runs once), a second one forces exit.
 */
import type { Logger } from '../log';

export function onShutdownSignals(shutdown: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      process.exit(130);
    }
    stopping = true;
    log.info('shutting down; send the signal again to force', { signal });
    shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/** A fatal broker error (refused credentials): log it and exit non-zero. */
export function exitOnFatal(log: Logger): (err: Error) => void {
  return (err) => {
    log.error('fatal broker error', { err });
    process.exit(1);
  };
}
