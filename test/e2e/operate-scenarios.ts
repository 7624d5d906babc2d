/**
 * Operating a broadcast end to end, on both stacks (part of the one table in scenarios.ts): find
 * tasks, wait for and watch one, cancel it or some of its endpoints, retry the endpoints that did
 * not succeed, roll out in waves with an error budget, and decide by a success threshold. The
 * agents are console1 and console2, running the shipped `worker` (which waits `payload.seconds`)
 * and `backup` (which always fails) handlers; console3 has no agent.
 */
import type { ResponseDetail, TaskView, TaskWithResponses } from '../../src/store';
import { callJson, type Answer } from '../support/api-client';
import { sleep, waitFor } from '../support/waiting';
import type { E2eStack, ProcessStack, ScenarioEntry } from './scenarios';

/** A request to the stack's API: its status, JSON body (null when empty) and headers. */
export function call<T = unknown>(
  stack: E2eStack,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer<T>> {
  return callJson<T>(stack.api.url(path), method, body, headers);
}

const statuses = (task: TaskWithResponses): Record<string, string> =>
  Object.fromEntries(task.taskResponseList.map((r) => [r.endpoint, r.status]));

/** Wait until every named endpoint is RUNNING. */
function running(stack: E2eStack, type: string, identifier: string, endpoints: string[]) {
  return waitFor(
    () => stack.api.get(type, identifier),
    (t) => endpoints.every((e) => statuses(t)[e] === 'RUNNING'),
    15_000,
    `${identifier} RUNNING on ${endpoints.join(', ')}`,
  );
}

/** The events of a Server-Sent Events stream until `end`, or what came within `ms`. */
async function readStream(
  url: string,
  ms: number,
): Promise<Array<{ event: string; data: Record<string, unknown> }>> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  const events: Array<{ event: string; data: Record<string, unknown> }> = [];
  try {
    const res = await fetch(url, { signal: controller.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let at = buffer.indexOf('\n\n'); at >= 0; at = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined) {
          events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
        }
      }
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  } finally {
    clearTimeout(timer);
  }
  return events;
}

