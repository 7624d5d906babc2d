/**
 * The machine's MariaDB and RabbitMQ, shared by the tests and the bench: where they are, unique
 * names for what one test file or run creates on them, and removing its queues and exchanges.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import * as amqp from 'amqplib';

const run = promisify(execFile);

/** The tests' services; the bench reads BENCH_MYSQL_URL and BENCH_AMQP_URL instead. */
export const MYSQL_ROOT = process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export function uniqueName(kind: string): string {
  return `${kind}${randomBytes(4).toString('hex')}`;
}

/** Queue (or exchange) names that start with `stem`, as rabbitmqctl lists them. */
export async function listBrokerNames(
  what: 'queues' | 'exchanges',
  stem: string,
): Promise<string[]> {
  // a run that declared thousands of queues lists more than the default 1 MB
  const args = [`list_${what}`, '-q', '--no-table-headers', 'name'];
  const { stdout } = await run('rabbitmqctl', args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((name) => name.startsWith(stem));
}

/**
 * Delete every queue and exchange whose name starts with `stem` (`<prefix>.` for one tasker's
 * topology; deleting a queue drops its messages). Returns how many there were.
 */
export async function deleteBrokerNames(stem: string, amqpUrl = AMQP_URL): Promise<number> {
  const queues = await listBrokerNames('queues', stem);
  const exchanges = await listBrokerNames('exchanges', stem);
  if (queues.length + exchanges.length === 0) return 0;
  const connection = await amqp.connect(amqpUrl);
  try {
    const ch = await connection.createChannel();
    for (const queue of queues) await ch.deleteQueue(queue);
    for (const exchange of exchanges) await ch.deleteExchange(exchange);
    await ch.close();
  } finally {
    await connection.close();
  }
  return queues.length + exchanges.length;
}
