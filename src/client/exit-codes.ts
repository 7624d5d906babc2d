/**
 * The client's exit codes: a task's outcome for scripts (`send --wait`, `watch`, `get`), and one
 * code for everything that kept the question from being answered.
 */
import type { TaskStatus } from '../domain';

export const EXIT = {
  DONE: 0,
  FAILED: 1,
  INCOMPLETE: 2,
  CANCELLED: 3,
  /** a bad command line, an unreachable server, or a request the server refused */
  USAGE_OR_CONNECTION: 4,
  /** Ctrl-C while watching: the task goes on without us (128 + SIGINT, as shells do) */
  INTERRUPTED: 130,
} as const;

/** The exit code of a task's status: its outcome once final, 0 while it runs. */
export function exitCodeOf(status: TaskStatus): number {
  switch (status) {
    case 'FAILED':
      return EXIT.FAILED;
    case 'INCOMPLETE':
      return EXIT.INCOMPLETE;
    case 'CANCELLED':
      return EXIT.CANCELLED;
    default:
      return EXIT.DONE;
  }
}

/** Why the client could not do what it was asked: one line for the user, exit code 4. */
export class ClientError extends Error {
  readonly exitCode: number = EXIT.USAGE_OR_CONNECTION;
}

/** A command line the client does not understand; the message names the argument. */
export class UsageError extends ClientError {}
