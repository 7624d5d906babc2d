/**
 * The command-line client end to end: the built `tasker` CLI against a real `tasker server` and
 * two `tasker agent`s (console1, console2) on MariaDB and RabbitMQ. Off a terminal (a pipe, as
 * in a script): a line per change, the summary, the exit codes, --json, the other commands and
 * their errors. In a terminal (tmux): the live view as a person sees it while the task runs,
 * bounded to the screen, and what stays on the screen at the end.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLI,
  assertBuilt,
  childEnv,
  runCli,
  startCli,
  waitForHttp,
  type Child,
} from '../support/child-processes';
import { freePort } from '../support/ports';
import { createTestStack, type TestStack } from '../support/stack';
import { TmuxSession, shellWord } from '../support/tmux';

let stack: TestStack;
let url: string;
let server: Child;
const agents: Child[] = [];
/** a directory with no configuration in it: the client needs none */
let cwd: string;
const sessions: TmuxSession[] = [];

beforeAll(async () => {
  assertBuilt();
  stack = await createTestStack({
    set: ['task_types.worker.wait_for_endpoints_timeout=3s', 'server.sweep_interval=250ms'],
  });
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  const types = ['--types', 'worker,backup'];
  server = startCli(['server', ...stack.cliFlags, ...types, '--port', String(port)]);
  await waitForHttp(`${url}/readyz`, server);
  for (const endpoint of ['console1', 'console2']) {
    const agent = startCli(
      ['agent', ...stack.cliFlags, ...types, '--endpoint', endpoint, '--log-level', 'info'],
      childEnv({ WORKER_SECONDS: '1' }),
    );
    agents.push(agent);
    await agent.waitForOutput('agent consuming', 30_000);
  }
  cwd = mkdtempSync(join(tmpdir(), 'tasker-cli-'));
  writeFileSync(join(cwd, 'task.json'), JSON.stringify({ seconds: 1, note: 'from a file' }));
}, 60_000);

afterEach(() => {
  for (const session of sessions.splice(0)) session.kill();
});

afterAll(async () => {
  for (const agent of agents) await agent.stop();
  await server?.stop();
  await stack?.cleanup();
  if (cwd !== undefined) rmSync(cwd, { recursive: true, force: true });
});

/** `tasker <args>` as a script runs it: TASKER_URL in the environment, output to a pipe. */
function tasker(args: string[], env: Record<string, string> = {}) {
  return runCli(args, childEnv({ TASKER_URL: url, ...env }), cwd);
}

