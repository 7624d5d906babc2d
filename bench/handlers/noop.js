/**
 * Benchmark handler for the task type `noop`: answers at once, so a run measures tasker itself
 * (API, broker, agent, recorder, SQL) and not the work; `payload.sleep_ms` makes it wait that
 * long first (the watchers' part of the width phase keeps tasks busy so). Plain CommonJS: agents
 * load it with `--handlers <this directory> --types noop`, no build step.
 */
'use strict';

exports.handle_task = async function handle_task(task, response, ctx) {
  const ms = task.payload && typeof task.payload.sleep_ms === 'number' ? task.payload.sleep_ms : 0;
  if (ms > 0) {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      ctx.signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          reject(ctx.signal.reason);
        },
        { once: true },
      );
    });
  }
  return response;
};
