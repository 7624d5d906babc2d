/**
 * What the server decides after a POST travels like a task: a cancel, a retry's new round, the
 * next wave of a rollout are committed with their outbox row before the answer, so a server
 * killed right after answering, or a broker down when they are decided, loses none of them, and
 * none is sent twice in a way anyone can see (each endpoint runs a wave once, a round once).
 */
import { AMQP_URL } from '../support/services';
import { sleep, waitFor } from '../support/waiting';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { Cluster, expectClean } from './cluster';
import { rabbitmq } from './daemons';

afterAll(async () => {
  await rabbitmq.start();
});

interface Row {
  endpoint: string;
  status: string;
  round: number;
  attempt: number;
  wave: number;
  errmsg: string | null;
}

async function rowsOf(cluster: Cluster, identifier: string): Promise<Row[]> {
  return (await cluster.stack
    .db('task_responses')
    .join('tasks', 'tasks.id', 'task_responses.task_id')
    .where('tasks.identifier', identifier)
    .orderBy('task_responses.id')
    .select('task_responses.*')) as Row[];
}

async function taskOf(cluster: Cluster, identifier: string) {
  return (await cluster.stack.db('tasks').where({ identifier }).first()) as {
    id: number;
    status: string;
    round: number;
    wave: number;
  };
}

