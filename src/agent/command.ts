/**
 * Command handlers: a task type whose handler is a program (declared in `agent.handlers`, or an
 * executable file `<type>` in a handlers directory). Each run spawns it, never through a shell,
 * in a process group of its own:
 * - argv: the declared command, each whole-element `{payload.x}` placeholder replaced by that
 *   payload field (src/domain/command.ts);
 * - stdin: the task as JSON, which is also in the file $TASKER_TASK_FILE; $TASKER_ENDPOINT,
 *   $TASKER_ATTEMPT, $TASKER_TASK_TYPE, $TASKER_TASK_ID and $TASKER_TASK_IDENTIFIER say the rest.
 *   The agent's own TASKER_* variables (its broker URL) are not passed on;
 * - stdout: `::progress 3/10 text` lines report progress, a `::result {…}` line gives the
 *   response payload, unless the command writes a JSON object to $TASKER_RESULT_FILE;
 * - exit 0: DONE; any other: FAILED with errnr the exit code (128 + signal when killed) and
 *   errmsg the last line of stderr;
 * - past its execution timeout, or cancelled: SIGTERM to its process group, SIGKILL after a grace
 *   period. An agent shutting down stops it the same way and hands the task back.
 * Output past what these need is read and dropped, so a command printing gigabytes costs the
 * agent no memory.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import {
  CommandInputError,
  commandArgv,
  parseCommandLine,
  type CommandSpec,
} from '../domain/command';
import { coerceError } from '../domain';
import { ConfigError } from '../domain/errors';
import { fileVersion, isExecutableFile } from './loader';
import type { HandlerRunner, RunRequest } from './runner';
import {
  CancelRequest,
  cancelledOutcome,
  checkResponse,
  exitErrnr,
  failed,
  lastLine,
  stoppedOutcome,
  timedOutOutcome,
  type Outcome,
} from './run';

/** the longest stdout line read for `::progress` / `::result`; longer ones are dropped */
const MAX_LINE_CHARS = 1024 * 1024;
/** the end of stderr kept for errmsg */
const STDERR_TAIL_CHARS = 4096;
/** after the command exits, how long its output may take to end (a child it left holds it) */
const DRAIN_MS = 2000;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface CommandRunnerOptions {
  /** each command task type's declaration */
  commands: ReadonlyMap<string, CommandSpec>;
  /** each command task type's version, as heartbeats report it */
  versions: ReadonlyMap<string, string>;
  /** after SIGTERM, how long a command may take to stop before SIGKILL */
  killGraceMs: number;
}

/** The environment of a run: the agent's, less its TASKER_* settings, plus the run's. */
function runEnv(spec: CommandSpec, request: RunRequest, files: Record<string, string>) {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('TASKER_')) env[name] = value;
  }
  return {
    ...env,
    ...spec.env,
    ...files,
    TASKER_ENDPOINT: request.endpoint,
    TASKER_ATTEMPT: String(request.attempt),
    TASKER_TASK_TYPE: request.task.type,
    TASKER_TASK_ID: String(request.task.id),
    TASKER_TASK_IDENTIFIER: request.task.identifier,
  };
}

/**
 * Calls `onLine` with each line of a stream, the last one (without a newline) at its end; a line
 * longer than MAX_LINE_CHARS is dropped.
 */
function lines(onLine: (line: string) => void): { push(chunk: string): void; end(): void } {
  let partial = '';
  let dropping = false;
  return {
    push: (chunk) => {
      let text = chunk;
      for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n')) {
        const line = partial + text.slice(0, end);
        if (!dropping) onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
        partial = '';
        dropping = false;
        text = text.slice(end + 1);
      }
      if (dropping) return;
      partial += text;
      if (partial.length > MAX_LINE_CHARS) {
        partial = '';
        dropping = true;
      }
    },
    end: () => {
      if (!dropping && partial !== '') onLine(partial);
      partial = '';
    },
  };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** spawning failed: ENOENT, EACCES, … */
  error: NodeJS.ErrnoException | null;
}

