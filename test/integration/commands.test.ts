/**
 * Command handlers with real processes: what a command is given (argv, stdin, files, env), how
 * what it does becomes a response (exit code, stderr, result file or line, progress), and how
 * it is stopped (timeout, cancel, shutdown: its whole process group, SIGKILL when it ignores
 * SIGTERM). Also the agent-start checks of `agent.handlers`. No services needed.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandHandlers, runCommand } from '../../src/agent';
import { CancelRequest } from '../../src/agent/run';
import type { RunRequest } from '../../src/agent/runner';
import type { CommandSpec } from '../../src/domain/command';
import { ConfigError } from '../../src/domain/errors';
import { silentLogger } from '../../src/log';
import { ROOT } from '../support/child-processes';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tasker-commands-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An executable shell script in the test directory. */
function script(name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

function spec(command: string[], extra: Partial<CommandSpec> = {}): CommandSpec {
  return { command, cwd: null, env: {}, timeoutMs: null, ...extra };
}

interface Seen {
  progress: Array<[unknown, unknown, unknown]>;
}

function request(payload: unknown, extra: Partial<RunRequest> = {}, seen?: Seen): RunRequest {
  return {
    task: {
      id: 7,
      identifier: 'cmd-1',
      type: 'deploy',
      payload,
      endpoints: ['web1'],
      created_at: '2026-11-30T00:00:00.000Z',
      deliver_by: '2026-11-30T00:01:00.000Z',
    },
    endpoint: 'web1',
    attempt: 2,
    timeoutMs: 20_000,
    signal: new AbortController().signal,
    log: silentLogger,
    progress: (current, total, line) => seen?.progress.push([current, total, line]),
    ...extra,
  };
}

it('exit 0 with a JSON object in $TASKER_RESULT_FILE: DONE with that payload', async () => {
  const file = script('ok', 'printf \'{"deployed": "%s"}\' "$1" > "$TASKER_RESULT_FILE"');
  const outcome = await runCommand(
    spec([file, '{payload.version}']),
    request({ version: '1.2' }),
    1000,
  );
  expect(outcome).toEqual({
    status: 'DONE',
    errnr: 0,
    errmsg: null,
    payload: { deployed: '1.2' },
    abandoned: false,
  });
});

it('reports ::progress lines and takes the last ::result line as the payload', async () => {
  const file = script(
    'progress',
    'echo "::progress 1/3 first"; echo "noise"; echo "::progress 2/3"; echo \'::result {"n": 1}\'; echo \'::result {"n": 2}\'',
  );
  const seen: Seen = { progress: [] };
  const outcome = await runCommand(spec([file]), request({}, {}, seen), 1000);
  expect(outcome.status).toBe('DONE');
  expect(outcome.payload).toEqual({ n: 2 });
  expect(seen.progress).toEqual([
    [1, 3, 'first'],
    [2, 3, null],
  ]);
});

it("hands each line of stdout and stderr to the run's output, the last one without a newline too", async () => {
  const file = script('prints', 'echo out1; echo err1 >&2; echo out2; printf "err2" >&2');
  const output: Array<[string, string]> = [];
  const outcome = await runCommand(
    spec([file]),
    request({}, { output: (stream, line) => output.push([stream, line]) }),
    1000,
  );
  expect(outcome.status).toBe('DONE');
  expect(output.filter(([stream]) => stream === 'stdout')).toEqual([
    ['stdout', 'out1'],
    ['stdout', 'out2'],
  ]);
  expect(output.filter(([stream]) => stream === 'stderr')).toEqual([
    ['stderr', 'err1'],
    ['stderr', 'err2'],
  ]);
});

it('a non-zero exit: FAILED, errnr the exit code, errmsg the last line of stderr', async () => {
  const file = script('fails', 'echo "starting" >&2; echo "disk full on /var" >&2; echo; exit 3');
  const outcome = await runCommand(spec([file]), request({}), 1000);
  expect(outcome).toMatchObject({ status: 'FAILED', errnr: 3, errmsg: 'disk full on /var' });
});

it('a non-zero exit without stderr says so', async () => {
  const file = script('silent-fail', 'exit 4');
  const outcome = await runCommand(spec([file]), request({}), 1000);
  expect(outcome).toMatchObject({
    status: 'FAILED',
    errnr: 4,
    errmsg: `${file} exited with code 4`,
  });
});

it("gives the task on stdin and in $TASKER_TASK_FILE, and the run in env, not the agent's TASKER_*", async () => {
  const file = script(
    'inspect',
    'stdin=$(cat)\n' +
      'node -e \'const fs=require("fs");const [stdin,f]=process.argv.slice(1);' +
      'fs.writeFileSync(process.env.TASKER_RESULT_FILE, JSON.stringify({stdin: JSON.parse(stdin),' +
      ' file: JSON.parse(fs.readFileSync(f,"utf8")), env: {endpoint: process.env.TASKER_ENDPOINT,' +
      ' attempt: process.env.TASKER_ATTEMPT, type: process.env.TASKER_TASK_TYPE,' +
      ' id: process.env.TASKER_TASK_ID, identifier: process.env.TASKER_TASK_IDENTIFIER,' +
      ' broker: process.env.TASKER_BROKER_URL ?? null, mine: process.env.MINE}}))\' "$stdin" "$TASKER_TASK_FILE"',
  );
  process.env.TASKER_BROKER_URL = 'amqp://agent:secret@broker';
  try {
    const outcome = await runCommand(
      spec([file], { env: { MINE: 'yes' } }),
      request({ a: 1 }),
      1000,
    );
    expect(outcome.status).toBe('DONE');
    const payload = outcome.payload as Record<string, Record<string, unknown>>;
    expect(payload.stdin).toMatchObject({
      id: 7,
      identifier: 'cmd-1',
      type: 'deploy',
      payload: { a: 1 },
    });
    expect(payload.file).toEqual(payload.stdin);
    expect(payload.env).toEqual({
      endpoint: 'web1',
      attempt: '2',
      type: 'deploy',
      id: '7',
      identifier: 'cmd-1',
      broker: null,
      mine: 'yes',
    });
  } finally {
    delete process.env.TASKER_BROKER_URL;
  }
});

it.each([
  ['; touch INJECTED'],
  ['$(touch INJECTED)'],
  ['`touch INJECTED`'],
  ['--help'],
  ['-rf'],
  ['line one\nline two'],
  ['x && touch INJECTED'],
])('passes %j to the program as one argument, run by no shell', async (value) => {
  const file = script(
    'argv',
    'node -e \'require("fs").writeFileSync(process.env.TASKER_RESULT_FILE, JSON.stringify({argv: process.argv.slice(1)}))\' -- "$@"',
  );
  const outcome = await runCommand(
    spec([file, '--version', '{payload.version}', 'last'], { cwd: dir }),
    request({ version: value }),
    1000,
  );
  expect(outcome.payload).toEqual({ argv: ['--version', value, 'last'] });
  expect(existsSync(join(dir, 'INJECTED'))).toBe(false);
});

it('fails a task whose payload lacks a placeholder field, without running anything', async () => {
  const marker = join(dir, 'ran');
  const file = script('never', `touch ${marker}`);
  const outcome = await runCommand(spec([file, '{payload.version}']), request({}), 1000);
  expect(outcome).toMatchObject({
    status: 'FAILED',
    errmsg: "the command needs payload.version, which the task's payload does not have",
  });
  expect(existsSync(marker)).toBe(false);
});

it('a program that does not exist: FAILED with errnr 127', async () => {
  const outcome = await runCommand(spec([join(dir, 'missing')]), request({}), 1000);
  expect(outcome.status).toBe('FAILED');
  expect(outcome.errnr).toBe(127);
  expect(outcome.errmsg).toContain(`cannot run ${join(dir, 'missing')}`);
});

it('a result file that is not a JSON object: FAILED naming it', async () => {
  const file = script('bad-result', 'echo "[1, 2]" > "$TASKER_RESULT_FILE"');
  const outcome = await runCommand(spec([file]), request({}), 1000);
  expect(outcome).toMatchObject({
    status: 'FAILED',
    errmsg: "the command's result in $TASKER_RESULT_FILE must be a JSON object",
  });
});

it('past its timeout: SIGTERM to the group, SIGKILL to what ignores it; TIMED_OUT', async () => {
  const pidFile = join(dir, 'grandchild.pid');
  // the script and a child it starts both ignore SIGTERM
  const file = script(
    'stubborn',
    `trap '' TERM\nsh -c "trap '' TERM; sleep 30" &\necho $! > ${pidFile}\nsleep 30`,
  );
  const started = Date.now();
  const outcome = await runCommand(spec([file], { timeoutMs: 500 }), request({}), 500);
  expect(outcome).toMatchObject({
    status: 'TIMED_OUT',
    errmsg: 'command did not finish within the execution timeout of 500 ms',
  });
  expect(Date.now() - started).toBeLessThan(10_000);
  // killed with its group: gone, or a zombie its new parent has not reaped yet
  const grandchild = readFileSync(pidFile, 'utf8').trim();
  const state = existsSync(`/proc/${grandchild}/stat`)
    ? (readFileSync(`/proc/${grandchild}/stat`, 'utf8').split(') ')[1]?.[0] ?? '')
    : 'gone';
  expect(['gone', 'Z']).toContain(state);
});

it('cancelled: SIGTERM to the group, CANCELLED with the reason', async () => {
  const file = script('long', 'sleep 30');
  const abort = new AbortController();
  const running = runCommand(spec([file]), request({}, { signal: abort.signal }), 5000);
  setTimeout(() => abort.abort(new CancelRequest('bad release')), 200);
  expect(await running).toMatchObject({ status: 'CANCELLED', errmsg: 'cancelled: bad release' });
});

it('the agent shutting down: stopped and handed back', async () => {
  const file = script('long2', 'sleep 30');
  const abort = new AbortController();
  const running = runCommand(spec([file]), request({}, { signal: abort.signal }), 5000);
  setTimeout(() => abort.abort(new Error('shutdown')), 200);
  expect((await running).abandoned).toBe(true);
});

it('reads 200 MB of output without keeping it', async () => {
  const file = script(
    'loud',
    "head -c 100000000 /dev/zero | tr '\\0' 'x'\nyes 'a line of output' | head -c 100000000\necho\necho '::result {\"ok\": true}'",
  );
  const before = process.memoryUsage().rss;
  const outcome = await runCommand(spec([file]), request({}), 1000);
  expect(outcome.payload).toEqual({ ok: true });
  expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
});

describe('agent.handlers, checked at agent start', () => {
  const check = async (declared: Record<string, CommandSpec>): Promise<ConfigError> => {
    try {
      await commandHandlers(declared, new Map(), ['deploy', 'worker']);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return err as ConfigError;
    }
    throw new Error('expected a ConfigError');
  };

  it('refuses a program that does not exist', async () => {
    const error = await check({ deploy: spec([join(dir, 'nope')]) });
    expect(error.key).toBe('agent.handlers.deploy.command[0]');
    expect(error.message).toContain('does not exist or is not an executable file');
  });

  it('refuses a program that is not executable', async () => {
    writeFileSync(join(dir, 'plain'), 'echo');
    const error = await check({ deploy: spec([join(dir, 'plain')]) });
    expect(error.key).toBe('agent.handlers.deploy.command[0]');
  });

  it('refuses a name not on PATH', async () => {
    const error = await check({ deploy: spec(['no-such-program-here']) });
    expect(error.message).toContain('no-such-program-here is not an executable on PATH');
  });

  it('refuses a task type that is not configured', async () => {
    const error = await check({ backup: spec(['/bin/true']) });
    expect(error.key).toBe('agent.handlers.backup');
    expect(error.message).toContain('the task types are deploy, worker');
  });

  it('refuses a cwd that is not a directory', async () => {
    const error = await check({ deploy: spec(['/bin/true'], { cwd: join(dir, 'nowhere') }) });
    expect(error.key).toBe('agent.handlers.deploy.cwd');
  });

  it('finds a program on PATH and versions it', async () => {
    const { commands, versions } = await commandHandlers(
      { deploy: spec(['true']) },
      new Map([['worker', script('worker', 'exit 0')]]),
      ['deploy', 'worker'],
    );
    expect([...commands.keys()]).toEqual(['deploy', 'worker']);
    expect(versions.get('deploy')).toMatch(/^sha256:[0-9a-f]{12}$/);
    expect(versions.get('worker')).toMatch(/^sha256:[0-9a-f]{12}$/);
  });
});

describe('the example command handlers in handlers/', () => {
  const handler = (name: string): string => join(ROOT, 'handlers', name);

  it('uptime (shell): the uptime and load, with progress', async () => {
    const seen: Seen = { progress: [] };
    const outcome = await runCommand(spec([handler('uptime')]), request({}, {}, seen), 1000);
    expect(outcome.status).toBe('DONE');
    const payload = outcome.payload as { endpoint: string; uptime_seconds: number; load: number[] };
    expect(payload.endpoint).toBe('web1');
    expect(payload.uptime_seconds).toBeGreaterThan(0);
    expect(payload.load).toHaveLength(3);
    expect(seen.progress.map(([current, total]) => [current, total])).toEqual([
      [1, 2],
      [2, 2],
    ]);
  });

  it('checksum (Python): the SHA-256 of each file, FAILED naming one it cannot read', async () => {
    const file = join(dir, 'data.txt');
    writeFileSync(file, 'hello\n');
    const done = await runCommand(spec([handler('checksum')]), request({ paths: [file] }), 1000);
    expect(done).toMatchObject({
      status: 'DONE',
      payload: {
        endpoint: 'web1',
        sha256: { [file]: '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03' },
      },
    });
    const missing = join(dir, 'missing.txt');
    const failedRun = await runCommand(
      spec([handler('checksum')]),
      request({ paths: [missing] }),
      1000,
    );
    expect(failedRun).toMatchObject({
      status: 'FAILED',
      errnr: 3,
      errmsg: `cannot read ${missing}: No such file or directory`,
    });
    const bad = await runCommand(spec([handler('checksum')]), request({ paths: 'x' }), 1000);
    expect(bad).toMatchObject({
      status: 'FAILED',
      errnr: 2,
      errmsg: 'payload.paths must be a list of file paths',
    });
  });
});
