/**
 * In-process server and agents wired to a test stack, and a small HTTP poller.
 */
import { Agent, inlineRunner, type HandleTask } from '../../src/agent';
import { createBroker, type AmqpBroker } from '../../src/broker';
import type { TaskerConfig } from '../../src/config';
import { createLogger, silentLogger, type Logger } from '../../src/log';
import { startServer, type ServerHandle } from '../../src/cli/server-process';
import type { TaskWithResponses } from '../../src/store';
import { waitFor } from './stack';

export const testLog: Logger = process.env.TEST_LOG
  ? createLogger('debug', { test: true })
  : silentLogger;

/** A broker client for tests; `asServer` also declares the task types' exchanges. */
export function newBroker(
  config: TaskerConfig,
  name: string,
  url = config.broker.url,
  asServer = false,
): AmqpBroker {
  const broker = createBroker(
    { ...config.broker, reconnectInitialDelayMs: 100, reconnectMaxDelayMs: 1000 },
    {
      url,
      connectionName: name,
      log: testLog.child({ broker: name }),
      ...(asServer ? { declareTaskTypes: Object.keys(config.taskTypes) } : {}),
    },
  );
  return broker;
}

export async function startTestServer(
  config: TaskerConfig,
): Promise<ServerHandle & { url: string }> {
  const server = await startServer(config, testLog.child({ process: 'server' }));
  await (server.broker as AmqpBroker).session.waitUntilConnected(5000);
  return Object.assign(server, { url: `http://127.0.0.1:${server.port}` });
}

export interface RunningAgent {
  agent: Agent;
  broker: AmqpBroker;
  close(): Promise<void>;
}

export async function startTestAgent(
  config: TaskerConfig,
  endpoint: string,
  handlers: Record<string, HandleTask>,
  options: {
    concurrency?: number;
    prefetch?: number;
    slotWaitMs?: number;
    drainTimeoutMs?: number;
    brokerUrl?: string;
    log?: Logger;
  } = {},
): Promise<RunningAgent> {
  const broker = newBroker(config, `agent-${endpoint}`, options.brokerUrl);
  await broker.start();
  await broker.session.waitUntilConnected(5000);
  const agent = new Agent({
    endpoint,
    types: Object.keys(handlers),
    runner: inlineRunner(new Map(Object.entries(handlers))),
    broker,
    concurrency: options.concurrency ?? 4,
    ...(options.prefetch === undefined ? {} : { prefetch: options.prefetch }),
    ...(options.slotWaitMs === undefined ? {} : { slotWaitMs: options.slotWaitMs }),
    reportDelayMs: 50,
    stateDir: config.agent.stateDir,
    log: (options.log ?? testLog).child({ endpoint }),
    drainTimeoutMs: options.drainTimeoutMs ?? 2000,
  });
  await agent.start();
  return {
    agent,
    broker,
    close: async () => {
      await agent.close();
      await broker.close();
    },
  };
}

export async function getTask(
  baseUrl: string,
  type: string,
  identifier: string,
): Promise<TaskWithResponses> {
  const res = await fetch(`${baseUrl}/${type}/${encodeURIComponent(identifier)}`);
  if (res.status !== 200)
    throw new Error(`GET ${type}/${identifier}: ${res.status} ${await res.text()}`);
  return (await res.json()) as TaskWithResponses;
}

export async function postTask(
  baseUrl: string,
  type: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${baseUrl}/${type}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const TERMINAL = ['DONE', 'FAILED', 'INCOMPLETE'];

export function waitForTerminal(
  baseUrl: string,
  type: string,
  identifier: string,
  timeoutMs = 20_000,
): Promise<TaskWithResponses> {
  return waitFor(
    () => getTask(baseUrl, type, identifier),
    (found) => TERMINAL.includes(found.task.status),
    timeoutMs,
    `${type}/${identifier} to finish`,
  );
}
