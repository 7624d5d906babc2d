/**
 * Command handlers, the pure part: a command as the agent's config declares it, its argv for one
 * task, and the lines a command may print to talk to the agent. Nothing here runs a process.
 *
 * A placeholder is a whole argv element `{payload.a.b}`; it is replaced by that payload field,
 * which must be a string or a number. Text around braces, or braces inside a longer element,
 * stay as they are: no payload text is ever spliced into a larger argument, parsed by a shell,
 * or able to add an argument of its own.
 */
import { describeType, isPlainObject, type Fail } from './fields';

export interface CommandSpec {
  /** the program and its arguments; placeholders are whole elements */
  command: string[];
  /** working directory; null: the agent's */
  cwd: string | null;
  /** variables added to the command's environment */
  env: Record<string, string>;
  /** a shorter execution timeout than the task type's, or null */
  timeoutMs: number | null;
}

const PLACEHOLDER = /^\{payload((?:\.[A-Za-z0-9_-]+)+)\}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const KEYS = ['command', 'cwd', 'env', 'timeout'];

/** The payload path a whole-element placeholder names (["a", "b"] for `{payload.a.b}`), or null. */
export function placeholderPath(element: string): string[] | null {
  const match = PLACEHOLDER.exec(element);
  return match === null ? null : (match[1] as string).slice(1).split('.');
}

/**
 * Read one command declaration (`{command: [...], cwd, env, timeout}`) at `path`;
 * `readTimeout` parses the duration. Every problem names the key.
 */
export function readCommandSpec(
  value: unknown,
  path: string,
  fail: Fail,
  readTimeout: (value: unknown, path: string) => number,
): CommandSpec {
  if (!isPlainObject(value)) {
    throw fail(path, `must be a mapping {command, cwd, env, timeout}, got ${describeType(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!KEYS.includes(key)) throw fail(`${path}.${key}`, `unknown key; known: ${KEYS.join(', ')}`);
  }
  const { command, cwd, env, timeout } = value;
  if (!Array.isArray(command) || command.length === 0) {
    throw fail(`${path}.command`, 'must be a non-empty list: the program, then its arguments');
  }
  const argv = command.map((element: unknown, index) => {
    const at = `${path}.command[${index}]`;
    if (typeof element === 'number') return String(element);
    if (typeof element !== 'string' || element === '') {
      throw fail(at, `must be a non-empty string, got ${describeType(element)}`);
    }
    if (element.includes('{payload') && placeholderPath(element) === null) {
      throw fail(
        at,
        'a placeholder must be a whole argument naming a payload field, e.g. "{payload.version}"',
      );
    }
    return element;
  });
  if (placeholderPath(argv[0] as string) !== null) {
    throw fail(`${path}.command[0]`, 'the program must be fixed, not a placeholder');
  }
  if (cwd !== undefined && cwd !== null && (typeof cwd !== 'string' || cwd === '')) {
    throw fail(`${path}.cwd`, `must be a directory, got ${describeType(cwd)}`);
  }
  const vars: Record<string, string> = {};
  if (env !== undefined && env !== null) {
    if (!isPlainObject(env)) throw fail(`${path}.env`, 'must be a mapping of names to strings');
    for (const [name, text] of Object.entries(env)) {
      if (!ENV_NAME.test(name)) throw fail(`${path}.env.${name}`, 'is not a variable name');
      if (typeof text !== 'string' && typeof text !== 'number') {
        throw fail(`${path}.env.${name}`, `must be a string, got ${describeType(text)}`);
      }
      vars[name] = String(text);
    }
  }
  return {
    command: argv,
    cwd: typeof cwd === 'string' ? cwd : null,
    env: vars,
    timeoutMs:
      timeout === undefined || timeout === null ? null : readTimeout(timeout, `${path}.timeout`),
  };
}

/** A task's payload cannot fill a command's placeholder; the run FAILS with this message. */
export class CommandInputError extends Error {
  override name = 'CommandInputError';
}

/** The argv of `command` for a task with `payload`: each placeholder replaced by its field. */
export function commandArgv(command: readonly string[], payload: unknown): string[] {
  return command.map((element) => {
    const path = placeholderPath(element);
    if (path === null) return element;
    let value: unknown = payload;
    for (const key of path) {
      value = isPlainObject(value) && Object.hasOwn(value, key) ? value[key] : undefined;
    }
    const name = `payload.${path.join('.')}`;
    if (typeof value === 'string') return value;
    if (typeof value === 'number' && Number.isFinite(value)) return String(value);
    throw new CommandInputError(
      value === undefined
        ? `the command needs ${name}, which the task's payload does not have`
        : `the command needs ${name} as a string or a number, got ${describeType(value)}`,
    );
  });
}

/** A line a command printed on stdout that speaks to the agent, or null for any other line. */
export type CommandLine =
  | { kind: 'progress'; current: number; total: number | null; text: string | null }
  | { kind: 'result'; json: string };

const PROGRESS_LINE = /^::progress (\d+)(?:\/(\d+))?(?: (.*))?$/;
const RESULT_LINE = /^::result (.*)$/;

export function parseCommandLine(line: string): CommandLine | null {
  const progress = PROGRESS_LINE.exec(line);
  if (progress !== null) {
    return {
      kind: 'progress',
      current: Number(progress[1]),
      total: progress[2] === undefined ? null : Number(progress[2]),
      text: progress[3] ?? null,
    };
  }
  const result = RESULT_LINE.exec(line);
  return result === null ? null : { kind: 'result', json: result[1] as string };
}
