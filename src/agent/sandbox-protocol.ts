/**
 * The IPC messages between the agent and its sandboxed handler processes (sandbox.ts and
 * sandbox-child.ts). Both run from the same build, so there is no version to negotiate.
 */
import type { HandlerTask } from './contract';
import type { Outcome } from './run';

export type ParentMessage =
  /** import these handler files now, and say which failed */
  | { kind: 'load'; files: string[] }
  | {
      kind: 'run';
      id: number;
      file: string;
      task: HandlerTask;
      endpoint: string;
      attempt: number;
      timeoutMs: number;
    }
  /**
   * abort the run's ctx.signal; the handler should stop: the run is abandoned (shutdown) or
   * CANCELLED (cancel, with the operator's reason)
   */
  | { kind: 'abort'; id: number; cause: 'shutdown' | 'cancel'; reason: string };

export type ChildMessage =
  /** the process is up and takes runs */
  | { kind: 'ready' }
  /** the files that failed to load, and the `version` each loaded one exports, by file */
  | { kind: 'loaded'; errors: string[]; versions: Record<string, string | null> }
  | { kind: 'progress'; id: number; current: unknown; total: unknown; line: unknown }
  /** one JSON log line the handler wrote through ctx.log */
  | { kind: 'log'; id: number; line: string }
  | { kind: 'done'; id: number; outcome: Outcome };
