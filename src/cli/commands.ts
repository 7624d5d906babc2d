/**
 * The server-side commands: migrate, server, upgrade-queues, and the development stack `up`. Each exits
 * non-zero with a one-line reason when it cannot start. (The agent's command lives apart, so
 * an agent never loads the API, knex or mysql2.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { checkEndpoint } from '../domain';
import { MemoryBroker, upgradeQueues } from '../broker';
import { isInProcessBroker, sqliteFile, type TaskerConfig } from '../config';
import { createLogger, stderrSink, type Logger } from '../log';
import { startServer, type ServerHandle } from './server-process';
import {
  createDb,
  databaseEngine,
  ensureDatabase,
  listEndpointRows,
  parseJsonColumn,
  migrateLatest,
  migrateRollback,
  migrationStatus,
} from '../store';
import { DRAIN_TIMEOUT_MS } from '../agent';
import { createAgent, runningTasks, startHandlerRunner } from './agent-command';
import { exitOnFatal as fatal, onShutdownSignals } from './signals';

export async function migrateCommand(
  config: TaskerConfig,
  action: 'latest' | 'rollback' | 'rollback-all' | 'status',
): Promise<void> {
  if (config.database.createDatabase && action === 'latest') await ensureDatabase(config.database);
  const db = createDb(config.database);
  try {
    if (action === 'status') {
      const { applied, pending } = await migrationStatus(db);
      console.log(JSON.stringify({ applied, pending }, null, 2));
    } else if (action === 'latest') {
      const applied = await migrateLatest(db);
      console.log(applied.length === 0 ? 'schema is up to date' : `applied: ${applied.join(', ')}`);
    } else {
      const undone = await migrateRollback(db, action === 'rollback-all');
      console.log(
        undone.length === 0 ? 'nothing to roll back' : `rolled back: ${undone.join(', ')}`,
      );
    }
  } finally {
    await db.destroy();
  }
}

const usageFail = (path: string, problem: string): Error => new Error(`${path} ${problem}`);

/**
 * `tasker upgrade-queues`: rebuild the endpoint queues of the configured task types that an
 * older tasker made with other arguments, keeping their messages (src/broker/upgrade.ts). The
 * queues are those of the registry's endpoints for their types, and of `--endpoints a,b` for
 * every configured type. Exits non-zero when a queue was left busy.
 */
export async function upgradeQueuesCommand(
  config: TaskerConfig,
  named: string[],
  force: boolean,
): Promise<void> {
  if (isInProcessBroker(config.broker)) {
    throw new Error('upgrade-queues is for RabbitMQ; broker memory: keeps no queues');
  }
  // a name that cannot be an endpoint's is refused before anything is touched
  named.forEach((name, i) => checkEndpoint(name, `--endpoints[${i}]`, usageFail));
  const types = Object.keys(config.taskTypes);
  const wanted = new Map<string, { type: string; endpoint: string }>();
  const add = (type: string, endpoint: string): void => {
    if (types.includes(type)) wanted.set(`${type}\u0000${endpoint}`, { type, endpoint });
  };
  const db = createDb(config.database);
  try {
    for (const row of await listEndpointRows(db)) {
      for (const type of parseJsonColumn<string[]>(row.types) ?? []) add(type, row.name);
    }
  } finally {
    await db.destroy();
  }
  for (const endpoint of named) for (const type of types) add(type, endpoint);
  let busy = 0;
  const results = await upgradeQueues({
    url: config.broker.url,
    prefix: config.broker.prefix,
    queueExpiresMs: config.broker.queueExpiresMs,
    queueType: config.broker.queueType,
    queues: [...wanted.values()],
    force,
    onQueue: ({ queue, outcome, count }) => {
      if (outcome === 'busy') busy += 1;
      const detail =
        outcome === 'upgraded'
          ? `upgraded, ${count} message(s) kept`
          : outcome === 'busy'
            ? `left alone: ${count} consumer(s); stop its agent, or --force`
            : outcome;
      console.log(`${queue}: ${detail}`);
    },
  });
  console.log(
    `${results.length} queue(s) checked, ${results.filter((r) => r.outcome === 'upgraded').length} upgraded`,
  );
  if (busy > 0) process.exitCode = 1;
}

export async function serverCommand(config: TaskerConfig, migrate: boolean): Promise<void> {
  if (isInProcessBroker(config.broker)) {
    throw new Error(
      'broker.url "memory:" is the in-process broker of `tasker up`, where the agents share ' +
        "the server's process; a separate server needs RabbitMQ (--broker-url amqp://…)",
    );
  }
  const log = createLogger(config.log.level, { process: 'server' }, stderrSink(config.log.format));
  if (migrate) await migrateCommand(config, 'latest');
  const server = await startServer(config, log, { onFatal: fatal(log) });
  onShutdownSignals(() => server.close(), log);
}

