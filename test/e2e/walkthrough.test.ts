/**
 * End to end with real processes on MariaDB and RabbitMQ: the built `tasker server` and two
 * `tasker agent`s (console1, console2) on this file's database and broker prefix, with the
 * shipped handlers and an operator's plain .js one. The scenarios are in scenarios.ts, shared
 * with the embedded mode.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT,
  assertBuilt,
  childEnv,
  startCli,
  waitForHttp,
  type Child,
} from '../support/child-processes';
import { curlApi } from '../support/curl';
import { freePort } from '../support/ports';
import { createTestStack, type TestStack } from '../support/stack';
import { runScenarios } from './scenarios';

const TYPES = ['--types', 'worker,backup,hello'];

// An operator's handler: plain JavaScript, dropped in a directory, no build.
const HELLO_HANDLER = `exports.handle_task = async function (task, response, ctx) {
  response.payload = { greeting: 'hello ' + task.payload.name, endpoint: ctx.endpoint };
  return response;
};
`;

let test: TestStack | undefined;
let port: number;
let server: Child | undefined;
const agents = new Map<string, Child>();
let handlersDir: string | undefined;

async function startServer(migrate: boolean): Promise<void> {
  if (test === undefined) throw new Error('no test stack');
  const extra = migrate ? ['--migrate'] : [];
  server = startCli(['server', ...test.cliFlags, ...TYPES, '--port', String(port), ...extra]);
  await waitForHttp(`http://127.0.0.1:${port}/readyz`, server);
}

function agentArgs(endpoint: string): string[] {
  if (test === undefined || handlersDir === undefined) throw new Error('no test stack');
  return [
    'agent',
    ...test.cliFlags,
    ...TYPES,
    '--endpoint',
    endpoint,
    '--handlers',
    `${handlersDir},${join(ROOT, 'dist', 'handlers')}`,
  ];
}

async function startAgent(endpoint: string, extra: string[] = []): Promise<Child> {
  const running = agents.get(endpoint)?.process;
  if (running !== undefined && running.exitCode === null && running.signalCode === null) {
    throw new Error(`${endpoint} has an agent already`);
  }
  const agent = startCli(
    [...agentArgs(endpoint), ...extra, '--log-level', 'info'],
    childEnv({ WORKER_SECONDS: '1' }),
  );
  agents.set(endpoint, agent);
  await agent.waitForOutput('agent consuming');
  return agent;
}

runScenarios({
  kind: 'mariadb-rabbitmq',
  api: curlApi(() => port),
  serveCommand: ['server', '--mode', 'test'],
  cwd: ROOT,
  get test(): TestStack {
    if (test === undefined) throw new Error('no test stack');
    return test;
  },
  serving: () => {
    if (server === undefined) throw new Error('no server');
    return server;
  },
  // the second server migrates first, as an upgrade would: the schema is already up to date
  restartServing: () => startServer(true),
  agent: (endpoint) => {
    const agent = agents.get(endpoint);
    if (agent === undefined) throw new Error(`no agent for ${endpoint}`);
    return agent;
  },
  agentArgs,
  startAgent,
  start: async () => {
    assertBuilt();
    test = await createTestStack({
      set: ['task_types.worker.wait_for_endpoints_timeout=4s', 'server.sweep_interval=250ms'],
    });
    port = await freePort();
    handlersDir = mkdtempSync(join(tmpdir(), 'tasker-handlers-'));
    writeFileSync(join(handlersDir, 'hello.js'), HELLO_HANDLER);
    await startServer(false);
    for (const endpoint of ['console1', 'console2']) await startAgent(endpoint);
  },
  stop: async () => {
    for (const agent of agents.values()) await agent.stop();
    await server?.stop();
    await test?.cleanup();
    if (handlersDir !== undefined) rmSync(handlersDir, { recursive: true, force: true });
  },
});
