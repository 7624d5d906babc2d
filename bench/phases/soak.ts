/**
 * Phase 5: soak. Servers and agents run for months, and a leak of a few KB a task shows as heap
 * kept per task long before it shows in RSS. Each part runs N tasks after a warm-up; the heap
 * after a full garbage collection, before and after, gives the bytes kept per task.
 * - agentSoak: one real Agent with a no-op handler on the in-process broker (no network, no
 *   database: only the agent's own work). Also the tasks/s one agent manages on its own.
 * - pipelineSoak: the real server (API, relay, recorder, sweeper) on MariaDB and one Agent, all
 *   in this process, tasks POSTed over HTTP: on the in-process broker that `tasker up` uses, and
 *   on RabbitMQ, each with its own amqplib connection as in a deployment.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Agent, inlineRunner, type HandleTask, type HandlerRunner } from '../../src/agent';
import {
  createBroker,
  MemoryBroker,
  type Delivery,
  type Subscription,
  type TaskBroker,
} from '../../src/broker';
import { createAgent, startHandlerRunner } from '../../src/cli/agent-command';
import { loadConfig } from '../../src/config';
import { WIRE_VERSION, type TaskMessage } from '../../src/domain';
import { silentLogger } from '../../src/log';
import { startServer, type ServerHandle } from '../../src/cli/server-process';
import { createDb, migrateLatest } from '../../src/store';
import {
  AMQP_URL,
  HANDLERS_DIR,
  createDatabase,
  dbName,
  dropDatabase,
  mysqlUrl,
  prefixFor,
  removeScratchDir,
  scratchDir,
} from '../lib/run-resources';
import { keepAliveAgent, request } from '../lib/http-load';
import { sleep } from '../../test/support/waiting';
import { TYPE as STACK_TYPE } from '../lib/phase-stack';
import { rate } from '../lib/stats';

const TYPE = 'noop';
const ENDPOINT = 'soak1';
/** tasks published but not yet finished, at most */
const OUTSTANDING = 500;

export interface SoakPhaseOptions {
  warmupTasks: number;
  tasks: number;
  concurrency: number;
  prefetch: number;
  timeoutMs: number;
  progress: (line: string) => void;
}

export interface SoakPhase {
  tasks: number;
  tasks_per_s: number;
  heap_before_bytes: number;
  heap_after_bytes: number;
  /** heap and Buffers in use (heapUsed + external) after a full GC: (after − before) / tasks */
  heap_bytes_per_task: number;
}

