/**
 * `tasker up` on MariaDB and RabbitMQ, where it runs each agent as a child `tasker agent`
 * process: the flags given to `up` take effect in its agents, a stop request to its process
 * group is one signal to each agent, Ctrl-C says what it waits for, and a stray TASKER_*
 * variable in the environment is a warning, not a failure.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TaskWithResponses } from '../../src/store';
import { callJson, getTask, postTask, waitForTerminal } from '../support/api-client';
import {
  CLI,
  assertBuilt,
  childEnv,
  runCli,
  startNode,
  type Child,
} from '../support/child-processes';
import { freePort } from '../support/ports';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';

// An operator's handler directory: its worker says where it came from.
const CUSTOM_WORKER = `exports.handle_task = async function (task, response, ctx) {
  const seconds = (task.payload && task.payload.seconds) || 0;
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  response.payload = { from: 'custom handlers dir', endpoint: ctx.endpoint };
  return response;
};
`;

let stack: TestStack;
let handlersDir: string;
const started: Child[] = [];

beforeAll(async () => {
  assertBuilt();
  stack = await createTestStack();
  handlersDir = mkdtempSync(join(tmpdir(), 'tasker-up-handlers-'));
  writeFileSync(join(handlersDir, 'worker.js'), CUSTOM_WORKER);
});

afterEach(() => {
  // a failed test leaves nothing running: SIGKILL to each group (agents lead groups of their own
  // and stop when `up` goes)
  for (const child of started.splice(0)) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // exited already
    }
  }
});

afterAll(async () => {
  await stack.cleanup();
  rmSync(handlersDir, { recursive: true, force: true });
});

interface Up {
  child: Child;
  api: string;
}

/** `tasker up` for agents a1 and a2 with `extra` flags, in a process group of its own. */
async function startUp(extra: string[], env: Record<string, string> = {}): Promise<Up> {
  const port = await freePort();
  const args = ['up', ...stack.cliFlags, '--types', 'worker', '--port', String(port)];
  const child = startNode(CLI, [...args, '--agents', 'a1,a2', '--log-level', 'info', ...extra], {
    name: 'tasker up',
    env: childEnv(env),
    detached: true,
  });
  started.push(child);
  await child.waitForOutput('tasker is up: API', 30_000);
  const consuming = (): number => (child.output().match(/agent consuming/g) ?? []).length;
  await waitFor(
    async () => consuming(),
    (n) => n >= 2,
    30_000,
    'both agents consuming',
  );
  return { child, api: `http://127.0.0.1:${port}` };
}

/** Post a worker task to `endpoints` and wait until each of them runs it. */
async function postRunning(up: Up, identifier: string, endpoints: string[]): Promise<void> {
  const posted = await postTask(up.api, 'worker', {
    identifier,
    endpoints,
    payload: { seconds: 2 },
  });
  expect(posted.status).toBe(201);
  await waitFor(
    () => getTask(up.api, 'worker', identifier),
    (task) => task.taskResponseList.every((row) => row.status === 'RUNNING'),
    15_000,
    `${identifier} running on ${endpoints.join(', ')}`,
  );
}

async function statusesIn(identifier: string): Promise<string[]> {
  const rows = (await stack
    .db('task_responses')
    .join('tasks', 'tasks.id', 'task_responses.task_id')
    .where('tasks.identifier', identifier)
    .orderBy('task_responses.endpoint')
    .select('task_responses.status')) as Array<{ status: string }>;
  return rows.map((row) => row.status);
}

it('hands --handlers, --concurrency and --prefetch on to its agent processes', async () => {
  const up = await startUp(['--handlers', handlersDir, '--concurrency', '3', '--prefetch', '5']);
  const posted = await postTask(up.api, 'worker', {
    identifier: 'up-flags',
    endpoints: ['a1', 'a2'],
    payload: {},
  });
  expect(posted.status).toBe(201);
  const task: TaskWithResponses = await waitForTerminal(up.api, 'worker', 'up-flags');
  expect(task.taskResponseList.map((row) => row.payload)).toEqual([
    { from: 'custom handlers dir', endpoint: 'a1' },
    { from: 'custom handlers dir', endpoint: 'a2' },
  ]);
  // the agents' heartbeats carry the capacity --concurrency gave them
  const registry = await waitFor(
    () =>
      callJson<{ endpoints: Array<{ name: string; capacity: number }> }>(
        `${up.api}/endpoints`,
        'GET',
      ),
    (answer) => answer.body.endpoints.length === 2,
    15_000,
    'both agents registered',
  );
  expect(registry.body.endpoints.map((e) => [e.name, e.capacity])).toEqual([
    ['a1', 3],
    ['a2', 3],
  ]);
  // and their consumers the prefetch --prefetch gave them
  const consumers = execFileSync('rabbitmqctl', [
    '-q',
    'list_consumers',
    'queue_name',
    'prefetch_count',
    '--no-table-headers',
  ])
    .toString()
    .split('\n')
    .filter((line) => line.startsWith(`${stack.prefix}.worker.`))
    .map((line) => line.split(/\s+/))
    .sort();
  expect(consumers).toEqual([
    [`${stack.prefix}.worker.a1`, '5'],
    [`${stack.prefix}.worker.a2`, '5'],
  ]);
  expect(await up.child.stop()).toBe(0);
});

it('refuses --endpoint, which is for `tasker agent`', async () => {
  const { code, output } = await runCli(['up', ...stack.cliFlags, '--endpoint', 'x']);
  expect(code).toBe(1);
  expect(output).toContain(
    'tasker: up runs an agent for each of --agents a,b; --endpoint is for `tasker agent`',
  );
});

it('stops on one SIGTERM to its process group: every agent drains once, no "second signal"', async () => {
  const up = await startUp(['--handlers', handlersDir]);
  await postRunning(up, 'up-group-term', ['a1', 'a2']);
  // what a supervisor stopping the group, or a closing terminal, does
  process.kill(-up.child.pid, 'SIGTERM');
  expect(await up.child.exited()).toBe(0);
  const output = up.child.output();
  expect(output).not.toContain('second signal');
  // `up` and each of its two agents: one stop request each
  expect(output.match(/shutting down; send the signal again to force/g)).toHaveLength(3);
  // the running handlers finished and were recorded before the server stopped
  expect(await statusesIn('up-group-term')).toEqual(['DONE', 'DONE']);
});

it('says on Ctrl-C what it waits for, and that a second Ctrl-C forces', async () => {
  const up = await startUp(['--handlers', handlersDir]);
  await postRunning(up, 'up-ctrl-c', ['a1']);
  // a terminal's Ctrl-C: SIGINT to the foreground process group
  process.kill(-up.child.pid, 'SIGINT');
  await up.child.waitForOutput(
    'tasker: stopping: waiting for the agents to finish their running tasks (at most 30 s)' +
      ' (press Ctrl-C again to stop at once)',
  );
  expect(await up.child.exited()).toBe(0);
  expect(up.child.output()).not.toContain('second signal');
  expect(await statusesIn('up-ctrl-c')).toEqual(['DONE']);
});

it('warns of an unknown TASKER_* variable and runs anyway', async () => {
  const up = await startUp([], { TASKER_EXTRA: 'a deployment tool', TASKER_API_PROT: '1' });
  const output = up.child.output();
  expect(output).toContain('tasker: config TASKER_EXTRA: unknown environment variable, ignored');
  expect(output).toContain(
    'tasker: config TASKER_API_PROT: unknown environment variable, ignored' +
      ' (did you mean TASKER_API_PORT?)',
  );
  expect(await up.child.stop()).toBe(0);
});