describe('off a terminal', () => {
  it('sends a task, prints a line per change and the summary, exits 0 for DONE', async () => {
    const { code, output } = await tasker([
      'send',
      'worker',
      '--endpoints',
      'console1,console2',
      '--id',
      'cli-done',
      'seconds=2',
      '--wait',
    ]);
    expect(output).toMatch(/^sent worker cli-done to 2 endpoint\(s\): SENT\n/);
    expect(output).toMatch(/^\d\d:\d\d:\d\d worker cli-done SENT$/m);
    for (const endpoint of ['console1', 'console2']) {
      expect(output).toMatch(
        new RegExp(`^\\d\\d:\\d\\d:\\d\\d   ${endpoint} RUNNING 1/2 step 1 of 2$`, 'm'),
      );
      expect(output).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d   ${endpoint} DONE$`, 'm'));
    }
    expect(output).toMatch(
      /\n\nworker cli-done: DONE after \d+\.\d s\n {2}targeted: {7}2\n {2}returned: {7}2\n {2}did not return: 0\n {2}done: {11}2\n {2}failed: {9}0\n$/,
    );
    // no configuration read: nothing said of config files or TASKER_URL
    expect(output).not.toContain('config');
    expect(code).toBe(0);
  });

  it('exits 1 for FAILED, the failures grouped by errnr and message', async () => {
    const { code, output } = await tasker([
      'send',
      'backup',
      '--endpoints',
      'console1,console2',
      '--id',
      'cli-failed',
      '--wait',
    ]);
    expect(output).toContain('backup cli-failed: FAILED after');
    expect(output).toContain('    errnr 32 "could not backup!" (2): console1, console2\n');
    expect(code).toBe(1);
  });

  it('exits 2 for INCOMPLETE, naming the endpoint that did not return', async () => {
    const { code, output } = await tasker([
      'send',
      'worker',
      '--endpoints',
      'console1,console3',
      '--id',
      'cli-incomplete',
      '--payload',
      '@task.json',
      '--wait',
    ]);
    expect(output).toContain('worker cli-incomplete: INCOMPLETE after');
    expect(output).toContain('  returned:       1\n');
    expect(output).toContain('  did not return: 1: console3 (UNDELIVERED)\n');
    expect(code).toBe(2);
  });

  it('exits 3 when the task it waits for is cancelled with `tasker cancel`', async () => {
    const waiting = startCli(
      ['send', 'worker', '--endpoints', 'console1', '--id', 'cli-cancel', 'seconds=30', '--wait'],
      childEnv({ TASKER_URL: url }),
      cwd,
    );
    await waiting.waitForOutput('console1 RUNNING 1/30');
    const cancel = await tasker(['cancel', 'worker', 'cli-cancel', '--reason', 'changed my mind']);
    expect(cancel.output).toMatch(/^cancel asked: worker cli-cancel is (SENT|CANCELLED)\n$/);
    expect(cancel.code).toBe(0);
    expect(await waiting.exited()).toBe(3);
    expect(waiting.output()).toContain('worker cli-cancel: CANCELLED after');
    expect(waiting.output()).toContain('  cancelled:      1\n');
    expect(waiting.output()).toContain('  cancelled: changed my mind\n');
  });

  it('prints the task and its summary as JSON with --json', async () => {
    const { code, output } = await tasker([
      'send',
      'worker',
      '--endpoints',
      'console2',
      '--id',
      'cli-json',
      '--payload',
      '{"seconds": 0}',
      '--wait',
      '--json',
    ]);
    const answer = JSON.parse(output) as {
      task: { status: string; identifier: string };
      taskResponseList: Array<{ endpoint: string; status: string }>;
      summary: { targeted: number; returned: number; didNotReturn: unknown[] };
    };
    expect(answer.task).toMatchObject({ status: 'DONE', identifier: 'cli-json' });
    expect(answer.taskResponseList.map((row) => [row.endpoint, row.status])).toEqual([
      ['console2', 'DONE'],
    ]);
    expect(answer.summary).toMatchObject({ targeted: 1, returned: 1, didNotReturn: [] });
    expect(code).toBe(0);
  });

  it('gets a task (exit code its outcome), lists tasks, retries, lists the fleet', async () => {
    const sent = await tasker([
      'send',
      'backup',
      '--endpoints',
      'console1,console2',
      '--id',
      'cli-get-b',
    ]);
    expect(sent.output).toBe('sent backup cli-get-b to 2 endpoint(s): SENT\n');
    expect(sent.code).toBe(0);
    await tasker(['watch', 'backup', 'cli-get-b']);
    const get = await tasker(['get', 'backup', 'cli-get-b']);
    expect(get.output).toContain('  console1  FAILED       errnr 32 could not backup!\n');
    expect(get.output).toContain('  failed:         2\n');
    expect(get.code).toBe(1);

    const other = await tasker([
      'send',
      'worker',
      '--endpoints',
      'console1',
      '--id',
      'cli-get-w',
      'seconds=0',
      '--wait',
    ]);
    expect(other.code).toBe(0);
    const list = await tasker(['list', '--id-prefix', 'cli-get-']);
    expect(list.output).toMatch(
      /^ID +TYPE +IDENTIFIER +STATUS +DONE +FAILED +EXPECTED +STARTED\n\d+ +worker +cli-get-w +DONE +1 +0 +1 +20\d\d-.*\n\d+ +backup +cli-get-b +FAILED +0 +2 +2 +20\d\d-.*\n$/,
    );
    expect(list.code).toBe(0);
    const failed = await tasker([
      'list',
      'backup',
      '--status',
      'FAILED',
      '--id-prefix',
      'cli-get-',
    ]);
    expect(failed.output).toContain('cli-get-b');
    expect(failed.output).not.toContain('cli-get-w');

    const retry = await tasker(['retry', 'backup', 'cli-get-b', '--wait']);
    expect(retry.output).toMatch(/^retrying: backup cli-get-b round 2, (CREATED|SENT)\n/);
    expect(retry.output).toContain('    errnr 32 "could not backup!" (2): console1, console2\n');
    expect(retry.code).toBe(1);

    const fleet = await tasker(['endpoints', '--type', 'worker']);
    expect(fleet.output).toMatch(/^NAME +STATUS +SINCE +VERSION +TYPES +LABELS +RUNNING$/m);
    expect(fleet.output).toMatch(/^console1 +online +20\d\d-.* +worker,backup +- +\d\/\d$/m);
    expect(fleet.output).toContain('2 endpoint(s): 2 online\n');
    expect(fleet.code).toBe(0);
    const one = await tasker(['endpoints', 'console1']);
    expect(one.output).toMatch(/^console1: online since 20\d\d-/);
    expect(one.output).toMatch(/^backup +cli-get-b +FAILED +FAILED +32 /m);
  });

  it('lists the schedules, paused or with their next run', async () => {
    expect((await tasker(['schedules'])).output).toBe('(no schedules)\n');
    for (const body of [
      { name: 'cli-hourly', type: 'worker', every: '1h', endpoints: ['console1'] },
      { name: 'cli-nightly', type: 'backup', cron: '0 3 * * *', timezone: 'Europe/Berlin' },
    ]) {
      const made = await fetch(`${url}/schedules`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(made.status).toBe(201);
    }
    expect((await fetch(`${url}/schedules/cli-nightly/pause`, { method: 'POST' })).status).toBe(
      200,
    );
    const { code, output } = await tasker(['schedules']);
    expect(output).toMatch(/^cli-hourly {2}worker {2}every 3600 s {2}next 20\d\d-\S+Z\n/m);
    expect(output).toMatch(
      /^cli-nightly {2}backup {2}cron 0 3 \* \* \* \(Europe\/Berlin\) {2}paused\n/m,
    );
    expect(code).toBe(0);
    for (const name of ['cli-hourly', 'cli-nightly']) {
      await fetch(`${url}/schedules/${name}`, { method: 'DELETE' });
    }
  });

  it('exits 4 with one line naming the URL when nothing listens there', async () => {
    const nobody = `http://127.0.0.1:${await freePort()}`;
    const { code, output } = await tasker(['get', 'worker', 'x', '--url', nobody]);
    expect(output).toBe(
      `tasker: cannot reach ${nobody}: connection refused (is the server running? --url or TASKER_URL says where)\n`,
    );
    expect(code).toBe(4);
  });

  it.each([
    [
      ['get', 'worker', 'no-such-task'],
      /^tasker: GET \/worker\/no-such-task: 404 task_not_found: /,
    ],
    [
      ['send', 'worker', '--endpoints', 'console1', '--wait', '--payload', '{x'],
      /^tasker: --payload: "\{x" is not JSON/,
    ],
    [['send', 'worker'], /^tasker: send needs its endpoints: /],
    [['send', 'nosuchtype', '--broadcast'], /^tasker: POST \/nosuchtype: 404 unknown_task_type: /],
  ])('exits 4 for %j, saying what was wrong', async (args, message) => {
    const { code, output } = await tasker(args);
    expect(output).toMatch(message);
    expect(output.trimEnd().split('\n')).toHaveLength(1);
    expect(code).toBe(4);
  });
});

it('carries on watching through a crash and restart of the server it watches through', async () => {
  const port = await freePort();
  const own = `http://127.0.0.1:${port}`;
  const serve = (): Child =>
    startCli(['server', ...stack.cliFlags, '--types', 'worker,backup', '--port', String(port)]);
  let second = serve();
  await waitForHttp(`${own}/readyz`, second);
  const watching = startCli(
    ['send', 'worker', '--endpoints', 'console1', '--id', 'cli-restart', 'seconds=4', '--wait'],
    childEnv({ TASKER_URL: own }),
    cwd,
  );
  try {
    await watching.waitForOutput('console1 RUNNING 1/4');
    // a crash: the stream breaks while the task runs on
    await second.stop('SIGKILL');
    second = serve();
    await waitForHttp(`${own}/readyz`, second);
    const code = await watching.exited();
    const output = watching.output();
    expect(output).not.toContain('tasker: ');
    expect(code).toBe(0);
    expect(output).toMatch(/^\d\d:\d\d:\d\d {3}console1 DONE$/m);
    expect(output).toContain('worker cli-restart: DONE after');
  } finally {
    await watching.stop();
    await second.stop();
  }
});

describe('with an API token', () => {
  const token = 'cli-test-token-0123456789';
  let guarded: Child | undefined;
  let guardedUrl: string;

  beforeAll(async () => {
    const port = await freePort();
    guardedUrl = `http://127.0.0.1:${port}`;
    guarded = startCli([
      'server',
      ...stack.cliFlags,
      '--types',
      'worker,backup',
      '--port',
      String(port),
      '--set',
      `api.tokens=${token}`,
    ]);
    await waitForHttp(`${guardedUrl}/readyz`, guarded);
  });

  afterAll(async () => {
    await guarded?.stop();
  });

  it('sends it from --token or TASKER_TOKEN, and says when one is missing or refused', async () => {
    const withEnv = await tasker(['endpoints', '--url', guardedUrl], { TASKER_TOKEN: token });
    expect(withEnv.output).toContain('2 endpoint(s): 2 online\n');
    expect(withEnv.code).toBe(0);
    const withFlag = await tasker(['list', '--url', guardedUrl, '--token', token, '--limit', '1']);
    expect(withFlag.code).toBe(0);

    const without = await tasker(['list', '--url', guardedUrl]);
    expect(without.output).toMatch(
      /^tasker: GET \/tasks: 401 unauthorized: .* \(the server needs a token: --token or TASKER_TOKEN\)\n$/,
    );
    expect(without.code).toBe(4);
    const wrong = await tasker(['list', '--url', guardedUrl], { TASKER_TOKEN: 'x'.repeat(20) });
    expect(wrong.output).toMatch(/\(the token given by --token or TASKER_TOKEN was refused\)\n$/);
    expect(wrong.code).toBe(4);
  });
});

describe('in a terminal', () => {
  /** `tasker <args>` typed in a terminal of `width` x `height`; its exit code shown after it */
  function inTerminal(args: string[], width: number, height: number): TmuxSession {
    const command =
      `cd ${shellWord(cwd)} && TASKER_URL=${shellWord(url)} ${shellWord(process.execPath)} ` +
      `${shellWord(CLI)} ${args.map(shellWord).join(' ')}; echo "exit=$?"; sleep 600`;
    const session = TmuxSession.start(command, width, height);
    sessions.push(session);
    return session;
  }

  const barLine = /^[█░]{40}  \d\/\d final  \d+\.\d\/s  00:\d\d$/;

  it('redraws a live view in place: the bar, each endpoint with its progress, then the summary', async () => {
    const term = inTerminal(
      [
        'send',
        'worker',
        '--endpoints',
        'console1,console2',
        '--id',
        'tty-done',
        'seconds=4',
        '--wait',
      ],
      100,
      30,
    );
    const running = await term.waitForScreen(
      (lines) =>
        lines.filter((line) => / RUNNING +[█░]{10} [23]\/4 step [23] of 4$/.test(line)).length ===
        2,
      'both endpoints running with progress',
    );
    expect(running[0]).toBe('sent worker tty-done to 2 endpoint(s): SENT');
    expect(running[1]).toBe('worker tty-done  SENT');
    expect(running[2]).toMatch(barLine);
    expect(running[2]).toMatch(/  0\/2 final  /);
    expect(running[3]).toBe('done 0  failed 0  running 2  waiting 0');
    expect(running[4]).toMatch(/^ {2}console1 {2}RUNNING {6}[█░]{10} [23]\/4 step [23] of 4$/);
    expect(running[5]).toMatch(/^ {2}console2 {2}RUNNING {6}[█░]{10} [23]\/4 step [23] of 4$/);
    expect(running).toHaveLength(6);

    const end = await term.waitForScreen((lines) => lines.includes('exit=0'), 'the exit code');
    // drawn over in place: one view on the screen, final, and the summary under it
    expect(end.slice(0, 6)).toEqual([
      'sent worker tty-done to 2 endpoint(s): SENT',
      'worker tty-done  DONE',
      expect.stringMatching(/^█{40}  2\/2 final  0\.\d\/s  00:0[45]$/),
      'done 2  failed 0  running 0  waiting 0',
      '  console1  DONE',
      '  console2  DONE',
    ]);
    expect(end.filter((line) => barLine.test(line))).toHaveLength(1);
    expect(end.slice(6)).toEqual([
      '',
      expect.stringMatching(/^worker tty-done: DONE after \d\.\d s$/),
      '  targeted:       2',
      '  returned:       2',
      '  did not return: 0',
      '  done:           2',
      '  failed:         0',
      'exit=0',
    ]);
  });

  it('keeps the view within a small screen, summarising the endpoints that do not fit', async () => {
    const ghosts = Array.from({ length: 10 }, (_, i) => `ghost${String(i + 1).padStart(2, '0')}`);
    const term = inTerminal(
      [
        'send',
        'worker',
        '--endpoints',
        ['console1', 'console2', ...ghosts].join(','),
        '--id',
        'tty-small',
        'seconds=2',
        '--wait',
      ],
      80,
      10,
    );
    const running = await term.waitForScreen(
      (lines) => lines.some((line) => / RUNNING +[█░]{10} 1\/2 /.test(line)),
      'an endpoint running',
    );
    // the view is at most 9 lines: header, then what needs a look first, then the rest counted
    const top = running.indexOf('worker tty-small  SENT');
    expect(top).toBeGreaterThanOrEqual(0);
    const view = running.slice(top);
    expect(view.length).toBeLessThanOrEqual(9);
    expect(view[1]).toMatch(/^[█░]{40}  0\/12 final  /);
    expect(view[view.length - 1]).toMatch(/^ {2}… \d+ more: \d+ PENDING/);
    expect(view.filter((line) => / RUNNING /.test(line)).length).toBeGreaterThanOrEqual(1);

    const end = await term.waitForScreen(
      (lines) => lines.includes('exit=2'),
      'the exit code',
      30_000,
    );
    expect(end).toContain('  returned:       2');
    expect(end.join('\n')).toMatch(
      / {2}did not return: 10: ghost01 \(UNDELIVERED\), ghost02 \(UNDELIVERED\)/,
    );
  });

  it('stops watching on Ctrl-C, exit 130, saying the task goes on and how to watch it again', async () => {
    const term = inTerminal(
      ['send', 'worker', '--endpoints', 'console1', '--id', 'tty-ctrl-c', 'seconds=30', '--wait'],
      100,
      20,
    );
    await term.waitForScreen(
      (lines) => lines.some((line) => / RUNNING +[█░]{10} 1\/30 /.test(line)),
      'console1 running',
    );
    term.keys('C-c');
    const end = await term.waitForScreen((lines) => lines.includes('exit=130'), 'the exit code');
    expect(end).toContain(
      'tasker: stopped watching; the task goes on (tasker watch worker tty-ctrl-c)',
    );
    expect(end.filter((line) => line === 'worker tty-ctrl-c  SENT')).toHaveLength(1);
    // the task did go on; cancel it so that the agent is free again
    const cancel = await tasker(['cancel', 'worker', 'tty-ctrl-c']);
    expect(cancel.code).toBe(0);
    const { code } = await tasker(['watch', 'worker', 'tty-ctrl-c']);
    expect(code).toBe(3);
  });
});