async function call(cluster: Cluster, path: string, body: unknown = {}): Promise<number> {
  const res = await fetch(`${cluster.url}/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

/** How often an agent's log says it finished a run of the task. */
function runsOf(cluster: Cluster, taskId: number): number {
  let runs = 0;
  for (const agent of cluster.agents.values()) {
    runs += agent
      .output()
      .split('\n')
      .filter(
        (line) => line.includes('"task finished"') && line.includes(`"task_id":${taskId},`),
      ).length;
  }
  return runs;
}

/** A cluster whose server reaches the broker through a proxy the test can cut. */
async function proxied(
  endpoints: string[],
  set: string[],
): Promise<{ cluster: Cluster; proxy: TcpProxy }> {
  const proxy = await startTcpProxy(5672);
  const cluster = new Cluster({
    endpoints,
    types: ['worker', 'backup'],
    serverBrokerUrl: AMQP_URL.replace(':5672', `:${proxy.port}`),
    set: ['task_types.worker.wait_for_endpoints_timeout=2m', 'api.publish_wait=500ms', ...set],
  });
  await cluster.start();
  return { cluster, proxy };
}

/** Kill the server once it can no longer reach the broker, and start a new one. */
async function replaceServer(cluster: Cluster, proxy: TcpProxy): Promise<void> {
  await cluster.server?.stop('SIGKILL');
  proxy.restore();
  await cluster.startServer();
}

/** Post the task `long` (a minute's work) to `endpoint` and wait until its handler runs. */
async function postLongRunning(cluster: Cluster, endpoint: string): Promise<void> {
  await cluster.post(
    'long',
    { payload: { seconds: 60 }, endpoints: [endpoint] },
    Date.now() + 10_000,
  );
  await waitFor(
    () => rowsOf(cluster, 'long'),
    (rows) => rows[0]?.status === 'RUNNING',
    15_000,
    'long RUNNING',
  );
}

it('carries out a cancel answered just before the server was killed', async () => {
  const { cluster, proxy } = await proxied(['oc1'], []);
  try {
    await postLongRunning(cluster, 'oc1');
    proxy.cut();
    expect(await call(cluster, 'worker/long/cancel', { reason: 'stop the rollout' })).toBe(200);
    const outbox = await cluster.stack.db('outbox').where({ kind: 'cancel' });
    expect(outbox).toHaveLength(1);
    await replaceServer(cluster, proxy);
    const verdict = await cluster.verdict(60_000);
    expectClean(verdict, cluster);
    expect((await taskOf(cluster, 'long')).status).toBe('CANCELLED');
    expect(await rowsOf(cluster, 'long')).toEqual([
      expect.objectContaining({ status: 'CANCELLED', errmsg: 'cancelled: stop the rollout' }),
    ]);
    expect(await cluster.stack.db('outbox')).toEqual([]);
  } finally {
    await cluster.stop();
    await proxy.close();
  }
});

it('carries out a cancel issued while the broker is down', async () => {
  const cluster = new Cluster({
    endpoints: ['ob1'],
    set: [
      'task_types.worker.wait_for_endpoints_timeout=2m',
      'broker.reconnect_max_delay=2s',
      'server.relay_interval=500ms',
    ],
  });
  await cluster.start();
  try {
    await postLongRunning(cluster, 'ob1');
    await rabbitmq.kill();
    // the agent's handler runs on meanwhile; the cancel waits in the outbox
    expect(await call(cluster, 'worker/long/cancel')).toBe(200);
    await sleep(1000);
    await rabbitmq.start();
    await waitFor(
      () => taskOf(cluster, 'long'),
      (task) => task.status === 'CANCELLED',
      60_000,
      'long CANCELLED once the broker is back',
    );
    const verdict = await cluster.verdict(60_000);
    expectClean(verdict, cluster);
    expect(await rowsOf(cluster, 'long')).toEqual([
      expect.objectContaining({
        status: 'CANCELLED',
        errmsg: 'cancelled: cancelled by the operator',
      }),
    ]);
  } finally {
    await cluster.stop();
  }
});

it('runs the round of a retry answered just before the server was killed, once', async () => {
  const { cluster, proxy } = await proxied(['or1', 'or2'], []);
  try {
    await cluster.post('failing', { endpoints: ['or1', 'or2'] }, Date.now() + 10_000, 'backup');
    await waitFor(
      () => taskOf(cluster, 'failing'),
      (task) => task?.status === 'FAILED',
      20_000,
      'failing FAILED',
    );
    proxy.cut();
    expect(await call(cluster, 'backup/failing/retry')).toBe(200);
    await replaceServer(cluster, proxy);
    await waitFor(
      () => rowsOf(cluster, 'failing'),
      (rows) => rows.every((row) => row.round === 2 && row.status === 'FAILED'),
      30_000,
      'round 2 FAILED on both endpoints',
    );
    const verdict = await cluster.verdict(60_000);
    expectClean(verdict, cluster);
    const task = await taskOf(cluster, 'failing');
    expect(task).toMatchObject({ status: 'FAILED', round: 2 });
    for (const row of await rowsOf(cluster, 'failing')) expect(row.attempt).toBe(1);
    // each endpoint ran round 1 and round 2 once each
    expect(runsOf(cluster, task.id)).toBe(4);
    expect(await cluster.stack.db('response_history').where({ task_id: task.id })).toHaveLength(2);
  } finally {
    await cluster.stop();
    await proxy.close();
  }
});

it('sends every wave once when the server is killed between two waves', async () => {
  const cluster = new Cluster({
    endpoints: ['ow1', 'ow2', 'ow3'],
    set: ['task_types.worker.wait_for_endpoints_timeout=2m', 'server.relay_interval=300ms'],
  });
  await cluster.start();
  try {
    await cluster.post(
      'waves',
      {
        payload: { seconds: 0 },
        endpoints: ['ow1', 'ow2', 'ow3'],
        rollout: { batch: 1, pause: '3s' },
      },
      Date.now() + 10_000,
    );
    // the first wave is done and the second waits out its pause in the outbox
    await waitFor(
      () => taskOf(cluster, 'waves'),
      (task) => task?.wave === 2,
      20_000,
      'wave 2 decided',
    );
    expect(await cluster.stack.db('outbox').where({ kind: 'task' })).toHaveLength(1);
    await cluster.server?.stop('SIGKILL');
    await cluster.startServer();
    const verdict = await cluster.verdict(60_000);
    expectClean(verdict, cluster);
    const task = await taskOf(cluster, 'waves');
    expect(task).toMatchObject({ status: 'DONE', wave: 3 });
    const rows = await rowsOf(cluster, 'waves');
    expect(rows.map((row) => [row.endpoint, row.wave, row.status, row.attempt])).toEqual([
      ['ow1', 1, 'DONE', 1],
      ['ow2', 2, 'DONE', 1],
      ['ow3', 3, 'DONE', 1],
    ]);
    expect(runsOf(cluster, task.id)).toBe(3);
  } finally {
    await cluster.stop();
  }
});