export const OPERATE_SCENARIOS: ScenarioEntry[] = [
  {
    name: 'lists tasks newest first, filtered, a page at a time',
    run: async (stack) => {
      for (const n of [1, 2, 3]) {
        await stack.api.post('worker', {
          identifier: `list-${n}`,
          payload: { seconds: 0 },
          endpoints: ['console1'],
        });
      }
      const first = await call<{ tasks: TaskView[]; next: string | null }>(
        stack,
        'GET',
        'worker?identifier=list-&limit=2',
      );
      expect(first.status).toBe(200);
      expect(first.body.tasks.map((t) => t.identifier)).toEqual(['list-3', 'list-2']);
      expect(first.body.next).toEqual(expect.any(String));
      const second = await call<{ tasks: TaskView[]; next: string | null }>(
        stack,
        'GET',
        `worker?identifier=list-&limit=2&cursor=${first.body.next}`,
      );
      expect(second.body.tasks.map((t) => t.identifier)).toEqual(['list-1']);
      expect(second.body.next).toBeNull();
      // across types, by status and by endpoint
      const failed = await call<{ tasks: TaskView[] }>(stack, 'GET', 'tasks?status=FAILED');
      expect(failed.body.tasks.some((t) => t.type === 'backup')).toBe(true);
      expect(failed.body.tasks.every((t) => t.status === 'FAILED')).toBe(true);
      const console3 = await call<{ tasks: TaskView[] }>(stack, 'GET', 'worker?endpoint=console3');
      expect(console3.body.tasks.map((t) => t.identifier)).toContain('i1');
      expect(console3.body.tasks.every((t) => t.endpoints.includes('console3'))).toBe(true);
    },
  },
  {
    name: 'answers a GET with ?wait once the task is final, and ?version once it changed',
    run: async (stack) => {
      await stack.api.post('worker', {
        identifier: 'wait-1',
        payload: { seconds: 2 },
        endpoints: ['console1'],
      });
      // nothing changed since: not modified. The running task may change between two GETs (a
      // 200 with a newer ETag is right then): try again with the newer one
      let now = await call<TaskWithResponses>(stack, 'GET', 'worker/wait-1');
      let notModified = false;
      for (let tries = 0; tries < 5 && !notModified; tries += 1) {
        const etag = now.headers.get('etag') as string;
        expect(etag).toBe(`W/"${now.body.task.id}.${now.body.task.version}"`);
        const again = await call<TaskWithResponses>(stack, 'GET', 'worker/wait-1', undefined, {
          'if-none-match': etag,
        });
        notModified = again.status === 304;
        if (!notModified) {
          expect(again.status).toBe(200);
          expect(again.body.task.version).toBeGreaterThan(now.body.task.version);
          now = again;
        }
      }
      expect(notModified).toBe(true);
      const changed = await call<TaskWithResponses>(
        stack,
        'GET',
        `worker/wait-1?wait=20s&version=${now.body.task.version}`,
      );
      expect(changed.body.task.version).toBeGreaterThan(now.body.task.version);
      const started = Date.now();
      const final = await call<TaskWithResponses>(stack, 'GET', 'worker/wait-1?wait=20s');
      expect(final.body.task.status).toBe('DONE');
      expect(Date.now() - started).toBeLessThan(15_000);
    },
  },
  {
    name: 'streams a task as Server-Sent Events: a snapshot, its changes, then the end',
    run: async (stack) => {
      await stack.api.post('worker', {
        identifier: 'watch-1',
        payload: { seconds: 2 },
        endpoints: ['console1', 'console2'],
      });
      const events = await readStream(stack.api.url('worker/watch-1/events'), 20_000);
      expect(events[0]?.event).toBe('snapshot');
      expect(events.at(-1)).toEqual({ event: 'end', data: { status: 'DONE' } });
      const done = events.filter((e) => e.event === 'response' && e.data.status === 'DONE');
      expect(done.map((e) => e.data.endpoint).sort()).toEqual(['console1', 'console2']);
    },
  },
  {
    name: 'cancels a running task: its handlers are stopped and reported CANCELLED',
    run: async (stack) => {
      await stack.api.post('worker', {
        identifier: 'cancel-1',
        payload: { seconds: 30 },
        endpoints: ['console1', 'console2'],
      });
      await running(stack, 'worker', 'cancel-1', ['console1', 'console2']);
      const started = Date.now();
      const cancel = await call<TaskView>(stack, 'POST', 'worker/cancel-1/cancel', {
        reason: 'bad release',
      });
      expect(cancel.status).toBe(200);
      expect(cancel.body.cancel_reason).toBe('bad release');
      const done = await stack.api.terminal('worker', 'cancel-1');
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(done.task.status).toBe('CANCELLED');
      for (const response of done.taskResponseList) {
        expect(response).toMatchObject({ status: 'CANCELLED', errnr: -2 });
        expect(response.errmsg).toContain('bad release');
      }
      // again: nothing changes
      const again = await call<TaskView>(stack, 'POST', 'worker/cancel-1/cancel');
      expect(again.status).toBe(200);
      expect(again.body.version).toBe(done.task.version);
    },
  },
  {
    name: 'cancels one endpoint of a task while the other finishes',
    run: async (stack) => {
      await stack.api.post('worker', {
        identifier: 'cancel-2',
        payload: { seconds: 3 },
        endpoints: ['console1', 'console2'],
      });
      await running(stack, 'worker', 'cancel-2', ['console2']);
      expect(
        (await call(stack, 'POST', 'worker/cancel-2/cancel', { endpoints: ['console2'] })).status,
      ).toBe(200);
      const done = await stack.api.terminal('worker', 'cancel-2');
      expect(statuses(done)).toEqual({ console1: 'DONE', console2: 'CANCELLED' });
      expect(done.task.status).toBe('CANCELLED');
    },
  },
  {
    name: 'retries the endpoints that failed as a new round, keeping the first in the history',
    run: async (stack) => {
      await stack.api.post('backup', {
        identifier: 'retry-1',
        endpoints: ['console1', 'console2'],
      });
      const first = await stack.api.terminal('backup', 'retry-1');
      expect(first.task.status).toBe('FAILED');
      // two clients pressing retry at once make one round
      const [a, b] = await Promise.all([
        call<TaskView>(stack, 'POST', 'backup/retry-1/retry'),
        call<TaskView>(stack, 'POST', 'backup/retry-1/retry'),
      ]);
      expect([a.status, b.status]).toEqual([200, 200]);
      expect([a.body.round, b.body.round]).toEqual([2, 2]);
      const second = await stack.api.terminal('backup', 'retry-1');
      expect(second.task).toMatchObject({ status: 'FAILED', round: 2 });
      const detail = await call<ResponseDetail>(stack, 'GET', 'backup/retry-1/responses/console1');
      expect(detail.body).toMatchObject({ status: 'FAILED', round: 2, errnr: 32 });
      expect(detail.body.history).toEqual([
        expect.objectContaining({
          round: 1,
          status: 'FAILED',
          errnr: 32,
          errmsg: 'could not backup!',
        }),
      ]);
      // a task still running, and one with nothing left to retry, are refused
      await stack.api.post('worker', {
        identifier: 'retry-2',
        payload: { seconds: 2 },
        endpoints: ['console1'],
      });
      const busy = await call<{ error: { code: string } }>(stack, 'POST', 'worker/retry-2/retry');
      expect(busy.status).toBe(409);
      expect(busy.body.error.code).toBe('task_not_final');
      await stack.api.terminal('worker', 'retry-2');
      const nothing = await call<{ error: { code: string } }>(
        stack,
        'POST',
        'worker/retry-2/retry',
      );
      expect(nothing.status).toBe(409);
      expect(nothing.body.error.code).toBe('nothing_to_retry');
    },
  },
  {
    name: 'retries an endpoint whose agent came back, and the task ends DONE',
    processesOnly: 'only there can an agent for a new endpoint be started during the test',
    run: async (stack) => {
      const processes = stack as ProcessStack;
      await stack.api.post('worker', {
        identifier: 'retry-3',
        payload: { seconds: 0 },
        endpoints: ['console1', 'console4'],
      });
      const first = await stack.api.terminal('worker', 'retry-3');
      expect(statuses(first)).toEqual({ console1: 'DONE', console4: 'UNDELIVERED' });
      await processes.startAgent('console4');
      expect(
        (await call(stack, 'POST', 'worker/retry-3/retry', { endpoints: ['console4'] })).status,
      ).toBe(200);
      const done = await stack.api.terminal('worker', 'retry-3');
      expect(done.task).toMatchObject({ status: 'DONE', round: 2 });
      expect(statuses(done)).toEqual({ console1: 'DONE', console4: 'DONE' });
      // gone again, so that later broadcasts reach console1 and console2 only
      expect(await processes.agent('console4').stop()).toBe(0);
    },
  },
  {
    name: 'rolls out in waves, the next after a pause, and stops when failures exceed the budget',
    run: async (stack) => {
      await stack.api.post('worker', {
        identifier: 'waves-1',
        payload: { seconds: 0 },
        endpoints: ['console1', 'console2'],
        rollout: { batch: 1, pause: '1s' },
      });
      const waves = await stack.api.terminal('worker', 'waves-1');
      expect(waves.task.status).toBe('DONE');
      expect(waves.task.rollout).toMatchObject({ batch: '1', waves_sent: 2 });
      const [one, two] = waves.taskResponseList;
      expect([one?.wave, two?.wave]).toEqual([1, 2]);
      // the second wave went out after the first was final, and a pause
      expect(Date.parse(two?.start_time as string)).toBeGreaterThanOrEqual(
        Date.parse(one?.finished_at as string) + 900,
      );

      await stack.api.post('backup', {
        identifier: 'waves-2',
        endpoints: ['console1', 'console2'],
        rollout: { batch: 1, max_errors: 0 },
      });
      const stopped = await stack.api.terminal('backup', 'waves-2');
      expect(stopped.task).toMatchObject({
        status: 'FAILED',
        stopped_reason: 'stopped after 1 failure, max_errors 0',
      });
      expect(statuses(stopped)).toEqual({ console1: 'FAILED', console2: 'CANCELLED' });
      expect(stopped.taskResponseList[1]?.errmsg).toBe('stopped after 1 failure, max_errors 0');
    },
  },
  {
    name: 'decides a task DONE once its success threshold is met, the others still listed',
    run: async (stack) => {
      await stack.api.post('worker', {
        identifier: 'threshold-1',
        payload: { seconds: 0 },
        endpoints: ['console1', 'console3'],
        success_threshold: '50%',
      });
      const done = await stack.api.terminal('worker', 'threshold-1');
      expect(done.task.status).toBe('DONE');
      expect(statuses(done)).toEqual({ console1: 'DONE', console3: 'UNDELIVERED' });
      expect(done.task.counts).toMatchObject({ done: 1, undelivered: 1 });
    },
  },
  {
    name: 'answers bad requests to the new routes with a 4xx naming the field',
    run: async (stack) => {
      const bad: Array<[string, 'GET' | 'POST', string, unknown, number, RegExp]> = [
        [
          'cancel of an unknown task',
          'POST',
          'worker/nope/cancel',
          undefined,
          404,
          /no worker task/,
        ],
        [
          'batch 0',
          'POST',
          'worker',
          { identifier: 'b1', endpoints: ['console1'], rollout: { batch: 0 } },
          400,
          /rollout\.batch must be/,
        ],
        [
          'a batch of 150%',
          'POST',
          'worker',
          { identifier: 'b2', endpoints: ['console1'], rollout: { batch: '150%' } },
          400,
          /rollout\.batch .*got "150%"/,
        ],
        [
          'max_errors -1',
          'POST',
          'worker',
          { identifier: 'b3', endpoints: ['console1'], rollout: { batch: 1, max_errors: -1 } },
          400,
          /rollout\.max_errors must be/,
        ],
        [
          'a rollout of a broadcast',
          'POST',
          'worker',
          { identifier: 'b4', rollout: { batch: 1 } },
          400,
          /rollout needs endpoints/,
        ],
        [
          'a wait past the maximum',
          'GET',
          'worker/wait-1?wait=1h',
          undefined,
          400,
          /wait must be at most/,
        ],
        ['an unknown status', 'GET', 'tasks?status=LOST', undefined, 400, /status names "LOST"/],
        ['a made-up cursor', 'GET', 'tasks?cursor=abc', undefined, 400, /cursor is not a cursor/],
        [
          'a retry naming an endpoint not of the task',
          'POST',
          'backup/retry-1/retry',
          { endpoints: ['console9'] },
          400,
          /endpoints\[0\] "console9" is not an endpoint/,
        ],
        [
          'the response of an endpoint not of the task',
          'GET',
          'backup/retry-1/responses/console9',
          undefined,
          404,
          /no response of endpoint "console9"/,
        ],
      ];
      for (const [what, method, path, body, status, message] of bad) {
        const answer = await call<{ error: { message: string } }>(stack, method, path, body);
        expect([what, answer.status, answer.body.error.message]).toEqual([
          what,
          status,
          expect.stringMatching(message),
        ]);
      }
      // a cancel of a final task changes nothing and says so with the task as it is
      const final = await call<TaskView>(stack, 'POST', 'worker/list-1/cancel');
      expect(final.status).toBe(200);
      expect(final.body.status).toBe('DONE');
      await sleep(0);
    },
  },
];