/** JavaScript heap in use plus memory outside it held by JavaScript objects (Buffers) */
function retained(): number {
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

function fullGc(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
}

/**
 * Warm up, then run `options.tasks` more; `runTo(total)` runs until `total` tasks in all are
 * finished and returns how long that took.
 */
async function measure(
  options: { warmupTasks: number; tasks: number; progress: (line: string) => void },
  what: string,
  runTo: (total: number) => Promise<number>,
): Promise<SoakPhase> {
  options.progress(`soak: warm-up, ${options.warmupTasks} tasks`);
  await runTo(options.warmupTasks);
  fullGc();
  const before = retained();
  options.progress(`soak: ${options.tasks} tasks ${what}`);
  const elapsed = await runTo(options.warmupTasks + options.tasks);
  fullGc();
  const after = retained();
  return {
    tasks: options.tasks,
    tasks_per_s: rate(options.tasks, elapsed),
    heap_before_bytes: before,
    heap_after_bytes: after,
    heap_bytes_per_task: Math.round((after - before) / options.tasks),
  };
}

export function taskMessage(id: number): TaskMessage {
  const now = Date.now();
  return {
    v: WIRE_VERSION,
    id,
    identifier: `soak-${id}`,
    type: TYPE,
    payload: { n: id },
    endpoints: [ENDPOINT],
    created_at: new Date(now).toISOString(),
    deliver_by: new Date(now + 600_000).toISOString(),
    execution_timeout_ms: 30_000,
    max_deliveries: 5,
    round: 1,
  };
}

/** One real Agent running `runner` on an in-process broker, counting the finished events it sends. */
export interface LoneAgent {
  broker: MemoryBroker;
  /** finished events received so far */
  finished(): number;
  close(): Promise<void>;
}

export async function startLoneAgent(
  runner: HandlerRunner,
  options: { concurrency: number; prefetch: number },
): Promise<LoneAgent> {
  const stateDir = scratchDir('tasker-soak-');
  const broker = new MemoryBroker({ prefix: 'soak', log: silentLogger });
  let finished = 0;
  const agent = new Agent({
    endpoint: ENDPOINT,
    types: [TYPE],
    runner,
    broker,
    concurrency: options.concurrency,
    prefetch: options.prefetch,
    reportDelayMs: 1000,
    stateDir,
    log: silentLogger,
  });
  let results: Subscription | null = null;
  const close = async (): Promise<void> => {
    await agent.close().catch(() => undefined);
    await results?.close().catch(() => undefined);
    await broker.close().catch(() => undefined);
    removeScratchDir(stateDir);
  };
  try {
    await broker.start();
    results = await broker.consumeResults(
      { prefetch: 2000, batchSize: 500, lingerMs: 0 },
      async (deliveries: Delivery[]) => {
        for (const delivery of deliveries) {
          const parsed = JSON.parse(delivery.content.toString()) as unknown;
          const events = (Array.isArray(parsed) ? parsed : [parsed]) as Array<{ event?: unknown }>;
          finished += events.filter((event) => event.event === 'finished').length;
          delivery.ack();
        }
      },
    );
    await agent.start();
  } catch (err) {
    await close();
    throw err;
  }
  return { broker, finished: () => finished, close };
}

export async function agentSoak(options: SoakPhaseOptions): Promise<SoakPhase> {
  const { progress } = options;
  const noop: HandleTask = (_task, response) => response;
  const lone = await startLoneAgent(inlineRunner(new Map([[TYPE, noop]])), options);
  const { broker } = lone;
  try {
    let published = 0;
    const runTo = async (total: number): Promise<number> => {
      const started = performance.now();
      const deadline = Date.now() + options.timeoutMs;
      let nextReport = started + 2000;
      while (lone.finished() < total) {
        if (Date.now() > deadline) {
          throw new Error(
            `soak: ${lone.finished()} of ${total} tasks finished in ${options.timeoutMs} ms`,
          );
        }
        while (published < total && published - lone.finished() < OUTSTANDING) {
          published += 1;
          await broker.publishTask(taskMessage(published));
        }
        await sleep(published < total ? 0 : 5);
        if (performance.now() >= nextReport) {
          nextReport += 2000;
          progress(`  soak: ${lone.finished()} tasks finished`);
        }
      }
      return performance.now() - started;
    };
    return await measure(options, 'through one agent', runTo);
  } finally {
    await lone.close();
  }
}

export interface PipelineSoakOptions {
  warmupTasks: number;
  tasks: number;
  /** POSTs in flight */
  concurrency: number;
  timeoutMs: number;
  /** the in-process broker, or RabbitMQ through amqplib */
  broker: 'memory' | 'rabbitmq';
  progress: (line: string) => void;
}

/** The server and an agent in this process, MariaDB, either broker; see the top. */
export async function pipelineSoak(options: PipelineSoakOptions): Promise<SoakPhase> {
  const part = options.broker === 'memory' ? 'soak' : 'soakmq';
  const database = dbName(part);
  const prefix = prefixFor(part);
  const stateDir = scratchDir('tasker-soak-');
  const memory =
    options.broker === 'memory' ? new MemoryBroker({ prefix, log: silentLogger }) : null;
  let broker: TaskBroker | null = null;
  const http = keepAliveAgent(options.concurrency);
  let agent: Agent | null = null;
  let runner: HandlerRunner | null = null;
  let server: ServerHandle | null = null;
  try {
    await createDatabase(database);
    const config = loadConfig({
      mode: 'test',
      env: {},
      flags: {
        'database-url': mysqlUrl(database),
        ...(memory === null ? { 'broker-url': AMQP_URL } : {}),
        prefix,
        types: STACK_TYPE,
        handlers: HANDLERS_DIR,
        port: '0',
        'log-level': 'error',
        set: [
          `agent.state_dir=${stateDir}`,
          `task_types.${STACK_TYPE}.wait_for_endpoints_timeout=10m`,
        ].join('\n'),
      },
    });
    const migrations = createDb(config.database, { log: silentLogger });
    try {
      await migrateLatest(migrations);
    } finally {
      await migrations.destroy();
    }
    // the server first: on RabbitMQ it declares the exchanges the agent binds to
    let agentBroker: TaskBroker;
    if (memory === null) {
      server = await startServer(config, silentLogger);
      const amqp = createBroker(config.broker, {
        connectionName: 'tasker-agent soak',
        log: silentLogger,
      });
      broker = agentBroker = amqp;
      await amqp.start();
    } else {
      broker = agentBroker = memory;
      await memory.start();
      server = await startServer(config, silentLogger, { broker: memory });
    }
    runner = await startHandlerRunner(config, silentLogger);
    agent = createAgent(config, ENDPOINT, runner, agentBroker, silentLogger);
    await agent.start();
    const db = server.db;
    const url = `http://127.0.0.1:${server.port}/${STACK_TYPE}`;
    let posted = 0;
    const done = async (): Promise<number> => {
      const [row] = (await db('tasks').where({ status: 'DONE' }).count({ n: '*' })) as Array<{
        n: number | string;
      }>;
      return Number(row?.n ?? 0);
    };
    const runTo = async (total: number): Promise<number> => {
      const started = performance.now();
      const deadline = Date.now() + options.timeoutMs;
      const worker = async (): Promise<void> => {
        while (posted < total) {
          posted += 1;
          const body = JSON.stringify({
            identifier: `soak-${posted}`,
            payload: { n: posted },
            endpoints: [ENDPOINT],
          });
          const res = await request(http, url, 'POST', body);
          if (res.status !== 201) {
            throw new Error(`soak POST: ${res.status} ${res.body.slice(0, 200)}`);
          }
        }
      };
      await Promise.all(Array.from({ length: options.concurrency }, () => worker()));
      let finished = await done();
      while (finished < total) {
        if (Date.now() > deadline) {
          throw new Error(`soak: ${finished} of ${total} tasks DONE in ${options.timeoutMs} ms`);
        }
        await sleep(100);
        finished = await done();
      }
      return performance.now() - started;
    };
    return await measure(
      options,
      `POSTed to the server and run by the agent, on ${options.broker}`,
      runTo,
    );
  } finally {
    http.destroy();
    await agent?.close().catch(() => undefined);
    await runner?.close();
    await server?.close().catch(() => undefined);
    await broker?.close().catch(() => undefined);
    await dropDatabase(database).catch(() => undefined);
    removeScratchDir(stateDir);
  }
}
