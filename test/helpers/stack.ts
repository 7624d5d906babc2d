/**
 * Per-test-file isolation on the shared MariaDB and RabbitMQ: a fresh database and a unique
 * exchange/queue prefix, both removed afterwards. A missing service fails the test loudly.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as amqp from 'amqplib';
import { loadConfig, type TaskerConfig } from '../../src/config';
import { createDb, ensureDatabase, migrateLatest, type Db } from '../../src/store';

const run = promisify(execFile);

export const MYSQL_ROOT = process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export interface TestStack {
  config: TaskerConfig;
  db: Db;
  dbName: string;
  prefix: string;
  /** flags that make a child `tasker` process use this stack */
  cliFlags: string[];
  cleanup(): Promise<void>;
}

export function uniqueName(kind: string): string {
  return `${kind}${randomBytes(4).toString('hex')}`;
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
      await deleteBrokerTopology(prefix);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Delete every queue and exchange whose name starts with `<prefix>.`. */
export async function deleteBrokerTopology(prefix: string): Promise<void> {
  const list = async (what: string): Promise<string[]> => {
    const { stdout } = await run('rabbitmqctl', [
      'list_' + what,
      '-q',
      '--no-table-headers',
      'name',
    ]);
    return stdout
      .split('\n')
      .map((line) => line.trim())
      .filter((name) => name.startsWith(`${prefix}.`));
  };
  const [queues, exchanges] = [await list('queues'), await list('exchanges')];
  const connection = await amqp.connect(AMQP_URL);
  try {
    const ch = await connection.createChannel();
    for (const queue of queues) await ch.deleteQueue(queue);
    for (const exchange of exchanges) await ch.deleteExchange(exchange);
    await ch.close();
  } finally {
    await connection.close();
  }
}

/** Poll `probe` until it returns a value that `done` accepts, or fail after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
