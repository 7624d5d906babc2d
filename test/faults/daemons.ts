/**
 * Fault injection on the machine's real RabbitMQ and MariaDB: kill -9, restart, freeze
 * (SIGSTOP) and thaw. Used only by the fault suite, which runs alone (`npm run test:faults`).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as amqp from 'amqplib';
import knex from 'knex';
import { AMQP_URL } from '../support/services';

const run = promisify(execFile);

async function pids(pattern: string): Promise<number[]> {
  try {
    const { stdout } = await run('pgrep', ['-f', pattern]);
    return stdout.split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function signal(pattern: string, sig: string): Promise<void> {
  const found = await pids(pattern);
  if (found.length === 0) throw new Error(`no process matches ${pattern}`);
  for (const pid of found) process.kill(pid, sig as NodeJS.Signals);
}

async function until(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${what} not back within ${timeoutMs} ms`);
}

const BEAM = 'beam.smp.*rabbit';

export const rabbitmq = {
  async kill(): Promise<void> {
    await signal(BEAM, 'SIGKILL');
    await until('rabbitmq to die', async () => (await pids(BEAM)).length === 0, 15_000);
  },
  async start(): Promise<void> {
    if ((await pids(BEAM)).length === 0) await run('rabbitmq-server', ['-detached']);
    await until('rabbitmq', rabbitmq.answers, 90_000);
  },
  freeze: () => signal(BEAM, 'SIGSTOP'),
  thaw: () => signal(BEAM, 'SIGCONT'),
  async answers(): Promise<boolean> {
    const connection = await amqp.connect(AMQP_URL, { timeout: 2000 });
    await connection.close();
    return true;
  },
};

const MARIADB = '/usr/sbin/mariadbd';

export const mariadb = {
  async kill(): Promise<void> {
    await signal(MARIADB, 'SIGKILL');
    await until('mariadb to die', async () => (await pids(MARIADB)).length === 0, 15_000);
  },
  async start(): Promise<void> {
    if ((await pids(MARIADB)).length === 0) {
      await run('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', MARIADB]);
    }
    await until('mariadb', mariadb.answers, 90_000);
  },
  async answers(): Promise<boolean> {
    const db = knex({
      client: 'mysql2',
      connection: { host: '127.0.0.1', port: 3306, user: 'root', connectTimeout: 2000 },
      pool: { min: 0, max: 1 },
    });
    try {
      await db.raw('SELECT 1');
      return true;
    } finally {
      await db.destroy();
    }
  },
};
