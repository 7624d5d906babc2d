/**
 * Watching a task to its end, as `send --wait`, `retry --wait` and `watch` do: on a terminal a
 * live view redrawn in place, off one a line per change, with --json nothing until the end.
 * Then the summary (or the task and its summary as JSON), and the task's outcome as the exit
 * code. Ctrl-C stops watching, not the task.
 */
import { EXIT, exitCodeOf } from './exit-codes';
import { describeChanges } from './changes';
import { followTask } from './follow';
import { ConnectionError, taskPath, type Api } from './http';
import { renderSummary, summarize } from './summary';
import { LiveRegion, type TerminalOutput } from './terminal';
import { renderView } from './view';
import { stateOf, type WatchState } from './watch-state';
import type { TaskDocument } from './wire';

/** a live view is redrawn at most this often, and every second for the clock */
const REDRAW_MS = 100;
const TICK_MS = 1000;

export interface Output extends TerminalOutput {
  isTTY?: boolean;
  on?(event: 'resize', listener: () => void): unknown;
  off?(event: 'resize', listener: () => void): unknown;
}

export interface WatchOptions {
  out: Output;
  json: boolean;
  /** a live view (a terminal that can draw) rather than a line per change */
  live: boolean;
}

export async function watchToEnd(
  api: Api,
  type: string,
  identifier: string,
  options: WatchOptions,
): Promise<number> {
  const { out } = options;
  const print = (lines: string[]): void => {
    if (lines.length > 0) out.write(lines.map((line) => `${line}\n`).join(''));
  };
  const region = options.live && !options.json ? new LiveRegion(out) : null;
  let latest: WatchState | null = null;
  let drawTimer: NodeJS.Timeout | null = null;
  const draw = (): void => {
    drawTimer = null;
    if (region !== null && latest !== null) {
      region.draw(renderView(latest, region.screen, Date.now()));
    }
  };
  const schedule = (): void => {
    drawTimer ??= setTimeout(draw, REDRAW_MS);
  };
  const tick = region === null ? null : setInterval(schedule, TICK_MS);
  out.on?.('resize', schedule);
  // Ctrl-C while watching stops the watching (the task goes on), and leaves the terminal tidy
  const interrupt = new AbortController();
  const onInterrupt = (): void => interrupt.abort();
  process.once('SIGINT', onInterrupt);
  let ended: WatchState | null;
  try {
    ended = await followTask(
      api,
      type,
      identifier,
      (state) => {
        if (region !== null) {
          const first = latest === null;
          latest = state;
          if (first) draw();
          else schedule();
        } else if (!options.json) {
          print(describeChanges(latest, state, new Date().toISOString().slice(11, 19)));
          latest = state;
        }
      },
      interrupt.signal,
    );
  } finally {
    process.off('SIGINT', onInterrupt);
    if (tick !== null) clearInterval(tick);
    if (drawTimer !== null) clearTimeout(drawTimer);
    out.off?.('resize', schedule);
  }
  if (ended === null || !ended.ended) {
    if (region !== null && latest !== null) draw();
    region?.stop();
    const again = `tasker watch ${type} ${identifier}`;
    process.stderr.write(`tasker: stopped watching; the task goes on (${again})\n`);
    return EXIT.INTERRUPTED;
  }
  const final = await finalWord(api, type, identifier, ended);
  const summary = summarize(final);
  if (options.json) {
    print([JSON.stringify({ ...final, summary })]);
  } else {
    if (region !== null) {
      region.draw(renderView(stateOf(final), region.screen, Date.now()));
      region.stop();
    }
    print(['', ...renderSummary(summary)]);
  }
  return exitCodeOf(final.task.status);
}

/**
 * The task as a GET gives it, with what the registry knows of endpoints that never answered;
 * if the server went away just after the stream's end, the stream's account is as final.
 */
async function finalWord(
  api: Api,
  type: string,
  identifier: string,
  streamed: WatchState,
): Promise<TaskDocument> {
  try {
    return await api.get<TaskDocument>(taskPath(type, identifier));
  } catch (thrown) {
    if (!(thrown instanceof ConnectionError)) throw thrown;
    return { task: streamed.task, taskResponseList: [...streamed.rows.values()] };
  }
}
