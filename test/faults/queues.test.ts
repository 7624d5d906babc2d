/**
 * Queues for endpoints that do not exist: a POST naming a thousand made-up endpoints once made
 * a thousand durable queues bound to the type's fanout exchange for good, each taking a copy of
 * every later task. Their queues must expire, and live endpoints must not notice.
 */
import { listBrokerNames } from '../support/services';
import { sleep, waitFor } from '../support/waiting';
import { Cluster, expectClean } from './cluster';

// long enough for the 1,000 made-up queues to be declared, ten POSTs of 100, before the first
// expire: declaring 100 queues with priorities has taken up to 4 s on the shared test machine
const QUEUE_EXPIRES_MS = 90_000;

/** The prefix's queues as rabbitmqctl lists them (listing does not renew a queue's expiry). */
async function queues(prefix: string): Promise<string[]> {
  return (await listBrokerNames('queues', `${prefix}.`)).sort();
}

it('lets the queues of made-up endpoints expire, and live endpoints never notice', async () => {
  const cluster = new Cluster({
    endpoints: ['live1', 'live2'],
    set: [
      `broker.queue_expires=${QUEUE_EXPIRES_MS}ms`,
      'task_types.worker.wait_for_endpoints_timeout=3s',
    ],
  });
  await cluster.start();
  try {
    const { prefix } = cluster.stack;
    const madeUp = (task: number) => Array.from({ length: 100 }, (_, i) => `ghost-${task}-${i}`);
    for (let task = 1; task <= 10; task += 1) {
      await cluster.post(`ghosts-${task}`, { endpoints: madeUp(task) }, Date.now() + 30_000);
    }
    // each task's queues are declared before its publish: at once, or by the relay when the POST
    // answered CREATED (its publish took longer than api.publish_wait on a busy machine)
    const ghosts = await waitFor(
      async () => (await queues(prefix)).filter((q) => q.includes('.ghost-')),
      (names) => names.length >= 1000,
      30_000,
      'the made-up endpoints’ queues to be declared',
    );
    expect(ghosts).toHaveLength(1000);
    // live endpoints work meanwhile
    for (let i = 1; i <= 20; i += 1) {
      await cluster.post(
        `during-${i}`,
        { payload: { seconds: 0 }, endpoints: ['live1', 'live2'] },
        Date.now() + 30_000,
      );
    }
    // the ghosts' tasks end INCOMPLETE at their deadline; then their queues expire unused
    await waitFor(
      () => queues(prefix),
      (names) => !names.some((q) => q.includes('.ghost-')),
      QUEUE_EXPIRES_MS + 30_000,
      'the made-up endpoints’ queues to expire',
    );
    // the endpoints' queues and tasker's own; a running server's change-event queue is its
    // own and goes with its connection
    const left = await queues(prefix);
    expect(left.filter((q) => q.startsWith(`${prefix}.events.`))).toHaveLength(1);
    expect(left.filter((q) => !q.startsWith(`${prefix}.events.`))).toEqual(
      [
        `${prefix}.control.live1`,
        `${prefix}.control.live2`,
        `${prefix}.dead`,
        `${prefix}.results`,
        `${prefix}.worker.live1`,
        `${prefix}.worker.live2`,
      ].sort(),
    );
    await sleep(500);
    for (let i = 1; i <= 20; i += 1) {
      await cluster.post(
        `after-${i}`,
        { payload: { seconds: 0 }, endpoints: ['live1', 'live2'] },
        Date.now() + 30_000,
      );
    }
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
    const statuses = (await cluster.stack.db('tasks').select('identifier', 'status')) as Array<{
      identifier: string;
      status: string;
    }>;
    for (const { identifier, status } of statuses) {
      expect([identifier, status]).toEqual([
        identifier,
        identifier.startsWith('ghosts-') ? 'INCOMPLETE' : 'DONE',
      ]);
    }
  } finally {
    await cluster.stop();
  }
}, 420_000);
