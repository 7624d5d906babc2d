/**
 * Per-test-file isolation on the shared MariaDB and RabbitMQ: a fresh database and a unique
 * exchange/queue prefix, both removed afterwards. A missing service fails the test loudly.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type TaskerConfig } from '../../src/config';
import { createDb, ensureDatabase, migrateLatest, type Db } from '../../src/store';
import { AMQP_URL, MYSQL_ROOT, deleteBrokerNames, uniqueName } from './services';

export interface TestStack {
  config: TaskerConfig;
  db: Db;
  dbName: string;
  prefix: string;
  /** flags that make a child `tasker` process use this stack */
  cliFlags: string[];
  cleanup(): Promise<void>;
}

export interface StackOptions {
  /** extra `section.key=value` settings */
  set?: string[];
  /** broker url to put in the config (e.g. through a proxy) */
  brokerUrl?: string;
  /** the url tasker uses (e.g. through a proxy); it must name `dbName` */
  databaseUrl?: string;
  dbName?: string;
}

export async function createTestStack(options: StackOptions = {}): Promise<TestStack> {
  const dbName = options.dbName ?? uniqueName('tasker_t_');
  const prefix = uniqueName('t');
  const stateDir = mkdtempSync(join(tmpdir(), 'tasker-agent-'));
  const set = [`agent.state_dir=${stateDir}`, ...(options.set ?? [])];
  const databaseUrl = options.databaseUrl ?? `${MYSQL_ROOT}/${dbName}`;
  const flags = {
    'database-url': databaseUrl,
    'broker-url': options.brokerUrl ?? AMQP_URL,
    prefix,
    port: '0',
    host: '127.0.0.1',
    set: set.join('\n'),
  };
  const config = loadConfig({ mode: 'test', env: {}, flags });
  await ensureDatabase({ ...config.database, url: `${MYSQL_ROOT}/${dbName}` });
  const db = createDb({ ...config.database, url: `${MYSQL_ROOT}/${dbName}` });
  await migrateLatest(db);
  const cliFlags = [
    '--mode',
    'test',
    '--database-url',
    databaseUrl,
    '--broker-url',
    options.brokerUrl ?? AMQP_URL,
    '--prefix',
    prefix,
    ...set.flatMap((entry) => ['--set', entry]),
  ];
  return {
    config,
    db,
    dbName,
    prefix,
    cliFlags,
    cleanup: async () => {
      await db.raw(`DROP DATABASE IF EXISTS \`${dbName}\``);
      await db.destroy();
      await deleteBrokerNames(`${prefix}.`);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
