/**
 * `tasker agent`: loads only what an agent needs (broker and handlers, no database).
 */
import {
  Agent,
  DRAIN_TIMEOUT_MS,
  HandlerSandbox,
  commandHandlers,
  findHandlers,
  handlerVersions,
  importHandler,
  inlineRunner,
  type HandleTask,
  type HandlerRunner,
  withCommands,
} from '../agent';
import { createBroker, type TaskBroker } from '../broker';
import { isInProcessBroker, type TaskerConfig } from '../config';
import { createLogger, stderrSink, type Logger } from '../log';
import { AgentMetrics } from '../metrics';
import { startMetricsListener, type MetricsListener } from './metrics-listener';
import { exitOnFatal, onShutdownSignals } from './signals';

/** after an abort, how long a handler may take to stop before its process is killed */
const KILL_GRACE_MS = 10_000;

/**
 * What runs the handlers of every configured task type for `agents` agents of this process:
 * commands (`agent.handlers`, executables in the handlers directories) as child processes of
 * their own, JavaScript modules as `agent.isolation` says; fails naming a handler that is
 * missing or does not load, before anything connects.
 */
export async function startHandlerRunner(
  config: TaskerConfig,
  log: Logger,
  agents = 1,
): Promise<HandlerRunner> {
  const types = Object.keys(config.taskTypes);
  const declared = config.agent.handlers;
  const found = await findHandlers(
    config.agent.handlersDirs,
    types.filter((type) => !Object.hasOwn(declared, type)),
  );
  const files = new Map<string, string>();
  const executables = new Map<string, string>();
  for (const [type, { file, kind }] of found)
    (kind === 'module' ? files : executables).set(type, file);
  const commands = await commandHandlers(declared, executables, types);
  return withCommands({ ...commands, killGraceMs: KILL_GRACE_MS }, await moduleRunner(files));

  async function moduleRunner(files: Map<string, string>): Promise<HandlerRunner> {
    if (config.agent.isolation === 'inline' || files.size === 0) {
      const handlers = new Map<string, HandleTask>();
      const exported = new Map<string, string | null>();
      for (const [type, file] of files) {
        const loaded = await importHandler(file);
        handlers.set(type, loaded.handleTask);
        exported.set(file, loaded.version);
      }
      return inlineRunner(handlers, await handlerVersions(files, exported));
    }
    return HandlerSandbox.start({
      files,
      size: config.agent.concurrency * agents,
      killGraceMs: KILL_GRACE_MS,
      log: log.child({ part: 'sandbox' }),
    });
  }
}

/** What stopping waits for when `count` tasks run, or null when none does. */
export function runningTasks(count: number): string | null {
  if (count === 0) return null;
  const tasks = count === 1 ? '1 running task' : `${count} running tasks`;
  return `${tasks} to finish (at most ${DRAIN_TIMEOUT_MS / 1000} s)`;
}

/** An agent for `endpoint` as configured; several agents may share `runner` and `broker`. */
export function createAgent(
  config: TaskerConfig,
  endpoint: string,
  runner: HandlerRunner,
  broker: TaskBroker,
  log: Logger,
  metrics?: AgentMetrics,
): Agent {
  return new Agent({
    ...(metrics === undefined ? {} : { metrics }),
    endpoint,
    types: Object.keys(config.taskTypes),
    runner,
    broker,
    concurrency: config.agent.concurrency,
    prefetch: config.agent.prefetch,
    reportDelayMs: config.agent.reportDelayMs,
    stateDir: config.agent.stateDir,
    labels: config.agent.labels,
    heartbeatMs: config.agent.heartbeatMs,
    outputLimitBytes: config.agent.outputLimitBytes,
    log,
  });
}

/**
 * `tasker agent`; with `burst`, it stops by itself (goodbye, exit 0) once its queues are empty
 * and nothing runs: for an agent started by cron or a CI job.
 */
export async function agentCommand(config: TaskerConfig, burst = false): Promise<void> {
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
  const log = createLogger(
    config.log.level,
    { process: 'agent', endpoint },
    stderrSink(config.log.format),
  );
  const broker = createBroker(config.broker, {
    connectionName: `tasker-agent ${endpoint}`,
    log: log.child({ part: 'broker' }),
  });
  broker.session.on('fatal', exitOnFatal(log));
  // handlers first: a missing one fails before the agent connects
  const runner = await startHandlerRunner(config, log);
  const { metricsListen } = config.agent;
  const metrics =
    metricsListen === null
      ? undefined
      : new AgentMetrics({ running: (): number => agent.runningTasks });
  const agent = createAgent(config, endpoint, runner, broker, log, metrics);
  let listener: MetricsListener | null = null;
  try {
    // a state directory another agent process uses fails before connecting
    await agent.claimStateDir();
    if (metrics !== undefined && metricsListen !== null) {
      listener = await startMetricsListener(
        metricsListen,
        metrics,
        () => metrics.render(),
        log.child({ part: 'metrics' }),
      );
    }
    await broker.start();
    await agent.start();
  } catch (err) {
    // the open connection and the handler process would keep the process running
    await listener?.close();
    await agent.close().catch(() => undefined);
    await runner.close();
    await broker.close().catch(() => undefined);
    throw err;
  }
  const stop = onShutdownSignals(
    async () => {
      await agent.close();
      await runner.close();
      await broker.close();
      await listener?.close();
    },
    log,
    { waitingFor: () => runningTasks(agent.runningTasks) },
  );
  // started by `tasker up` (an IPC channel to it): when it goes, without a word, go too
  if (process.send !== undefined) process.once('disconnect', () => stop('parent gone'));
  if (burst) {
    log.info('burst: running until the queues are empty and nothing runs');
    await agent.drained();
    log.info('burst: the queues are empty and nothing runs; stopping');
    stop('burst done');
  }
}
