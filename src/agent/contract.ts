/**
 * The handler contract, as in the original tasker: a module named after its task type exports
 * `handle_task(task, response, ctx)`. It may set `response.payload`, `response.errnr` and
 * `response.errmsg` and return the response (or nothing), or throw: the task then FAILS with
 * the error's message. Handlers must be idempotent: after a crash a task runs again.
 */
import type { DependencyResult } from '../domain';
import type { Logger } from '../log';

export interface HandlerTask {
  id: number;
  identifier: string;
  type: string;
  payload: unknown;
  /** the addressed endpoints, or null for a broadcast */
  endpoints: string[] | null;
  created_at: string;
  deliver_by: string;
  /**
   * the tasks this one came after (its POST's `after`), in that order, each with its final
   * status and every endpoint's result; payloads past 256 KB in all are left out
   * (`payload_omitted`). Absent when the task came after none.
   */
  dependencies?: DependencyResult[];
}

export interface HandlerResponse {
  payload: unknown;
  /** 0 means success; anything else fails the task */
  errnr: number;
  errmsg: string | null;
}

export interface HandlerContext {
  /** this agent's endpoint name */
  endpoint: string;
  /** 1 on the first run, more after a crash, a redelivery or a retry */
  attempt: number;
  log: Logger;
  /** aborted when the execution timeout passes or the agent shuts down */
  signal: AbortSignal;
  /** report progress; shown per endpoint by GET (throttled) */
  progress(current: number, total?: number | null, line?: string | null): void;
}

export type HandleTask = (
  task: HandlerTask,
  response: HandlerResponse,
  ctx: HandlerContext,
) => HandlerResponse | void | Promise<HandlerResponse | void>;

export type Handlers = ReadonlyMap<string, HandleTask>;
