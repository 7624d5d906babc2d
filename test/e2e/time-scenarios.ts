/**
 * Time end to end, on both stacks (part of the one table in scenarios.ts): a task held until its
 * `not_before`, released by the scheduler and published by the relay, with its delivery
 * deadline counted from its release; and one cancelled before its time, which never runs.
 */
import type { TaskView } from '../../src/store';
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
];
