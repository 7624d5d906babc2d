/**
 * tasker's entry point for handler authors: the handler contract's types and the error
 * classes. A handler module exports `handle_task(task, response, ctx)`; see docs/handlers.md.
 *
 *   import type { HandleTask } from 'tasker';
 *   export const handle_task: HandleTask = async (task, response, ctx) => { ... };
 */
export type { HandleTask, HandlerContext, HandlerResponse, HandlerTask } from './agent/contract';
export type { DependencyResponse, DependencyResult } from './domain/dependencies';
export { TaskerError, coerceError, type ErrorCode } from './domain/errors';
export { BlockedError, RetryableError, BLOCKED_ERRNR, RETRY_ERRNR } from './domain/retry';
export { VERSION } from './package';
