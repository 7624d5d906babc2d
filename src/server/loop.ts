/**
 * A background loop for work that polls the database: runs `tick` every `intervalMs`, at once
 * again while `tick` says there is more, never two ticks at a time, and stops cleanly.
 */
import type { Logger } from '../log';

export interface Loop {
  /** run a tick soon instead of waiting for the interval */
  kick(): void;
  stop(): Promise<void>;
}

export function startLoop(
  name: string,
  intervalMs: number,
  tick: () => Promise<boolean>,
  log: Logger,
): Loop {
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let failures = 0;

  const schedule = (delayMs: number): void => {
    if (stopped || timer !== null) return;
    timer = setTimeout(run, delayMs);
  };

  function run(): void {
    timer = null;
    if (stopped || running !== null) return;
    running = (async () => {
      let more = false;
      try {
        more = await tick();
        failures = 0;
      } catch (err) {
        failures += 1;
        if (failures === 1 || failures % 30 === 0) log.warn(`${name} failed`, { err, failures });
      } finally {
        running = null;
      }
      schedule(more ? 0 : intervalMs * Math.min(failures + 1, 10));
    })();
  }

  schedule(0);
  return {
    kick: () => {
      if (timer !== null && running === null) {
        clearTimeout(timer);
        timer = null;
        schedule(0);
      }
    },
    stop: async () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      if (running !== null) await running;
    },
  };
}
