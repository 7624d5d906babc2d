/**
 * Benchmark handler for the task type `noop`: answers at once, so a run measures tasker itself
 * (API, broker, agent, recorder, SQL) and not the work. Plain CommonJS: agents load it with
 * `--handlers <this directory> --types noop`, no build step.
 */
'use strict';

exports.handle_task = function handle_task(_task, response) {
  return response;
};