/** Where the data lives and how tasks travel, for the start-up line (no passwords). */
function describeStack(config: TaskerConfig): { storage: string; broker: string } {
  const url = config.database.url;
  const { host, pathname } = new URL(url);
  const storage =
    databaseEngine(url) === 'sqlite'
      ? `SQLite file ${sqliteFile(url)}`
      : `MySQL/MariaDB ${host}${pathname}`;
  const broker = isInProcessBroker(config.broker)
    ? 'in-process (embedded single-machine mode, not for production)'
    : `RabbitMQ ${new URL(config.broker.url).host}`;
  return { storage, broker };
}

interface Stoppable {
  stop(): Promise<void>;
  /** what stopping waits for, in words, or null */
  waitingFor(): string | null;
}

/** One agent per endpoint in this process, on the in-process broker. */
async function inProcessAgents(
  config: TaskerConfig,
  endpoints: string[],
  log: Logger,
): Promise<{ server: ServerHandle; agents: Stoppable }> {
  const broker = new MemoryBroker({
    prefix: config.broker.prefix,
    queueExpiresMs: config.broker.queueExpiresMs,
    log: log.child({ part: 'broker' }),
  });
  await broker.start();
  const runner = await startHandlerRunner(config, log, endpoints.length);
  const agents = endpoints.map((endpoint) =>
    createAgent(config, endpoint, runner, broker, log.child({ process: 'agent', endpoint })),
  );
  // agents first: their queues must exist before the relay republishes broadcasts
  for (const agent of agents) await agent.start();
  const server = await startServer(config, log.child({ process: 'server' }), { broker });
  return {
    server,
    agents: {
      stop: async () => {
        await Promise.all(agents.map((agent) => agent.close()));
        await runner.close();
        await server.close();
        await broker.close();
      },
      waitingFor: () => runningTasks(agents.reduce((n, agent) => n + agent.runningTasks, 0)),
    },
  };
}

/** One `tasker agent` child process per endpoint, with the same configuration flags. */
async function agentProcesses(
  config: TaskerConfig,
  endpoints: string[],
  passthrough: string[],
  log: Logger,
): Promise<{ server: ServerHandle; agents: Stoppable }> {
  const server = await startServer(config, log.child({ process: 'server' }), {
    onFatal: fatal(log),
  });
  let stopping = false;
  const children: ChildProcess[] = endpoints.map((endpoint) => {
    // Each agent in a process group of its own: a signal to ours (Ctrl-C in the terminal, a
    // supervisor stopping the group) reaches `up` alone, which passes it on once. The IPC
    // channel is how an agent learns that `up` died without a word: it stops then too.
    const child = spawn(
      process.execPath,
      [process.argv[1] as string, 'agent', ...passthrough, '--endpoint', endpoint],
      { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], detached: true },
    );
    child.on('exit', (code, signal) => {
      if (!stopping) log.error('agent exited', { endpoint, code, signal });
    });
    return child;
  });
  const stopChild = (child: ChildProcess): Promise<void> =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  return {
    server,
    agents: {
      stop: async () => {
        stopping = true;
        await Promise.all(children.map(stopChild));
        await server.close();
      },
      waitingFor: () =>
        `the agents to finish their running tasks (at most ${DRAIN_TIMEOUT_MS / 1000} s)`,
    },
  };
}

/**
 * Development stack in one command: schema, server, and an agent per endpoint. With the
 * in-process broker (`memory:`) the agents run inside this process; otherwise each is a child
 * `tasker agent` process. `passthrough` are the CLI arguments (mode, config, overrides) the
 * agent processes should see too.
 */
export async function upCommand(
  config: TaskerConfig,
  endpoints: string[],
  passthrough: string[],
): Promise<void> {
  const log = createLogger(config.log.level, { process: 'up' }, stderrSink(config.log.format));
  await migrateCommand(config, 'latest');
  const { server, agents } = isInProcessBroker(config.broker)
    ? await inProcessAgents(config, endpoints, log)
    : await agentProcesses(config, endpoints, passthrough, log);
  const { storage, broker } = describeStack(config);
  log.info('tasker is up', {
    api: `http://localhost:${server.port}`,
    storage,
    broker,
    agents: endpoints,
    task_types: Object.keys(config.taskTypes),
  });
  console.log(
    [
      `tasker is up: API http://localhost:${server.port}`,
      `  storage: ${storage}`,
      `  broker:  ${broker}`,
      `  agents:  ${endpoints.join(', ')} (task types ${Object.keys(config.taskTypes).join(', ')})`,
    ].join('\n'),
  );
  onShutdownSignals(() => agents.stop(), log, {
    waitingFor: () => agents.waitingFor(),
    tellTerminal: true,
  });
}
