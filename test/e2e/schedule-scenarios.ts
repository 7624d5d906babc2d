/**
 * Recurring schedules end to end (part of the one table in scenarios.ts): a schedule firing
 * several times on short intervals, paused and resumed; the runs missed while the server was
 * down for three intervals, under catch_up "one" and "skip"; and, with processes of their own,
 * a server killed with SIGKILL as a schedule fires and two servers running the scheduler at
 * once, each due time getting exactly one task. Each scenario deletes its schedules.
 */
import type { TaskView } from '../../src/store';
import { startCli } from '../support/child-processes';
import { waitForHttp } from '../support/child-processes';
import { freePort } from '../support/ports';
import { sleep, waitFor } from '../support/waiting';
import { call } from './operate-scenarios';
import type { E2eStack, ProcessStack, ScenarioEntry } from './scenarios';

/** The due times of the tasks a schedule made so far, oldest first. */
async function dueTimes(stack: E2eStack, type: string, name: string): Promise<number[]> {
  const page = await call<{ tasks: TaskView[] }>(
    stack,
    'GET',
    `${type}?identifier=${encodeURIComponent(`${name}@`)}&limit=1000`,
  );
  expect(page.status).toBe(200);
  return page.body.tasks
    .map((task) => Date.parse(task.identifier.slice(name.length + 1)))
    .sort((a, b) => a - b);
}

async function makeSchedule(stack: E2eStack, body: Record<string, unknown>): Promise<void> {
  const made = await call(stack, 'POST', 'schedules', {
    type: 'worker',
    payload: { seconds: 0 },
    endpoints: ['console1'],
    ...body,
  });
  expect(made.status).toBe(201);
}

const remove = async (stack: E2eStack, name: string): Promise<void> => {
  expect((await call(stack, 'DELETE', `schedules/${name}`)).status).toBe(204);
};

/**
 * The due times in `times` from `from` on are each there once, and are due times of a schedule
 * every `everyMs` (a scheduler pass held up on a loaded machine past two due times may leave
 * one out, as catch_up says; it never makes one twice).
 */
function expectEachOnce(times: number[], from: number, everyMs: number): void {
  const wanted = times.filter((time) => time >= from);
  expect(new Set(wanted).size).toBe(wanted.length);
  for (let i = 1; i < wanted.length; i += 1) {
    expect(((wanted[i] as number) - (wanted[i - 1] as number)) % everyMs).toBe(0);
  }
}

