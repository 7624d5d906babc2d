/**
 * The database killed (kill -9) while clients post: requests fail fast with 503 while it is
 * down, the server recovers without a restart, and nothing accepted is lost.
 */
import { sleep } from '../support/waiting';
import { Cluster, expectClean } from './cluster';
import { mariadb } from './daemons';

afterAll(async () => {
  await mariadb.start();
});

it('answers 503 fast while the database is down and loses nothing accepted', async () => {
  const cluster = new Cluster({
    endpoints: ['db1', 'db2'],
    set: ['task_types.worker.wait_for_endpoints_timeout=3m', 'database.acquire_timeout=1s'],
  });
  await cluster.start();
  try {
    const load = cluster.load('dbkill', 15_000, 8, {
      payload: { seconds: 0 },
      endpoints: ['db1', 'db2'],
    });
    await sleep(3000);
    await mariadb.kill();
    const started = Date.now();
    const res = await fetch(`${cluster.url}/worker`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ identifier: 'while-down', endpoints: ['db1'] }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
      'database_unavailable',
    );
    expect(Date.now() - started).toBeLessThan(5000);
    cluster.posted.add('worker/while-down');
    await sleep(2000);
    await mariadb.start();
    await load;
    const verdict = await cluster.verdict();
    expectClean(verdict, cluster);
    expect(cluster.answers.get(503) ?? 0).toBeGreaterThan(0);
    expect(cluster.server?.process.exitCode).toBeNull();
    console.log(
      'mariadb kill -9:',
      JSON.stringify({ ...verdict, answers: Object.fromEntries(cluster.answers) }),
    );
  } finally {
    await cluster.stop();
  }
});
