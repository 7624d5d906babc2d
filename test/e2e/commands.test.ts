/**
 * Command handlers end to end: the built `tasker server` and `tasker agent` on MariaDB and
 * RabbitMQ, the agent running a command declared in its config file (`agent.handlers`) and the
 * example executables in handlers/ (shell and Python). Payload text stays one argument; a
 * running command is cancelled; a payload missing a placeholder field fails the task; a command
 * that does not exist stops the agent at start, naming the key.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callJson, getTask, postTask, waitForTerminal } from '../support/api-client';
import {
  assertBuilt,
  childEnv,
  runCli,
  startCli,
  startServerCli,
  type Child,
} from '../support/child-processes';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';

// what an operator's deploy script might be: progress, a result, a failure on a bad version
const DEPLOY = `#!/bin/sh
[ "$1" = --version ] || { echo "usage: deploy --version V" >&2; exit 64; }
echo "::progress 1/2 fetching $2"
[ "$2" = slow ] && sleep 60
[ "$2" = bad ] && { echo "no release named bad" >&2; exit 5; }
[ "$2" = loud ] && { yes 'building the release' | head -c 200000000; echo; }
echo "::progress 2/2 switching"
node -e 'console.log("::result " + JSON.stringify({ deployed: process.argv[1], cwd: process.cwd() }))' "$2"
`;

let stack: TestStack;
let dir: string;
let url: string;
let server: Child;
let agent: Child;

function configFile(name: string, command: string[]): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    [
      'task_types:',
      '  uptime:',
      '  checksum:',
      '  deploy:',
      'agent:',
      '  report_delay: 100ms',
      '  handlers:',
      '    deploy:',
      `      command: ${JSON.stringify(command)}`,
      `      cwd: ${JSON.stringify(dir)}`,
      'log:',
      '  level: info',
      '',
    ].join('\n'),
  );
  return file;
}

beforeAll(async () => {
  assertBuilt();
  stack = await createTestStack();
  dir = mkdtempSync(join(tmpdir(), 'tasker-e2e-commands-'));
  const deploy = join(dir, 'deploy');
  writeFileSync(deploy, DEPLOY);
  chmodSync(deploy, 0o755);
  const config = configFile('agent.yaml', [deploy, '--version', '{payload.version}']);
  ({ server, url } = await startServerCli([...stack.cliFlags, '--config', config]));
  agent = startCli(
    ['agent', ...stack.cliFlags, '--config', config, '--endpoint', 'web1'],
    childEnv(),
  );
  await agent.waitForOutput('agent consuming', 30_000);
});

afterAll(async () => {
  await agent?.stop();
  await server?.stop();
  await stack?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

it('runs the shell and Python example executables', async () => {
  expect((await postTask(url, 'uptime', { identifier: 'up-1', endpoints: ['web1'] })).status).toBe(
    201,
  );
  const uptime = await waitForTerminal(url, 'uptime', 'up-1');
  expect(uptime.task.status).toBe('DONE');
  expect(uptime.taskResponseList[0]?.payload).toMatchObject({
    endpoint: 'web1',
    load: [expect.any(Number), expect.any(Number), expect.any(Number)],
  });

  const file = join(dir, 'data.txt');
  writeFileSync(file, 'hello\n');
  await postTask(url, 'checksum', {
    identifier: 'sum-1',
    endpoints: ['web1'],
    payload: { paths: [file] },
  });
  const sum = await waitForTerminal(url, 'checksum', 'sum-1');
  expect(sum.taskResponseList[0]?.payload).toEqual({
    endpoint: 'web1',
    sha256: { [file]: '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03' },
  });
});

it('runs a declared command with the payload field as one argument, in its cwd', async () => {
  const version = '1.0; touch INJECTED $(touch INJECTED2)';
  await postTask(url, 'deploy', { identifier: 'd-1', endpoints: ['web1'], payload: { version } });
  const task = await waitForTerminal(url, 'deploy', 'd-1');
  expect(task.task.status).toBe('DONE');
  expect(task.taskResponseList[0]?.payload).toEqual({ deployed: version, cwd: dir });
  expect(existsSync(join(dir, 'INJECTED'))).toBe(false);
  expect(existsSync(join(dir, 'INJECTED2'))).toBe(false);
});

it('keeps what the command printed: GET of the endpoint has it, the task says how long', async () => {
  await postTask(url, 'deploy', {
    identifier: 'd-out',
    endpoints: ['web1'],
    payload: { version: '2.0' },
  });
  const task = await waitForTerminal(url, 'deploy', 'd-out');
  const bytes = task.taskResponseList[0]?.output_bytes ?? 0;
  expect(bytes).toBeGreaterThan(0);
  const detail = await callJson<{ output: string; output_bytes: number }>(
    `${url}/deploy/d-out/responses/web1`,
    'GET',
  );
  const lines = detail.body.output.split('\n').map((line) => line.replace(/^\S+ /, ''));
  expect(lines.slice(0, 3)).toEqual([
    'stdout ::progress 1/2 fetching 2.0',
    'stdout ::progress 2/2 switching',
    `stdout ::result {"deployed":"2.0","cwd":${JSON.stringify(dir)}}`,
  ]);
  expect(detail.body.output_bytes).toBe(bytes);
});

it('keeps the head and tail of 200 MB of output, within agent.output_limit', async () => {
  await postTask(url, 'deploy', {
    identifier: 'd-loud',
    endpoints: ['web1'],
    payload: { version: 'loud' },
  });
  const task = await waitForTerminal(url, 'deploy', 'd-loud', 120_000);
  expect(task.task.status).toBe('DONE');
  expect(task.taskResponseList[0]?.output_bytes).toBeGreaterThan(200_000_000);
  const detail = await callJson<{ output: string }>(`${url}/deploy/d-loud/responses/web1`, 'GET');
  expect(Buffer.byteLength(detail.body.output)).toBeLessThanOrEqual(64 * 1024 + 100);
  expect(detail.body.output).toMatch(/… \d+ bytes left out …/);
  expect(detail.body.output).toContain('stdout ::progress 2/2 switching');
}, 150_000);

it('fails with the exit code and the last line of stderr', async () => {
  await postTask(url, 'deploy', {
    identifier: 'd-bad',
    endpoints: ['web1'],
    payload: { version: 'bad' },
  });
  const task = await waitForTerminal(url, 'deploy', 'd-bad');
  expect(task.task.status).toBe('FAILED');
  expect(task.taskResponseList[0]).toMatchObject({ errnr: 5, errmsg: 'no release named bad' });
});

it('fails a task whose payload lacks the placeholder field', async () => {
  await postTask(url, 'deploy', { identifier: 'd-none', endpoints: ['web1'], payload: {} });
  const task = await waitForTerminal(url, 'deploy', 'd-none');
  expect(task.taskResponseList[0]).toMatchObject({
    status: 'FAILED',
    errmsg: "the command needs payload.version, which the task's payload does not have",
  });
});

it('cancels a running command', async () => {
  await postTask(url, 'deploy', {
    identifier: 'd-slow',
    endpoints: ['web1'],
    payload: { version: 'slow' },
  });
  await waitFor(
    () => getTask(url, 'deploy', 'd-slow'),
    (task) => task.taskResponseList[0]?.status === 'RUNNING',
    15_000,
    'the command running',
  );
  const cancel = await callJson(`${url}/deploy/d-slow/cancel`, 'POST', { reason: 'wrong release' });
  expect(cancel.status).toBe(200);
  const task = await waitForTerminal(url, 'deploy', 'd-slow');
  expect(task.taskResponseList[0]).toMatchObject({
    status: 'CANCELLED',
    errmsg: 'cancelled: wrong release',
  });
});

it('refuses to start an agent whose command does not exist, naming the key', async () => {
  const config = configFile('broken.yaml', [join(dir, 'no-such-deploy'), '{payload.version}']);
  const { code, output } = await runCli([
    'agent',
    ...stack.cliFlags,
    '--config',
    config,
    '--endpoint',
    'web2',
  ]);
  expect(code).toBe(1);
  expect(output).toContain(
    `tasker: config agent.handlers.deploy.command[0]: ${join(dir, 'no-such-deploy')} does not exist or is not an executable file`,
  );
});
