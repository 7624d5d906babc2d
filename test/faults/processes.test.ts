/**
 * tasker's own processes dying at the worst moments: the server between commit and publish,
 * an agent in the middle of a handler, and a handler that kills its agent every time.
 */
import { AMQP_URL } from '../support/services';
import { sleep, waitFor } from '../support/waiting';
import { startTcpProxy } from '../support/tcp-proxy';
import { Cluster, expectClean } from './cluster';

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

it('reruns a task whose agent was killed after its delivery deadline passed, to DONE', async () => {
  // the endpoint started the task in time: a crash mid-run must not make it a late delivery
  const cluster = new Cluster({
    endpoints: ['dk1'],
    set: [
      'task_types.worker.wait_for_endpoints_timeout=3s',
      'task_types.worker.execution_timeout=20s',
    ],
  });
  await cluster.start();
  try {
    const posted = Date.now();
    await cluster.post(
      'past-deadline',
      { payload: { seconds: 6 }, endpoints: ['dk1'] },
      posted + 2000,
    );
    await waitFor(
      () => responseOf(cluster, 'past-deadline'),
      (rows) => rows[0]?.status === 'RUNNING',
      10_000,
      'past-deadline RUNNING',
    );
    await sleep(Math.max(0, posted + 4000 - Date.now()));
    await cluster.agents.get('dk1')?.stop('SIGKILL');
    await cluster.startAgent('dk1');
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
    const rows = await responseOf(cluster, 'past-deadline');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'DONE', attempt: 2, task_status: 'DONE' });
  } finally {
    await cluster.stop();
  }
});

it('runs again a task whose agent was killed before it reported, and ends it DONE', async () => {
  // killed within report_delay: the server never heard of the run and, the agent being away
  // past the deadline, says UNDELIVERED; the agent knows it started the task and finishes it
  const cluster = new Cluster({
    endpoints: ['rk1'],
    types: ['worker', 'quiet'],
    // runs 5 s without a progress report
    handlers: { quiet: 'exports.handle_task = () => new Promise((r) => setTimeout(r, 5000));\n' },
    set: [
      'task_types.quiet.wait_for_endpoints_timeout=3s',
      'task_types.quiet.execution_timeout=20s',
      'agent.report_delay=10s',
    ],
  });
  await cluster.start();
  try {
    await cluster.post('unreported', { endpoints: ['rk1'] }, Date.now() + 1500, 'quiet');
    // well before its received report, due 1 s before the deadline
    await sleep(500);
    expect((await responseOf(cluster, 'unreported'))[0]?.status).toBe('PENDING');
    await cluster.agents.get('rk1')?.stop('SIGKILL');
    await waitFor(
      () => responseOf(cluster, 'unreported'),
      (rows) => rows[0]?.status === 'UNDELIVERED',
      10_000,
      'unreported UNDELIVERED while its agent is away',
    );

    await cluster.startAgent('rk1');
    // the task is final already (INCOMPLETE): wait for the rerun's result to replace it
    await waitFor(
      () => responseOf(cluster, 'unreported'),
      (rows) => rows[0]?.status === 'DONE',
      20_000,
      'unreported DONE after the rerun',
    );
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
    expect(await responseOf(cluster, 'unreported')).toEqual([
      expect.objectContaining({ status: 'DONE', attempt: 2, task_status: 'DONE' }),
    ]);
  } finally {
    await cluster.stop();
  }
});

it('fails only the task whose handler exits its process; the one beside it finishes', async () => {
  // the crash comes at once, within report_delay: the endpoint got the task and says so
  const cluster = new Cluster({
    endpoints: ['pk1'],
    types: ['worker', 'crash'],
    handlers: { crash: 'exports.handle_task = function () { process.exit(3); };\n' },
    set: [
      'task_types.crash.wait_for_endpoints_timeout=3s',
      'task_types.worker.wait_for_endpoints_timeout=1m',
      'agent.report_delay=2s',
    ],
  });
  await cluster.start();
  try {
    const agent = cluster.agents.get('pk1');
    await cluster.post(
      'innocent',
      { payload: { seconds: 4 }, endpoints: ['pk1'] },
      Date.now() + 10_000,
    );
    await cluster.post('culprit', { endpoints: ['pk1'] }, Date.now() + 10_000, 'crash');
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
    expect(await responseOf(cluster, 'culprit')).toEqual([
      expect.objectContaining({
        status: 'FAILED',
        attempt: 1,
        errnr: 3,
        errmsg: "the handler's process exited with code 3 before the handler returned",
        task_status: 'FAILED',
      }),
    ]);
    expect(await responseOf(cluster, 'innocent')).toEqual([
      expect.objectContaining({ status: 'DONE', attempt: 1, task_status: 'DONE' }),
    ]);
    // the agent itself never went down
    expect(agent?.process.exitCode).toBeNull();
    expect(cluster.agents.get('pk1')).toBe(agent);
  } finally {
    await cluster.stop();
  }
});

it('fails a task that kills its agent every time after max_deliveries', async () => {
  // a handler that kills the agent itself, not only its own process: the attempt journal bounds it
  const cluster = new Cluster({
    endpoints: ['ak2'],
    types: ['worker', 'crash'],
    handlers: {
      crash:
        "exports.handle_task = function () { process.kill(process.ppid, 'SIGKILL'); return new Promise(() => {}); };\n",
    },
    set: ['task_types.crash.max_deliveries=3', 'task_types.crash.wait_for_endpoints_timeout=2m'],
  });
  await cluster.start();
  try {
    await cluster.post('poison', { endpoints: ['ak2'] }, Date.now() + 10_000, 'crash');
    let restarts = 0;
    // like systemd's Restart=always: start the agent again whenever it dies
    await waitFor(
      async () => {
        const agent = cluster.agents.get('ak2');
        const died = agent?.process.exitCode !== null || agent?.process.signalCode !== null;
        if (agent !== undefined && died) {
          restarts += 1;
          await cluster.startAgent('ak2', { consuming: false });
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
      { payload: { seconds: 0 }, endpoints: ['ak2'] },
      Date.now() + 10_000,
    );
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
  } finally {
    await cluster.stop();
  }
});
