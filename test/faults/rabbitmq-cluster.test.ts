/**
 * tasker on a three-node RabbitMQ cluster with quorum queues (scripts/rabbitmq-cluster.sh starts
 * it beside the machine's own RabbitMQ): server and agents are given the three nodes' URLs and
 * fail over between them. A node is killed (kill -9) under load, the one every queue's leader
 * is on, and started again; a node is frozen (SIGSTOP) and thawed. Every accepted task ends
 * final, nothing is lost, duplicated or moved back, and no tasker process exits.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../support/child-processes';
import { sleep } from '../support/waiting';
import { Cluster, expectClean } from './cluster';

const SCRIPT = join(ROOT, 'scripts', 'rabbitmq-cluster.sh');
let dir: string;
let urls: string;

const script = (...args: string[]): string =>
  execFileSync('bash', [SCRIPT, ...args], { encoding: 'utf8', timeout: 180_000 }).trim();
const pidOf = (node: number): number => Number(script('pid', dir, String(node)));

const settings = [
  'task_types.worker.wait_for_endpoints_timeout=3m',
  'broker.queue_type=quorum',
  'broker.heartbeat=5s',
  'broker.reconnect_max_delay=2s',
  'broker.confirm_timeout=3s',
  'api.publish_wait=2s',
  'server.relay_interval=500ms',
];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tasker-rabbitmq-cluster-'));
  urls = script('start', dir).split('\n').pop() ?? '';
  expect(urls.split(',')).toHaveLength(3);
}, 180_000);

afterAll(() => {
  for (const node of [1, 2, 3]) {
    try {
      process.kill(pidOf(node), 'SIGCONT');
    } catch {
      // not running
    }
  }
  script('stop', dir);
}, 120_000);

/** the queues of the prefix, with their type and leader, as node 2 lists them */
function queues(prefix: string): string[][] {
  return script('ctl', dir, '2', 'list_queues', '-q', 'name', 'type', 'leader')
    .split('\n')
    .map((line) => line.split('\t'))
    .filter(([name]) => name?.startsWith(`${prefix}.`));
}

const run = async (name: string, fault: (cluster: Cluster) => Promise<void>): Promise<void> => {
  const cluster = new Cluster({
    endpoints: [`${name}1`, `${name}2`],
    brokerUrl: urls,
    set: settings,
  });
  await cluster.start();
  try {
    const endpoints = [`${name}1`, `${name}2`];
    const load = cluster.load(name, 20_000, 8, { payload: { seconds: 0 }, endpoints });
    await sleep(4000);
    await fault(cluster);
    await load;
    const verdict = await cluster.verdict(150_000);
    expectClean(verdict, cluster);
    expect(cluster.server?.process.exitCode).toBeNull();
    for (const agent of cluster.agents.values()) expect(agent.process.exitCode).toBeNull();
    console.log(
      `RabbitMQ cluster, ${name}:`,
      JSON.stringify({ ...verdict, answers: Object.fromEntries(cluster.answers) }),
    );
  } finally {
    await cluster.stop();
  }
};

it('loses nothing when the node leading the queues is killed under load', async () => {
  await run('rk', async (cluster) => {
    const prefix = cluster.stack.prefix;
    const quorum = () => queues(prefix).filter(([, type]) => type === 'quorum');
    // the endpoint, control and results queues, replicated
    expect(quorum().map(([name]) => name)).toEqual(
      expect.arrayContaining([`${prefix}.worker.rk1`, `${prefix}.worker.rk2`, `${prefix}.results`]),
    );
    const leader = quorum().find(([name]) => name === `${prefix}.worker.rk1`)?.[2] ?? '';
    const node = Number(/^tasker-c(\d)@/.exec(leader)?.[1]);
    expect([1, 2, 3]).toContain(node);
    process.kill(pidOf(node), 'SIGKILL');
    await sleep(5000);
    // the queues it led elected leaders on the nodes left
    expect(quorum().every(([, , now]) => now !== leader)).toBe(true);
    script('restart', dir, String(node));
  });
}, 300_000);

it('loses nothing when a node is frozen under load and thawed', async () => {
  await run('rf', async () => {
    const pid = pidOf(2);
    process.kill(pid, 'SIGSTOP');
    try {
      await sleep(12_000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });
}, 300_000);