/** Run one command to its end; never rejects. */
export async function runCommand(
  spec: CommandSpec,
  request: RunRequest,
  killGraceMs: number,
): Promise<Outcome> {
  if (request.signal.aborted) return stoppedOutcome(request.signal);
  let argv: string[];
  try {
    argv = commandArgv(spec.command, request.task.payload);
  } catch (err) {
    if (err instanceof CommandInputError) return failed(1, err.message);
    throw err;
  }
  const dir = await mkdtemp(join(tmpdir(), 'tasker-run-'));
  try {
    const taskJson = JSON.stringify(request.task);
    const files = {
      TASKER_TASK_FILE: join(dir, 'task.json'),
      TASKER_RESULT_FILE: join(dir, 'result.json'),
    };
    await writeFile(files.TASKER_TASK_FILE, taskJson, { mode: 0o600 });
    const timeoutMs = Math.min(request.timeoutMs, spec.timeoutMs ?? Number.POSITIVE_INFINITY);
    let resultLine: string | null = null;
    let stderrTail = '';
    let stopping: 'timeout' | 'stopped' | null = null;
    let killTimer: NodeJS.Timeout | null = null;

    const child = spawn(argv[0] as string, argv.slice(1), {
      cwd: spec.cwd ?? undefined,
      env: runEnv(spec, request, files),
      detached: true, // a process group of its own, signalled as a whole
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const signalGroup = (signal: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // the group is gone
      }
    };
    const stop = (why: 'timeout' | 'stopped'): void => {
      if (stopping !== null) return;
      stopping = why;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), killGraceMs);
    };
    const timer = setTimeout(() => stop('timeout'), Math.min(timeoutMs, MAX_TIMER_MS));
    const onAbort = (): void => stop('stopped');
    request.signal.addEventListener('abort', onAbort, { once: true });

    child.stdin.on('error', () => undefined); // a command that does not read its stdin
    child.stdin.end(taskJson);
    child.stdout.setEncoding('utf8');
    const stdoutLines = lines((line) => {
      request.output?.('stdout', line);
      const said = parseCommandLine(line);
      if (said?.kind === 'progress') request.progress(said.current, said.total, said.text);
      if (said?.kind === 'result') resultLine = said.json;
    });
    child.stdout.on('data', stdoutLines.push);
    child.stdout.on('end', stdoutLines.end);
    child.stderr.setEncoding('utf8');
    const stderrLines = lines((line) => request.output?.('stderr', line));
    child.stderr.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
      stderrLines.push(chunk);
    });
    child.stderr.on('end', stderrLines.end);

    const exit = await new Promise<Exit>((resolve) => {
      child.once('error', (error: NodeJS.ErrnoException) =>
        resolve({ code: null, signal: null, error }),
      );
      child.once('exit', (code, signal) => {
        // its output ends with it, unless something it started holds it open
        const drained = setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
        }, DRAIN_MS);
        child.once('close', () => {
          clearTimeout(drained);
          resolve({ code, signal, error: null });
        });
      });
    });
    clearTimeout(timer);
    if (killTimer !== null) clearTimeout(killTimer);
    request.signal.removeEventListener('abort', onAbort);

    if (exit.error !== null) {
      const errnr = exit.error.code === 'ENOENT' ? 127 : 126;
      return failed(errnr, `cannot run ${argv[0]}: ${exit.error.message}`);
    }
    if (stopping === 'timeout') return timedOutOutcome('command', timeoutMs);
    if (stopping === 'stopped') {
      const reason: unknown = request.signal.reason;
      if (reason instanceof CancelRequest) return cancelledOutcome(reason.reason);
      return stoppedOutcome(request.signal);
    }
    const errnr = exit.code === 0 && exit.signal === null ? 0 : exitErrnr(exit.code, exit.signal);
    let payload: unknown = null;
    try {
      payload = await readResult(files.TASKER_RESULT_FILE, resultLine);
    } catch (err) {
      return failed(errnr === 0 ? 1 : errnr, coerceError(err).message);
    }
    const said = lastLine(stderrTail);
    const errmsg =
      errnr === 0
        ? null
        : said !== ''
          ? said
          : exit.signal !== null
            ? `${argv[0]} was killed by ${exit.signal}`
            : `${argv[0]} exited with code ${exit.code}`;
    return checkResponse({ payload, errnr, errmsg }, { payload: null, errnr: 0, errmsg: null });
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The payload: the JSON object in the result file, else the last `::result` line's, else none. */
async function readResult(file: string, resultLine: string | null): Promise<unknown> {
  let text: string | null = null;
  let from = '$TASKER_RESULT_FILE';
  try {
    text = await readFile(file, 'utf8');
  } catch {
    text = resultLine;
    from = 'the ::result line';
  }
  if (text === null || text.trim() === '') return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`the command's result in ${from} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`the command's result in ${from} must be a JSON object`);
  }
  return value;
}

