/**
 * The broker killed (kill -9) or frozen (SIGSTOP) while clients post: every accepted task ends
 * final, nothing unexpected, no duplicate rows, no state moving back, no process crashing.
 */
import { sleep } from '../support/waiting';
import { Cluster, expectClean } from './cluster';
import { rabbitmq } from './daemons';

const settings = [
  'task_types.worker.wait_for_endpoints_timeout=3m',
  'broker.reconnect_max_delay=2s',
  'broker.confirm_timeout=2s',
  'api.publish_wait=1s',
  'server.relay_interval=500ms',
];

afterAll(async () => {
  await rabbitmq.thaw().catch(() => undefined);
  await rabbitmq.start();
});

it('loses nothing when the broker is killed during a burst of POSTs and restarted', async () => {
  const cluster = new Cluster({ endpoints: ['bk1', 'bk2'], set: settings });
  await cluster.start();
  try {
    const load = cluster.load('kill', 15_000, 8, {
      payload: { seconds: 0 },
      endpoints: ['bk1', 'bk2'],
    });
    await sleep(3000);
    await rabbitmq.kill();
    await sleep(3000);
    await rabbitmq.start();
    await load;
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
    expect(cluster.server?.process.exitCode).toBeNull();
    for (const agent of cluster.agents.values()) expect(agent.process.exitCode).toBeNull();
    console.log(
      'broker kill -9:',
      JSON.stringify({ ...verdict, answers: Object.fromEntries(cluster.answers) }),
    );
  } finally {
    await cluster.stop();
  }
});

it('marks nothing SENT that the broker did not confirm while it is frozen, and recovers', async () => {
  const cluster = new Cluster({ endpoints: ['bf1', 'bf2'], set: settings });
  await cluster.start();
  try {
    const answeredSent: string[] = [];
    const load = cluster.load('freeze', 12_000, 6, {
      payload: { seconds: 0 },
      endpoints: ['bf1', 'bf2'],
    });
    await sleep(2000);
    await rabbitmq.freeze();
    const frozenAt = Date.now();
    try {
      // while frozen, a POST answers within publish_wait and says CREATED, not SENT
      const started = Date.now();
      const res = await fetch(`${cluster.url}/worker`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          identifier: 'during-freeze',
          payload: { seconds: 0 },
          endpoints: ['bf1'],
        }),
      });
      cluster.posted.add('worker/during-freeze');
      const body = (await res.json()) as { status: string };
      expect(res.status).toBe(201);
      cluster.accepted.add('worker/during-freeze');
      expect(body.status).toBe('CREATED');
      expect(Date.now() - started).toBeLessThan(4000);
      if (body.status === 'SENT') answeredSent.push('during-freeze');
      // the connection is open but nothing answers: not ready
      const ready = await fetch(`${cluster.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({
        status: 'unavailable',
        database: 'up',
        broker: 'down',
      });
      await sleep(Math.max(0, 5000 - (Date.now() - frozenAt)));
    } finally {
      await rabbitmq.thaw();
    }
    await load;
    expect((await fetch(`${cluster.url}/readyz`)).status).toBe(200);
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
    expect(answeredSent).toEqual([]);
    expect(cluster.server?.process.exitCode).toBeNull();
    console.log(
      'broker SIGSTOP:',
      JSON.stringify({ ...verdict, answers: Object.fromEntries(cluster.answers) }),
    );
  } finally {
    await cluster.stop();
  }
});
