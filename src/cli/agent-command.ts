/**
 * `tasker agent`: loads only what an agent needs (broker and handlers, no database).
 */
import { Agent, loadHandlers } from '../agent';
import { createBroker, type TaskBroker } from '../broker';
import type { TaskerConfig } from '../config';
import { createLogger, type Logger } from '../log';
import { exitOnFatal, onShutdownSignals } from './signals';

/** The one broker that cannot cross a process boundary. */
export function isInProcessBroker(config: TaskerConfig): boolean {
  return config.broker.url.startsWith('memory:');
}

/** Load the handlers (failing fast on a missing one) and set up the agent for `endpoint`. */
export async function createAgent(
  config: TaskerConfig,
  endpoint: string,
  broker: TaskBroker,
  log: Logger,
): Promise<Agent> {
  const types = Object.keys(config.taskTypes);
  const handlers = await loadHandlers(config.agent.handlersDirs, types);
  return new Agent({
    endpoint,
    types,
    handlers,
    broker,
    concurrency: config.agent.concurrency,
    reportDelayMs: config.agent.reportDelayMs,
    stateDir: config.agent.stateDir,
    log,
  });
}

export async function agentCommand(config: TaskerConfig): Promise<void> {
  const endpoint = config.agent.endpoint;
  if (endpoint === null) {
    throw new Error(
      'an agent needs its endpoint name: --endpoint NAME or agent.endpoint in config',
    );
  }
  if (isInProcessBroker(config)) {
    throw new Error(
      'broker.url "memory:" is the in-process broker of `tasker up`; a separate agent needs ' +
        'RabbitMQ (--broker-url amqp://…)',
    );
  }
  const log = createLogger(config.log.level, { process: 'agent', endpoint });
  const broker = createBroker(config.broker, {
    connectionName: `tasker-agent ${endpoint}`,
    log: log.child({ part: 'broker' }),
  });
  broker.session.on('fatal', exitOnFatal(log));
  const agent = await createAgent(config, endpoint, broker, log);
  await broker.start();
  await agent.start();
  onShutdownSignals(async () => {
    await agent.close();
    await broker.close();
  }, log);
}
