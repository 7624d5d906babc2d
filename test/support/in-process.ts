/**
 * The server and agents inside the test process, wired to a test stack (for real processes see
 * child-processes.ts).
 */
import { Agent, inlineRunner, type HandleTask } from '../../src/agent';
import { createBroker, type AmqpBroker } from '../../src/broker';
import type { TaskerConfig } from '../../src/config';
import { createLogger, silentLogger, type Logger } from '../../src/log';
import type { AgentMetrics } from '../../src/metrics';
import { startServer, type ServerHandle } from '../../src/cli/server-process';

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
    metrics?: AgentMetrics;
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
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
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
