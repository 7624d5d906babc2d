/**
 * GET /metrics on a server over the real MariaDB and RabbitMQ, read with a strict text-format
 * parser: behind the API's tokens, its counters moving by what tasks run through agents did;
 * on a listener of its own without a token; and a scrape while the database is away.
 */
import type { HandleTask } from '../../src/agent';
import { AgentMetrics } from '../../src/metrics';
import { isTerminalTask, type TaskStatus } from '../../src/domain';
import { createTestStack, type TestStack } from '../support/stack';
import { startTestAgent, startTestServer, type RunningAgent } from '../support/in-process';
import { MYSQL_ROOT, uniqueName } from '../support/services';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { parsePrometheusText, sampleValue, type Family } from '../support/prometheus-text';
import { waitFor } from '../support/waiting';

const TOKEN = 'metrics-test-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };

type Families = Map<string, Family>;

async function scrape(url: string, headers: Record<string, string> = AUTH): Promise<Families> {
  const res = await fetch(`${url}/metrics`, { headers });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${text}`);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(text);
}

const handlers: Record<string, HandleTask> = {
  worker: (_task, response) => {
    response.payload = { ok: true };
  },
  backup: () => {
    throw Object.assign(new Error('could not backup!'), { errnr: 32 });
  },
};

describe('behind the API tokens', () => {
  let stack: TestStack;
  let server: Awaited<ReturnType<typeof startTestServer>>;
  const agents: RunningAgent[] = [];
  let m1Metrics: AgentMetrics;

  beforeAll(async () => {
    stack = await createTestStack({
      set: [
        'task_types=worker,backup',
        `api.tokens=${TOKEN}`,
        'server.sweep_interval=200ms',
        'server.relay_interval=200ms',
      ],
    });
    server = await startTestServer(stack.config);
    m1Metrics = new AgentMetrics({
      running: () => agents[0]?.agent.runningTasks ?? 0,
      defaultMetrics: false,
    });
    agents.push(await startTestAgent(stack.config, 'm1', handlers, { metrics: m1Metrics }));
    agents.push(await startTestAgent(stack.config, 'm2', handlers));
  });
  afterAll(async () => {
    for (const agent of agents) await agent.close();
    await server?.close();
    await stack?.cleanup();
  });

  async function post(type: string, identifier: string): Promise<number> {
    const res = await fetch(`${server.url}/${type}`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify({ identifier, payload: {}, endpoints: ['m1', 'm2'] }),
    });
    return res.status;
  }

  async function statusOf(type: string, identifier: string): Promise<TaskStatus> {
    const res = await fetch(`${server.url}/${type}/${identifier}`, { headers: AUTH });
    const body = (await res.json()) as { task: { status: TaskStatus } };
    return body.task.status;
  }

  it('answers 401 without a token, and a scrape with one', async () => {
    const refused = await fetch(`${server.url}/metrics`);
    expect(refused.status).toBe(401);
    const wrong = await fetch(`${server.url}/metrics`, {
      headers: { authorization: 'Bearer not-the-token-at-all' },
    });
    expect(wrong.status).toBe(401);
    const families = await scrape(server.url);
    expect(sampleValue(families, 'tasker_database_up')).toBe(1);
    expect(families.get('tasker_outbox_depth')?.type).toBe('gauge');
    expect(families.get('tasker_http_request_duration_seconds')?.type).toBe('histogram');
  });

  it('moves its counters by what tasks did as they ran through the agents', async () => {
    // both agents said hello: the registry counts them online (a scrape keeps its figures 5 s)
    await waitFor(
      () => scrape(server.url),
      (families) => sampleValue(families, 'tasker_endpoints', { status: 'online' }) === 2,
      15_000,
      'two endpoints online',
    );
    const before = await scrape(server.url);
    const done = ['d1', 'd2', 'd3'];
    const failed = ['f1', 'f2'];
    for (const id of done) expect(await post('worker', id)).toBe(201);
    for (const id of failed) expect(await post('backup', id)).toBe(201);
    // a client's retry of a task it has: no new task
    expect(await post('worker', 'd1')).toBe(200);
    for (const [type, ids] of [
      ['worker', done],
      ['backup', failed],
    ] as const) {
      for (const id of ids) {
        await waitFor(() => statusOf(type, id), isTerminalTask, 20_000, `${type}/${id}`);
      }
    }
    const after = await scrape(server.url);
    const moved = (name: string, labels: Record<string, string> = {}) =>
      sampleValue(after, name, labels) - sampleValue(before, name, labels);

    expect(moved('tasker_tasks_created_total', { type: 'worker' })).toBe(3);
    expect(moved('tasker_tasks_created_total', { type: 'backup' })).toBe(2);
    expect(moved('tasker_tasks_finished_total', { type: 'worker', status: 'DONE' })).toBe(3);
    expect(moved('tasker_tasks_finished_total', { type: 'backup', status: 'FAILED' })).toBe(2);
    // every endpoint's response ended once, in its task's type
    expect(moved('tasker_responses_total', { type: 'worker', status: 'DONE' })).toBe(6);
    expect(moved('tasker_responses_total', { type: 'backup', status: 'FAILED' })).toBe(4);
    expect(moved('tasker_responses_total', { type: 'worker', status: 'FAILED' })).toBe(0);
    // each task published once by its request, and confirmed
    expect(
      moved('tasker_publish_confirm_seconds_count', { kind: 'task', outcome: 'confirmed' }),
    ).toBe(5);
    // each of the five waited for its write, its publish and its mark SENT, in that order; a
    // retry of a task already accepted waits for none of them
    for (const step of ['write', 'publish', 'mark']) {
      expect(moved('tasker_task_accept_step_seconds_count', { step })).toBe(5);
      expect(moved('tasker_task_accept_step_seconds_sum', { step })).toBeGreaterThan(0);
    }
    // every recorded event's age observed once; at least the five tasks' ten finished events
    const events =
      moved('tasker_recorder_events_total', { outcome: 'applied' }) +
      moved('tasker_recorder_events_total', { outcome: 'ignored' });
    expect(events).toBeGreaterThanOrEqual(10);
    expect(moved('tasker_recorder_lag_seconds_count')).toBe(events);
    expect(moved('tasker_recorder_batch_messages_count')).toBeGreaterThanOrEqual(1);
    // by route pattern, never the path: six POSTs, the GETs that polled
    const http = (method: string, route: string, status: string) =>
      moved('tasker_http_request_duration_seconds_count', { method, route, status });
    expect(http('POST', '/:type', '201')).toBe(5);
    expect(http('POST', '/:type', '200')).toBe(1);
    expect(http('GET', '/:type/:identifier', '200')).toBeGreaterThanOrEqual(5);
    const routes = new Set(
      after
        .get('tasker_http_request_duration_seconds')
        ?.samples.map((sample) => sample.labels.route),
    );
    expect([...routes].some((route) => route?.includes('d1'))).toBe(false);
    expect(routes).toContain('/metrics');
    // the outbox emptied: every publish confirmed
    expect(sampleValue(after, 'tasker_outbox_depth')).toBe(0);
    expect(sampleValue(after, 'tasker_outbox_oldest_age_seconds')).toBe(0);

    // the agent m1's own: each of its runs, by type and status; none left running, no retry
    const agent = parsePrometheusText(await m1Metrics.render());
    const runs = (type: string, status: string) =>
      sampleValue(agent, 'tasker_agent_handler_duration_seconds_count', { type, status });
    expect(runs('worker', 'DONE')).toBe(3);
    expect(runs('backup', 'FAILED')).toBe(2);
    expect(agent.get('tasker_agent_handler_duration_seconds')?.samples.length).toBeGreaterThan(0);
    expect(sampleValue(agent, 'tasker_agent_running')).toBe(0);
    expect(agent.get('tasker_agent_retries_total')?.type).toBe('counter');
    expect(sampleValue(agent, 'tasker_agent_retries_total', { type: 'worker' })).toBe(0);
  });

  it('counts a refused request under no route', async () => {
    const before = await scrape(server.url);
    expect((await fetch(`${server.url}/worker/d1`)).status).toBe(401);
    const after = await scrape(server.url);
    const labels = { method: 'GET', route: 'unmatched', status: '401' };
    expect(
      sampleValue(after, 'tasker_http_request_duration_seconds_count', labels) -
        sampleValue(before, 'tasker_http_request_duration_seconds_count', labels),
    ).toBe(1);
  });
});

describe('on a listener of its own', () => {
  let stack: TestStack;
  let server: Awaited<ReturnType<typeof startTestServer>>;

  beforeAll(async () => {
    stack = await createTestStack({
      set: ['task_types=worker', `api.tokens=${TOKEN}`, 'server.metrics_listen=127.0.0.1:0'],
    });
    server = await startTestServer(stack.config);
  });
  afterAll(async () => {
    await server?.close();
    await stack?.cleanup();
  });

  it('serves /metrics there without a token, and nothing else; not on the API', async () => {
    expect(server.metricsPort).toBeGreaterThan(0);
    expect(server.metricsPort).not.toBe(server.port);
    const metricsUrl = `http://127.0.0.1:${server.metricsPort}`;
    const families = await scrape(metricsUrl, {});
    expect(sampleValue(families, 'tasker_database_up')).toBe(1);
    expect((await fetch(`${metricsUrl}/worker`)).status).toBe(404);
    expect((await fetch(`${server.url}/metrics`, { headers: AUTH })).status).toBe(404);
    // the API's own requests are still timed, and show on the listener
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const after = await scrape(metricsUrl, {});
    expect(
      sampleValue(after, 'tasker_http_request_duration_seconds_count', {
        method: 'GET',
        route: '/healthz',
        status: '200',
      }),
    ).toBe(1);
  });
});