export const SCHEDULE_SCENARIOS: ScenarioEntry[] = [
  {
    name: 'fires a schedule every 2 s, one DONE task per due time; pause stops it, resume restarts it',
    run: async (stack) => {
      await makeSchedule(stack, { name: 'tick', every: '2s' });
      const fired = await waitFor(
        () => dueTimes(stack, 'worker', 'tick'),
        (times) => times.length >= 3,
        15_000,
        'three runs of tick',
      );
      expectEachOnce(fired, 0, 2000);
      const first = await stack.api.terminal(
        'worker',
        `tick@${new Date(fired[0] as number).toISOString()}`,
      );
      expect(first.task.status).toBe('DONE');
      const shown = await call<{ next_runs: string[]; recent_tasks: unknown[] }>(
        stack,
        'GET',
        'schedules/tick',
      );
      expect(shown.body.next_runs).toHaveLength(5);
      expect(shown.body.recent_tasks.length).toBeGreaterThanOrEqual(3);

      expect((await call(stack, 'POST', 'schedules/tick/pause')).status).toBe(200);
      // a pass that claimed it just before the pause may still finish
      await sleep(1500);
      const paused = (await dueTimes(stack, 'worker', 'tick')).length;
      await sleep(5000);
      expect((await dueTimes(stack, 'worker', 'tick')).length).toBe(paused);

      const resumedAt = Date.now();
      expect((await call(stack, 'POST', 'schedules/tick/resume')).status).toBe(200);
      const after = await waitFor(
        () => dueTimes(stack, 'worker', 'tick'),
        (times) => times.length > paused,
        10_000,
        'a run of tick after resume',
      );
      // nothing was made up for the time it was paused
      expect(after.filter((time) => time < resumedAt - 2000).length).toBe(paused);
      await remove(stack, 'tick');
    },
  },
  {
    name: 'after the server was down for three intervals, catch_up "one" makes one task, "skip" none',
    run: async (stack) => {
      const everyMs = 4000;
      await makeSchedule(stack, { name: 'catch-one', every: '4s', catch_up: 'one' });
      await makeSchedule(stack, { name: 'catch-skip', every: '4s', catch_up: 'skip' });
      await waitFor(
        () => dueTimes(stack, 'worker', 'catch-skip'),
        (times) => times.length >= 1,
        10_000,
        'a first run of catch-skip',
      );
      expect(await stack.serving().stop('SIGTERM')).toBe(0);
      const stoppedAt = Date.now();
      await sleep(3 * everyMs + 1000);
      const restarting = Date.now();
      await stack.restartServing();
      const restartedAt = Date.now();
      const { one, skip } = await waitFor(
        async () => ({
          one: await dueTimes(stack, 'worker', 'catch-one'),
          skip: await dueTimes(stack, 'worker', 'catch-skip'),
        }),
        (both) => both.one.some((t) => t > stoppedAt) && both.skip.some((t) => t > stoppedAt),
        15_000,
        'runs of both after the restart',
      );
      const lastBefore = (times: number[]) => Math.max(...times.filter((t) => t <= stoppedAt));
      const firstAfter = (times: number[]) => Math.min(...times.filter((t) => t > stoppedAt));
      // "one": a single task, for the latest due time missed, three intervals or more on
      const caughtUp = firstAfter(one);
      expect(caughtUp - lastBefore(one)).toBeGreaterThanOrEqual(3 * everyMs);
      expect(caughtUp).toBeGreaterThan(restarting - everyMs);
      expect(caughtUp).toBeLessThanOrEqual(restartedAt);
      expectEachOnce(one, caughtUp, everyMs);
      // "skip": nothing for the time it was down; it goes on at its next due time
      expect(firstAfter(skip)).toBeGreaterThan(restarting);
      // and both go on as before
      await waitFor(
        () => dueTimes(stack, 'worker', 'catch-skip'),
        (times) => times.some((t) => t > restartedAt),
        10_000,
        'a run of catch-skip after the restart',
      );
      await remove(stack, 'catch-one');
      await remove(stack, 'catch-skip');
    },
  },
  {
    name: 'makes exactly one task for the due time at which its server was killed with SIGKILL',
    processesOnly: 'it kills the server process, which the embedded stack shares with its agents',
    run: async (stack) => {
      // long enough for a server to start again before the next due time
      const everyMs = 10_000;
      await makeSchedule(stack, { name: 'killed', every: '10s', catch_up: 'one' });
      const before = await waitFor(
        () => dueTimes(stack, 'worker', 'killed'),
        (times) => times.length >= 1,
        15_000,
        'a first run of killed',
      );
      // kill it at the next due time, as its scheduler fires
      const due = (before[before.length - 1] as number) + everyMs;
      await sleep(Math.max(0, due - Date.now()));
      await stack.serving().stop('SIGKILL');
      await stack.restartServing();
      const after = await waitFor(
        () => dueTimes(stack, 'worker', 'killed'),
        (times) => times.some((t) => t > due),
        25_000,
        'a run of killed after the restart',
      );
      expect(after.filter((t) => t === due).length).toBeLessThanOrEqual(1);
      expectEachOnce(after, 0, everyMs);
      // the due time of the kill got its task, before the kill or after the restart
      expect(after).toContain(due);
      await remove(stack, 'killed');
    },
  },
  {
    name: 'gives each due time one task when two servers run the scheduler',
    processesOnly: 'it starts a second server process on the same database',
    run: async (stack) => {
      const processes = stack as ProcessStack;
      const port = await freePort();
      const second = startCli([
        'server',
        ...processes.test.cliFlags,
        '--types',
        'worker,backup,hello',
        '--port',
        String(port),
      ]);
      try {
        await waitForHttp(`http://127.0.0.1:${port}/readyz`, second);
        const start = Date.now();
        await makeSchedule(stack, { name: 'twice', every: '1s', endpoints: ['console2'] });
        const times = await waitFor(
          () => dueTimes(stack, 'worker', 'twice'),
          (list) => list.length >= 8,
          20_000,
          'eight runs of twice',
        );
        await remove(stack, 'twice');
        // no due time twice, none left out between the first and the last
        expectEachOnce(times, start, 1000);
        expect(second.output()).not.toMatch(/Duplicate entry|deadlock/i);
      } finally {
        await second.stop();
      }
    },
  },
];
