/**
 * `tasker agent`: loads only what an agent needs (broker and handlers, no database).
 */
import { Agent, loadHandlers, type Handlers } from '../agent';
import { createBroker, type TaskBroker } from '../broker';
import { isInProcessBroker, type TaskerConfig } from '../config';
import { createLogger, type Logger } from '../log';
import { exitOnFatal, onShutdownSignals } from './signals';

/** The handlers of every configured task type; throws naming a missing one. */
export function loadConfiguredHandlers(config: TaskerConfig): Promise<Handlers> {
  return loadHandlers(config.agent.handlersDirs, Object.keys(config.taskTypes));
}

/** An agent for `endpoint` as configured; several agents may share `handlers` and `broker`. */
export function createAgent(
  config: TaskerConfig,
  endpoint: string,
  handlers: Handlers,
  broker: TaskBroker,
  log: Logger,
): Agent {
  return new Agent({
    endpoint,
    types: Object.keys(config.taskTypes),
    handlers,
    broker,
    concurrency: config.agent.concurrency,
    prefetch: config.agent.prefetch,
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
  if (isInProcessBroker(config.broker)) {
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
  // handlers first: a missing one fails before the agent connects
  const handlers = await loadConfiguredHandlers(config);
  const agent = createAgent(config, endpoint, handlers, broker, log);
  // a state directory another agent process uses fails before connecting
  await agent.claimStateDir();
  try {
    await broker.start();
    await agent.start();
  } catch (err) {
    // the open connection would keep the process running
    await agent.close().catch(() => undefined);
    await broker.close().catch(() => undefined);
    throw err;
  }
  onShutdownSignals(async () => {
    await agent.close();
    await broker.close();
  }, log);
}
