/**
 * tasker's own processes dying at the worst moments: the server between commit and publish,
 * an agent in the middle of a handler, and a handler that kills its agent every time.
 */
import { AMQP_URL, waitFor } from '../helpers/stack';
import { startTcpProxy } from '../helpers/tcp-proxy';
import { Cluster, expectClean } from './cluster';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function responseOf(cluster: Cluster, identifier: string) {
  return (await cluster.stack
    .db('task_responses')
    .join('tasks', 'tasks.id', 'task_responses.task_id')
    .where('tasks.identifier', identifier)
    .select('task_responses.*', 'tasks.status as task_status')) as Array<Record<string, unknown>>;
}

it('publishes tasks committed before the server was killed once a new server starts', async () => {
  const proxy = await startTcpProxy(5672);
  const cluster = new Cluster({
    endpoints: ['sk1'],
    serverBrokerUrl: AMQP_URL.replace(':5672', `:${proxy.port}`),
    set: ['task_types.worker.wait_for_endpoints_timeout=2m', 'api.publish_wait=300ms'],
  });
  await cluster.start();
  try {
    proxy.cut();
    await sleep(500);
    for (let i = 1; i <= 20; i += 1) {
      await cluster.post(
        `crash-${i}`,
        { payload: { seconds: 0 }, endpoints: ['sk1'] },
        Date.now() + 10_000,
      );
    }
    expect(cluster.accepted.size).toBe(20);
    const created = await cluster.stack.db('tasks').where({ status: 'CREATED' }).count({ n: '*' });
    expect(Number(created[0]?.n)).toBe(20);
    await cluster.server?.stop('SIGKILL');
    proxy.restore();
    await cluster.startServer();
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
    expect(await cluster.stack.db('outbox').count({ n: '*' })).toEqual([{ n: 0 }]);
  } finally {
    await cluster.stop();
    await proxy.close();
  }
});

it('redelivers a task whose agent was killed mid-handler and finishes it once', async () => {
  const cluster = new Cluster({
    endpoints: ['ak1'],
    set: ['task_types.worker.wait_for_endpoints_timeout=2m'],
  });
  await cluster.start();
  try {
    await cluster.post(
      'midway',
      { payload: { seconds: 3 }, endpoints: ['ak1'] },
      Date.now() + 10_000,
    );
    await waitFor(
      () => responseOf(cluster, 'midway'),
      (rows) => rows[0]?.status === 'RUNNING',
      10_000,
      'midway RUNNING',
    );
    await cluster.agents.get('ak1')?.stop('SIGKILL');
    await cluster.startAgent('ak1');
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
    const rows = await responseOf(cluster, 'midway');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'DONE', attempt: 2, task_status: 'DONE' });
  } finally {
    await cluster.stop();
  }
});

it('fails a task whose handler kills the agent every time after max_deliveries', async () => {
  const cluster = new Cluster({
    endpoints: ['pk1'],
    types: ['worker', 'crash'],
    handlers: { crash: 'exports.handle_task = function () { process.exit(3); };\n' },
    set: ['task_types.crash.max_deliveries=3', 'task_types.crash.wait_for_endpoints_timeout=2m'],
  });
  await cluster.start();
  try {
    await cluster.post('poison', { endpoints: ['pk1'] }, Date.now() + 10_000, 'crash');
    let restarts = 0;
    // like systemd's Restart=always: start the agent again whenever it dies
    await waitFor(
      async () => {
        const agent = cluster.agents.get('pk1');
        if (agent !== undefined && agent.process.exitCode !== null) {
          restarts += 1;
          await cluster.startAgent('pk1', { consuming: false });
        }
        return responseOf(cluster, 'poison');
      },
      (rows) => rows[0]?.status === 'FAILED',
      60_000,
      'poison FAILED',
    );
    const rows = await responseOf(cluster, 'poison');
    expect(restarts).toBe(3);
    expect(rows[0]).toMatchObject({ status: 'FAILED', task_status: 'FAILED', attempt: 4 });
    expect(String(rows[0]?.errmsg)).toMatch(/gave up after 3 deliveries/);
    // and the agent serves other tasks afterwards
    await cluster.post(
      'healthy',
      { payload: { seconds: 0 }, endpoints: ['pk1'] },
      Date.now() + 10_000,
    );
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
  } finally {
    await cluster.stop();
  }
});
