/**
 * Least-privilege broker users (scripts/broker-users.sh) and the recorder's check of the
 * broker-validated user_id: an agent's credentials can run its own tasks and nothing more.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as amqp from 'amqplib';
import { brokerNames } from '../../src/broker';
import { WIRE_VERSION, type ResultEvent } from '../../src/domain';
import { handle_task as worker } from '../../handlers/worker';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';
import { ROOT } from '../support/child-processes';
import { startTestAgent, startTestServer, type RunningAgent } from '../support/in-process';
import { getTask, postTask, waitForTerminal } from '../support/api-client';
import { heartbeat } from '../support/messages';

const run = promisify(execFile);
jest.setTimeout(120_000);

const password = 'agent-password-123';
let stack: TestStack;
let server: Awaited<ReturnType<typeof startTestServer>>;
let agent: RunningAgent;
let endpoint: string;
let other: string;

async function users(...args: string[]): Promise<void> {
  await run('bash', [join(ROOT, 'scripts', 'broker-users.sh'), '--prefix', stack.prefix, ...args]);
}

/** The same, with the password on standard input (kept out of the process list). */
function usersWithStdin(input: string, ...args: string[]): Promise<void> {
  const script = join(ROOT, 'scripts', 'broker-users.sh');
  return new Promise((resolve, reject) => {
    const child = execFile(
      'bash',
      [script, '--prefix', stack.prefix, ...args],
      (err, _stdout, stderr) => (err === null ? resolve() : reject(Object.assign(err, { stderr }))),
    );
    child.stdin?.end(input);
  });
}

const serverUser = (): string => `tasker-server-${stack.prefix}`;
const agentUrl = (name: string): string => `amqp://tasker-agent-${name}:${password}@127.0.0.1:5672`;