describe('while the database is away', () => {
  let stack: TestStack;
  let proxy: TcpProxy;
  let server: Awaited<ReturnType<typeof startTestServer>>;

  beforeAll(async () => {
    proxy = await startTcpProxy(3306);
    const dbName = uniqueName('tasker_t_');
    const port = new URL(MYSQL_ROOT).port || '3306';
    const through = MYSQL_ROOT.replace(`:${port}`, `:${proxy.port}`);
    stack = await createTestStack({
      dbName,
      databaseUrl: `${through}/${dbName}`,
      set: ['task_types=worker', 'database.acquire_timeout=500ms'],
    });
    server = await startTestServer(stack.config);
  });
  afterAll(async () => {
    proxy?.restore();
    await server?.close();
    await proxy?.close();
    await stack?.cleanup();
  });

  it('still answers, says so, and leaves out what only the database knows', async () => {
    proxy.cut();
    const down = await scrape(server.url, {});
    expect(sampleValue(down, 'tasker_database_up')).toBe(0);
    expect(down.has('tasker_outbox_depth')).toBe(false);
    expect(down.has('tasker_outbox_oldest_age_seconds')).toBe(false);
    expect(down.has('tasker_endpoints')).toBe(false);
    expect(down.get('tasker_tasks_created_total')?.type).toBe('counter');
    proxy.restore();
    // the failed read is kept a few seconds, then read again
    const up = await waitFor(
      () => scrape(server.url, {}),
      (families) => sampleValue(families, 'tasker_database_up') === 1,
      15_000,
      'the database to answer a scrape again',
    );
    expect(sampleValue(up, 'tasker_outbox_depth')).toBe(0);
    expect(sampleValue(up, 'tasker_endpoints', { status: 'online' })).toBe(0);
  });
});
