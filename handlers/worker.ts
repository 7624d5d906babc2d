/**
 * The original tasker's `worker` example: works for a while, then answers with a payload.
 * How long: `payload.seconds` if the task gives it, else $WORKER_SECONDS, else 20. A task that
 * came after others (`after`) also answers, under `after`, what each of them answered.
 * Reports progress every second and stops as soon as the agent aborts it (timeout, cancel or
 * shutdown): a handler that waits should always wait on `ctx.signal`, as this one does.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { HandleTask } from '../src';

function durationSeconds(payload: unknown): number {
  const fromPayload = (payload as { seconds?: unknown } | null)?.seconds;
  if (typeof fromPayload === 'number' && fromPayload >= 0) return fromPayload;
  const fromEnv = Number(process.env.WORKER_SECONDS);
  return Number.isFinite(fromEnv) && fromEnv >= 0 ? fromEnv : 20;
}

/** what heartbeats report for this handler: GET /endpoints counts endpoints by version */
export const version = '1';

export const handle_task: HandleTask = async (task, response, ctx) => {
  const seconds = durationSeconds(task.payload);
  const steps = Math.max(1, Math.ceil(seconds));
  for (let step = 1; step <= steps; step += 1) {
    // rejects with an AbortError once the signal is aborted, and leaves no listener behind
    await sleep((seconds * 1000) / steps, undefined, { signal: ctx.signal });
    ctx.progress(step, steps, `step ${step} of ${steps}`);
  }
  response.payload = { yiya: 'yippie', yeah: 1234123 };
  // a task that came after others passes on what they answered, by task and endpoint
  if (task.dependencies !== undefined) {
    response.payload = {
      yiya: 'yippie',
      yeah: 1234123,
      after: Object.fromEntries(
        task.dependencies.map((dependency) => [
          `${dependency.type}/${dependency.identifier}`,
          {
            status: dependency.status,
            results: Object.fromEntries(
              dependency.responses.map((answer) => [answer.endpoint, answer.payload]),
            ),
          },
        ]),
      ),
    };
  }
  return response;
};
