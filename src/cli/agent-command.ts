/**
 * `tasker agent`: loads only what an agent needs (broker and handlers, no database).
 */
import { Agent, loadHandlers } from '../agent';
import { createBroker } from '../broker';
import type { TaskerConfig } from '../config';
import { createLogger } from '../log';
import { exitOnFatal, onShutdownSignals } from './signals';

export async function agentCommand(config: TaskerConfig): Promise<void> {
  const endpoint = config.agent.endpoint;
  if (endpoint === null) {
    throw new Error(
      'an agent needs its endpoint name: --endpoint NAME or agent.endpoint in config',
    );
  }
  const log = createLogger(config.log.level, { process: 'agent', endpoint });
  const types = Object.keys(config.taskTypes);
  const handlers = await loadHandlers(config.agent.handlersDirs, types);
  const broker = createBroker(config.broker, {
    connectionName: `tasker-agent ${endpoint}`,
    log: log.child({ part: 'broker' }),
  });
  broker.session.on('fatal', exitOnFatal(log));
  await broker.start();
  const agent = new Agent({
    endpoint,
    types,
    handlers,
    broker,
    concurrency: config.agent.concurrency,
    reportDelayMs: config.agent.reportDelayMs,
    stateDir: config.agent.stateDir,
    log,
  });
  await agent.start();
  onShutdownSignals(async () => {
    await agent.close();
    await broker.close();
  }, log);
}
