/**
 * The server-side commands: migrate, server, and the development stack `up`. Each exits
 * non-zero with a one-line reason when it cannot start. (The agent's command lives apart, so
 * an agent never loads the API, knex or mysql2.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { TaskerConfig } from '../config';
import { createLogger } from '../log';
import { startServer } from '../server';
import {
  createDb,
  ensureDatabase,
  migrateLatest,
  migrateRollback,
  migrationStatus,
} from '../store';
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

export async function serverCommand(config: TaskerConfig, migrate: boolean): Promise<void> {
  const log = createLogger(config.log.level, { process: 'server' });
  if (migrate) await migrateCommand(config, 'latest');
  const server = await startServer(config, log, { onFatal: fatal(log) });
  onShutdownSignals(() => server.close(), log);
}

/**
 * Development stack in one command: schema, server, and one agent process per endpoint.
 * `passthrough` are the CLI arguments (mode, config, overrides) the agents should see too.
 */
export async function upCommand(
  config: TaskerConfig,
  endpoints: string[],
  passthrough: string[],
): Promise<void> {
  const log = createLogger(config.log.level, { process: 'up' });
  await migrateCommand(config, 'latest');
  const server = await startServer(config, log.child({ process: 'server' }), {
    onFatal: fatal(log),
  });
  const children: ChildProcess[] = endpoints.map((endpoint) => {
    const child = spawn(
      process.execPath,
      [process.argv[1] as string, 'agent', ...passthrough, '--endpoint', endpoint],
      { stdio: 'inherit' },
    );
    child.on('exit', (code, signal) => {
      if (!stopping) log.error('agent exited', { endpoint, code, signal });
    });
    return child;
  });
  let stopping = false;
  log.info('tasker is up', {
    api: `http://localhost:${server.port}`,
    agents: endpoints,
    task_types: Object.keys(config.taskTypes),
  });
  onShutdownSignals(async () => {
    stopping = true;
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    await server.close();
  }, log);
}
