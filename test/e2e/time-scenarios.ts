/**
 * Time and order end to end, on both stacks (part of the one table in scenarios.ts): a task held
 * until its `not_before`, released by the scheduler and published by the relay, with its
 * delivery deadline counted from its release; one cancelled before its time, which never runs;
 * a chain of three tasks, each receiving what the one before answered; a failed dependency under
 * both policies.
 */
import type { TaskView, TaskWithResponses } from '../../src/store';
import { sleep } from '../support/waiting';
import { call } from './operate-scenarios';
import type { ScenarioEntry } from './scenarios';

export const TIME_SCENARIOS: ScenarioEntry[] = [
  {
    name: 'holds a delayed task SCHEDULED, publishes it when due, its deadline counted from then',
    run: async (stack) => {
      const posted = (await stack.api.post('worker', {
        identifier: 'delayed-1',
        payload: { seconds: 0 },
        endpoints: ['console1'],
        not_before: '3s',
      })) as TaskView;
      expect(posted.status).toBe('SCHEDULED');
      const due = Date.parse(String(posted.not_before));
      expect(due - Date.parse(posted.start_time)).toBeGreaterThanOrEqual(2_900);
      const waiting = await stack.api.get('worker', 'delayed-1');
      expect(waiting.task.status).toBe('SCHEDULED');
      expect(waiting.taskResponseList[0]).toMatchObject({ status: 'PENDING', deliver_by: null });

      const done = await stack.api.terminal('worker', 'delayed-1');
      expect(done.task.status).toBe('DONE');
      const [row] = done.taskResponseList;
      expect(Date.parse(String(row?.start_time))).toBeGreaterThanOrEqual(due);
      const sentAt = Date.parse(String(done.task.sent_at));
      expect(sentAt).toBeGreaterThanOrEqual(due);
      // the delivery window starts at the release, not at the POST
      const window = Date.parse(done.task.deliver_by) - Date.parse(done.task.start_time);
      expect(window).toBeGreaterThanOrEqual(Date.parse(posted.deliver_by) - due + 2_900);
      expect(Date.parse(String(row?.deliver_by))).toBe(Date.parse(done.task.deliver_by));
    },
  },
  {
    name: 'cancels a delayed task before its time: it is never published',
    run: async (stack) => {
      await stack.api.post('worker', {
        identifier: 'delayed-2',
        payload: { seconds: 0 },
        endpoints: ['console1', 'console2'],
        not_before: '2s',
      });
      const cancelled = await call<TaskView>(stack, 'POST', 'worker/delayed-2/cancel', {
        reason: 'not tonight',
      });
      expect(cancelled.status).toBe(200);
      expect(cancelled.body.status).toBe('CANCELLED');
      // past its time, and past a scheduler pass or two
      await sleep(4_000);
      const after = await stack.api.get('worker', 'delayed-2');
      expect(after.task).toMatchObject({ status: 'CANCELLED', sent_at: null });
      expect(after.taskResponseList.map((r) => [r.status, r.attempt, r.start_time])).toEqual([
        ['CANCELLED', 0, null],
        ['CANCELLED', 0, null],
      ]);
    },
  },
  {
    name: 'runs a chain of three tasks in order, each handler receiving the results before it',
    run: async (stack) => {
      const post = (identifier: string, endpoint: string, after?: string) =>
        stack.api.post('worker', {
          identifier,
          payload: { seconds: 0 },
          endpoints: [endpoint],
          ...(after === undefined ? {} : { after: [`worker/${after}`] }),
        }) as Promise<TaskView>;
      const first = await post('chain-1', 'console1');
      const second = await post('chain-2', 'console2', 'chain-1');
      const third = await post('chain-3', 'console1', 'chain-2');
      expect([first.status, second.status, third.status]).toEqual(['SENT', 'WAITING', 'WAITING']);
      const done = await stack.api.terminal('worker', 'chain-3');
      expect(done.task.status).toBe('DONE');
      const result = { yiya: 'yippie', yeah: 1234123 };
      expect(done.taskResponseList[0]?.payload).toEqual({
        ...result,
        after: {
          'worker/chain-2': {
            status: 'DONE',
            results: {
              console2: {
                ...result,
                after: { 'worker/chain-1': { status: 'DONE', results: { console1: result } } },
              },
            },
          },
        },
      });
      // each started only once the one before was final
      const finished = async (identifier: string) =>
        Date.parse(String((await stack.api.get('worker', identifier)).task.finished_at));
      const started = (task: TaskWithResponses) =>
        Date.parse(String(task.taskResponseList[0]?.start_time));
      expect(started(await stack.api.get('worker', 'chain-2'))).toBeGreaterThanOrEqual(
        await finished('chain-1'),
      );
      expect(started(done)).toBeGreaterThanOrEqual(await finished('chain-2'));
    },
  },
  {
    name: 'cancels a task after a failed dependency, or runs it, as its policy says',
    run: async (stack) => {
      await stack.api.post('backup', { identifier: 'dep-fails', endpoints: ['console1'] });
      await stack.api.post('worker', {
        identifier: 'dep-cancelled',
        payload: { seconds: 0 },
        endpoints: ['console1', 'console2'],
        after: ['backup/dep-fails'],
      });
      await stack.api.post('worker', {
        identifier: 'dep-runs',
        payload: { seconds: 0 },
        endpoints: ['console2'],
        after: ['backup/dep-fails'],
        on_dependency_failure: 'run',
      });
      const cancelled = await stack.api.terminal('worker', 'dep-cancelled');
      expect(cancelled.task).toMatchObject({
        status: 'CANCELLED',
        cancel_reason: 'dependency backup/dep-fails ended FAILED',
        sent_at: null,
      });
      expect(cancelled.taskResponseList.map((r) => [r.status, r.attempt])).toEqual([
        ['CANCELLED', 0],
        ['CANCELLED', 0],
      ]);
      const ran = await stack.api.terminal('worker', 'dep-runs');
      expect(ran.task.status).toBe('DONE');
      expect(ran.taskResponseList[0]?.payload).toMatchObject({
        after: {
          'backup/dep-fails': {
            status: 'FAILED',
            results: { console1: null },
          },
        },
      });
    },
  },
];