/** Run `action` on a fresh channel and return the error that closed it, or null. */
async function refused(
  url: string,
  action: (ch: amqp.ConfirmChannel) => Promise<unknown>,
): Promise<Error | null> {
  const connection = await amqp.connect(url);
  try {
    const ch = await connection.createConfirmChannel();
    let closedWith: Error | null = null;
    ch.on('error', (err: Error) => (closedWith = err));
    try {
      await action(ch);
      await ch.waitForConfirms();
      await ch.close();
      return null;
    } catch (err) {
      // a refused publish closes the channel; the broker's reason arrives as its 'error'
      return closedWith ?? (err as Error);
    }
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/**
 * Publish `message` to the results exchange as the agent of `endpoint`, under its own broker user,
 * and wait until the recorder dead-lettered it.
 */
async function deadLetteredFromOwnUser(message: unknown): Promise<void> {
  const deadQueue = brokerNames.deadQueue(stack.prefix);
  const admin = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
  try {
    const adminCh = await admin.createChannel();
    const before = (await adminCh.checkQueue(deadQueue)).messageCount;
    const err = await refused(agentUrl(endpoint), async (ch) => {
      ch.publish(
        brokerNames.resultsExchange(stack.prefix),
        '',
        Buffer.from(JSON.stringify(message)),
        {
          userId: `tasker-agent-${endpoint}`,
        },
      );
    });
    expect(err).toBeNull();
    await waitFor(
      async () => (await adminCh.checkQueue(deadQueue)).messageCount,
      (n) => n > before,
      5000,
      'dead letter',
    );
  } finally {
    await admin.close();
  }
}

beforeAll(async () => {
  stack = await createTestStack({ set: ['server.authenticate_agents=true'] });
  endpoint = `sec-${stack.prefix}`;
  other = `other-${stack.prefix}`;
  // each runs rabbitmqctl four times, a few seconds apiece on a busy machine
  await Promise.all([
    usersWithStdin(`${password}\n`, '--types', 'worker', 'agent', endpoint),
    users('agent', other, password),
    users('server', serverUser(), password),
  ]);
  // the server as provision.sh runs it: a user whose rights end at <prefix>.*
  server = await startTestServer({
    ...stack.config,
    broker: {
      ...stack.config.broker,
      url: `amqp://${serverUser()}:${password}@127.0.0.1:5672`,
    },
  });
  agent = await startTestAgent(
    stack.config,
    endpoint,
    { worker },
    { brokerUrl: agentUrl(endpoint) },
  );
  // the other endpoint's queue exists (its agent ran once)
  await (
    await startTestAgent(stack.config, other, { worker }, { brokerUrl: agentUrl(other) })
  ).close();
});

afterAll(async () => {
  await agent?.close();
  await server?.close();
  await stack?.cleanup();
  for (const user of [`tasker-agent-${endpoint}`, `tasker-agent-${other}`, serverUser()])
    await users('delete', user).catch(() => undefined);
});

it('runs the server under a user with rights on <prefix>.* only, watching change events', async () => {
  // every queue the server declares is named under the prefix, its change-event queue too
  const { stdout } = await run('rabbitmqctl', ['-q', 'list_queues', 'name', '--no-table-headers']);
  const queues = stdout.split('\n').filter((name) => name.startsWith(`${stack.prefix}.events.`));
  expect(queues).toHaveLength(1);
});

it('runs tasks with an agent using its own least-privilege user', async () => {
  await postTask(server.url, 'worker', {
    identifier: 'sec-1',
    payload: { seconds: 0 },
    endpoints: [endpoint],
  });
  const done = await waitForTerminal(server.url, 'worker', 'sec-1');
  expect(done.task.status).toBe('DONE');
});

it("refuses an agent's credentials to publish a task", async () => {
  const err = await refused(agentUrl(endpoint), async (ch) => {
    ch.publish(brokerNames.taskExchange(stack.prefix, 'worker'), '', Buffer.from('{}'));
  });
  expect(String(err)).toMatch(/ACCESS_REFUSED|403/);
});

it("refuses an agent's credentials to read another endpoint's queue", async () => {
  const err = await refused(agentUrl(endpoint), (ch) =>
    ch.consume(brokerNames.endpointQueue(stack.prefix, 'worker', other), () => undefined),
  );
  expect(String(err)).toMatch(/ACCESS_REFUSED|403/);
});

it("refuses an agent's credentials to read results or delete a task exchange", async () => {
  expect(
    String(
      await refused(agentUrl(endpoint), (ch) =>
        ch.consume(brokerNames.resultsQueue(stack.prefix), () => undefined),
      ),
    ),
  ).toMatch(/403|ACCESS_REFUSED/);
  expect(
    String(
      await refused(agentUrl(endpoint), (ch) =>
        ch.deleteExchange(brokerNames.taskExchange(stack.prefix, 'worker')),
      ),
    ),
  ).toMatch(/403|ACCESS_REFUSED/);
});

it('limits an agent given --types to its own queues of those types', async () => {
  // the queue arguments tasker uses, so that only the permission can refuse it
  const declare = (type: string) => (ch: amqp.ConfirmChannel) =>
    ch.assertQueue(brokerNames.endpointQueue(stack.prefix, type, endpoint), {
      durable: true,
      arguments: { 'x-dead-letter-exchange': brokerNames.deadExchange(stack.prefix) },
    });
  expect(String(await refused(agentUrl(endpoint), declare('made-up')))).toMatch(
    /ACCESS_REFUSED|403/,
  );
  // without --types, any type name is its own queue's
  expect(
    await refused(agentUrl(other), (ch) =>
      ch.assertQueue(brokerNames.endpointQueue(stack.prefix, 'made-up', other), { durable: true }),
    ),
  ).toBeNull();
});

it('broker-users.sh refuses --types that are not task type names, with exit 2', async () => {
  const err = (await users('--types', 'worker,Bad Type', 'agent', 'x').catch((e: unknown) => e)) as
    { code?: number; stderr?: string } | undefined;
  expect(err?.code).toBe(2);
});

describe('reporting for another endpoint', () => {
  let taskId: number;
  beforeAll(async () => {
    const posted = await postTask(server.url, 'worker', {
      identifier: 'sec-2',
      payload: { seconds: 30 },
      endpoints: [other],
    });
    taskId = posted.body.id as number;
  });
  const forged = (): ResultEvent => ({
    v: WIRE_VERSION,
    task_id: taskId,
    type: 'worker',
    endpoint: other,
    event: 'finished',
    status: 'DONE',
    errnr: 0,
    errmsg: null,
    payload: { forged: true },
    progress: null,
    at: new Date().toISOString(),
    attempt: 1,
    agent: null,
    round: null,
  });

  it('is refused by the broker when the user_id property is forged', async () => {
    const err = await refused(agentUrl(endpoint), async (ch) => {
      ch.publish(
        brokerNames.resultsExchange(stack.prefix),
        '',
        Buffer.from(JSON.stringify(forged())),
        {
          userId: `tasker-agent-${other}`,
        },
      );
    });
    expect(String(err)).toMatch(/PRECONDITION_FAILED|406/);
  });

  it('is dead-lettered by the recorder when published under its own user', async () => {
    await deadLetteredFromOwnUser(forged());
    const task = await getTask(server.url, 'worker', 'sec-2');
    expect(task.taskResponseList).toHaveLength(1);
    expect(task.taskResponseList[0]).toMatchObject({
      endpoint: other,
      status: 'PENDING',
      payload: null,
    });
  });
});

describe('heartbeats', () => {
  it('register an agent under its own broker user', async () => {
    const found = await waitFor(
      async () =>
        (await (await fetch(`${server.url}/endpoints/${endpoint}`)).json()) as {
          registration?: { status?: string };
        },
      (body) => body.registration?.status === 'online',
      10_000,
      `${endpoint} registered`,
    );
    expect(found).toMatchObject({ registration: { types: ['worker'] } });
  });

  it('for another endpoint, under its own user, are dead-lettered and register nothing', async () => {
    const forged = heartbeat(`ghost-${stack.prefix}`);
    await deadLetteredFromOwnUser(forged);
    expect((await fetch(`${server.url}/endpoints/${forged.endpoint}`)).status).toBe(404);
  });
});

it.each([
  ['no password', '', /no password/],
  ['a password with white space at an end', ' padded \n', /white space/],
])(
  'broker-users.sh refuses %s with exit 2, naming what is wrong',
  async (_what, input, message) => {
    const name = `nopw-${stack.prefix}`;
    const err = (await usersWithStdin(input, 'agent', name).catch((e: unknown) => e)) as
      { code?: number; stderr?: string } | undefined;
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(message);
    const { stdout } = await run('rabbitmqctl', ['-q', 'list_users', '--no-table-headers']);
    expect(stdout).not.toContain(`tasker-agent-${name}`);
  },
);
