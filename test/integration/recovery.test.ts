/**
 * Outages between tasker and its dependencies, made with a TCP proxy in front of RabbitMQ and
 * MariaDB: nothing accepted is lost, requests fail fast while a dependency is down, and
 * everything recovers without a restart.
 */
import { AMQP_URL, MYSQL_ROOT, uniqueName } from '../support/services';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';
import { startTestAgent, startTestServer, type RunningAgent } from '../support/in-process';
import { getTask, postTask, waitForTerminal } from '../support/api-client';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { handle_task as worker } from '../../handlers/worker';

jest.setTimeout(60_000);

let stack: TestStack;
let brokerProxy: TcpProxy;
let agentProxy: TcpProxy;
let dbProxy: TcpProxy;
let server: Awaited<ReturnType<typeof startTestServer>>;
let agent: RunningAgent;

beforeAll(async () => {
  brokerProxy = await startTcpProxy(5672);
  agentProxy = await startTcpProxy(5672);
  dbProxy = await startTcpProxy(3306);
  const dbName = uniqueName('tasker_t_');
  const brokerUrl = AMQP_URL.replace(':5672', `:${brokerProxy.port}`);
  stack = await createTestStack({
    brokerUrl,
    databaseUrl: `${MYSQL_ROOT.replace(':3306', `:${dbProxy.port}`)}/${dbName}`,
    dbName,
    set: [
      'server.relay_interval=200ms',
      'broker.reconnect_max_delay=500ms',
      // long enough for SENT on a loaded machine; a cut broker answers CREATED at once anyway
      'api.publish_wait=2s',
      'task_types.worker.wait_for_endpoints_timeout=30s',
    ],
  });
  server = await startTestServer(stack.config);
  agent = await startTestAgent(
    stack.config,
    'r1',
    { worker },
    {
      brokerUrl: AMQP_URL.replace(':5672', `:${agentProxy.port}`),
    },
  );
});

afterAll(async () => {
  await agent?.close();
  await server?.close();
  await stack?.cleanup();
  for (const proxy of [brokerProxy, agentProxy, dbProxy]) await proxy?.close();
});

it('accepts tasks while the broker is down (CREATED) and publishes them once it is back', async () => {
  brokerProxy.cut();
  await waitFor(
    async () => server.broker.isConnected,
    (up) => !up,
    5000,
    'server to notice',
  );
  const posted = await postTask(server.url, 'worker', {
    identifier: 'outage-1',
    payload: { seconds: 0 },
    endpoints: ['r1'],
  });
  expect(posted.status).toBe(201);
  expect(posted.body.status).toBe('CREATED');
  const outbox = await stack.db('outbox').where({ task_id: posted.body.id as number });
  expect(outbox).toHaveLength(1);

  brokerProxy.restore();
  const done = await waitForTerminal(server.url, 'worker', 'outage-1', 20_000);
  expect(done.task.status).toBe('DONE');
  expect(done.task.sent_at).not.toBeNull();
  expect(await stack.db('outbox').where({ task_id: posted.body.id as number })).toHaveLength(0);
});

it('keeps an agent working across a broker connection loss', async () => {
  agentProxy.cut();
  const posted = await postTask(server.url, 'worker', {
    identifier: 'agent-outage-1',
    payload: { seconds: 0 },
    endpoints: ['r1'],
  });
  expect(posted.body.status).toBe('SENT');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  expect((await getTask(server.url, 'worker', 'agent-outage-1')).taskResponseList[0]?.status).toBe(
    'PENDING',
  );
  agentProxy.restore();
  const done = await waitForTerminal(server.url, 'worker', 'agent-outage-1', 20_000);
  expect(done.taskResponseList[0]).toMatchObject({ status: 'DONE', attempt: 1 });
});

it('answers 503 quickly while the database is down, and recovers without a restart', async () => {
  dbProxy.cut();
  const started = Date.now();
  const res = await postTask(server.url, 'worker', { identifier: 'db-down-1', endpoints: ['r1'] });
  const elapsed = Date.now() - started;
  expect(res.status).toBe(503);
  expect((res.body as { error: { code: string } }).error.code).toBe('database_unavailable');
  expect(elapsed).toBeLessThan(5000);
  const get = await fetch(`${server.url}/worker/anything`);
  expect(get.status).toBe(503);
  expect((await fetch(`${server.url}/readyz`)).status).toBe(503);

  dbProxy.restore();
  const posted = await waitFor(
    () =>
      postTask(server.url, 'worker', {
        identifier: 'db-back-1',
        payload: { seconds: 0 },
        endpoints: ['r1'],
      }),
    (r) => r.status === 201,
    15_000,
    'POST to succeed again',
  );
  expect(posted.body.status).toBe('SENT');
  expect((await waitForTerminal(server.url, 'worker', 'db-back-1')).task.status).toBe('DONE');
  // the task refused while the database was down was not written
  expect(await stack.db('tasks').where({ identifier: 'db-down-1' })).toHaveLength(0);
});

it('records results that arrived while the database was down once it is back', async () => {
  const posted = await postTask(server.url, 'worker', {
    identifier: 'db-late-1',
    payload: { seconds: 3 },
    endpoints: ['r1'],
  });
  expect(posted.status).toBe(201);
  await waitFor(
    () => getTask(server.url, 'worker', 'db-late-1'),
    (t) => t.taskResponseList[0]?.status === 'RUNNING',
    5000,
    'running',
  );
  // the handler finishes while the database is away
  dbProxy.cut();
  await new Promise((resolve) => setTimeout(resolve, 4000));
  dbProxy.restore();
  const done = await waitForTerminal(server.url, 'worker', 'db-late-1', 20_000);
  expect(done.taskResponseList[0]).toMatchObject({ status: 'DONE', attempt: 1 });
  expect(
    await stack.db('task_responses').where({ task_id: posted.body.id as number }),
  ).toHaveLength(1);
});