/** Runs the command task types; `others` runs the rest (JavaScript handlers). */
export function withCommands(options: CommandRunnerOptions, others: HandlerRunner): HandlerRunner {
  const versions = new Map([...others.versions(), ...options.versions]);
  return {
    has: (type) => options.commands.has(type) || others.has(type),
    versions: () => versions,
    run: async (request) => {
      const spec = options.commands.get(request.task.type);
      if (spec === undefined) return others.run(request);
      try {
        return await runCommand(spec, request, options.killGraceMs);
      } catch (err) {
        return failed(1, `could not run the command: ${coerceError(err).message}`);
      }
    },
    close: () => others.close(),
  };
}

/** Where `program` is: a path (against `cwd`), or the first match on PATH; null when none. */
async function locate(program: string, cwd: string): Promise<string | null> {
  if (program.includes('/')) {
    const file = resolve(cwd, program);
    return (await isExecutableFile(file)) ? file : null;
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const file = join(dir, program);
    if (await isExecutableFile(file)) return file;
  }
  return null;
}

/**
 * The command task types and their versions: those `declared` in `agent.handlers` (checked
 * here: a configured task type, a program that exists and is executable, a cwd that is a
 * directory; errors name the key) and the executables found in the handlers directories.
 */
export async function commandHandlers(
  declared: Readonly<Record<string, CommandSpec>>,
  executables: ReadonlyMap<string, string>,
  types: readonly string[],
): Promise<Pick<CommandRunnerOptions, 'commands' | 'versions'>> {
  const commands = new Map<string, CommandSpec>();
  const versions = new Map<string, string>();
  for (const [type, spec] of Object.entries(declared)) {
    const key = `agent.handlers.${type}`;
    if (!types.includes(type)) {
      throw new ConfigError(key, `names no task type; the task types are ${types.join(', ')}`);
    }
    if (
      spec.cwd !== null &&
      !(await stat(spec.cwd).then(
        (s) => s.isDirectory(),
        () => false,
      ))
    ) {
      throw new ConfigError(`${key}.cwd`, `${spec.cwd} is not a directory`);
    }
    const program = spec.command[0] as string;
    const file = await locate(program, spec.cwd ?? process.cwd());
    if (file === null) {
      throw new ConfigError(
        `${key}.command[0]`,
        program.includes('/')
          ? `${program} does not exist or is not an executable file`
          : `${program} is not an executable on PATH`,
      );
    }
    commands.set(type, spec);
    const digest = createHash('sha256')
      .update(JSON.stringify(spec.command))
      .update(await readFile(file))
      .digest('hex');
    versions.set(type, `sha256:${digest.slice(0, 12)}`);
  }
  for (const [type, file] of executables) {
    if (commands.has(type)) continue;
    commands.set(type, { command: [file], cwd: null, env: {}, timeoutMs: null });
    versions.set(type, await fileVersion(file));
  }
  return { commands, versions };
}
