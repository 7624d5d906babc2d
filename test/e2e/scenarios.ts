/**
 * The end-to-end walk-through, written once and run on both stacks: MariaDB and RabbitMQ with
 * real `tasker server` and `tasker agent` processes (walkthrough.test.ts), and the embedded mode,
 * `tasker up` with SQLite and the in-process broker (embedded.test.ts). Both are driven with the
 * original README's curl commands, unchanged but for the port. A scenario that makes sense on one
 * stack only says which, and why. Scenarios run in the order of the table, on one stack that
 * lives through all of them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ORIGINAL_IDENTIFIER, type CurlApi } from '../support/curl';
import { childEnv, runCli, type Child } from '../support/child-processes';
import { MYSQL_ROOT, uniqueName } from '../support/services';
import type { TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';
import { FLEET_SCENARIOS } from './fleet-scenarios';
import { OPERATE_SCENARIOS } from './operate-scenarios';
import { SCHEDULE_SCENARIOS } from './schedule-scenarios';
import { TIME_SCENARIOS } from './time-scenarios';

/** What every scenario may use. */
export interface E2eStack {
  /** the original tasker's README curl commands, against this stack's port */
  readonly api: CurlApi;
  /** the command that serves the API on this stack, as an operator types it, without flags */
  readonly serveCommand: readonly string[];
  /** where its processes run: the repository, or an empty directory like a fresh checkout */
  readonly cwd: string;
  /** the process serving the API: `tasker server`, or `tasker up` */
  serving(): Child;
  /** start the serving process again on the same port, once it stopped; it migrates first */
  restartServing(): Promise<void>;
}

/** MariaDB, RabbitMQ, and every part of tasker a process of its own. */
export interface ProcessStack extends E2eStack {
  readonly kind: 'mariadb-rabbitmq';
  /** the database and broker prefix of this test file */
  readonly test: TestStack;
  /** the running agent process of `endpoint` */
  agent(endpoint: string): Child;
  /** `tasker agent` arguments for `endpoint` on this stack: its flags, task types and handlers */
  agentArgs(endpoint: string): string[];
  /**
   * start another agent process (stopped with the stack), or start again one that stopped, and
   * wait until it consumes
   */
  startAgent(endpoint: string, extra?: string[]): Promise<Child>;
}

/** `tasker up`: SQLite and the in-process broker, the agents inside the server's process. */
export interface EmbeddedStack extends E2eStack {
  readonly kind: 'embedded';
}

/** A scenario for one stack only; `because` says why it does not run on the other. */
interface OnlyOn<Kind, Stack> {
  name: string;
  on: Kind;
  because: string;
  run(stack: Stack): Promise<void>;
}

type Scenario =
  | { name: string; on: 'both'; run(stack: E2eStack): Promise<void> }
  | OnlyOn<'mariadb-rabbitmq', ProcessStack>
  | OnlyOn<'embedded', EmbeddedStack>;

/** A scenario kept in a file of its own: on both stacks, or on processes only for a reason. */
export interface ScenarioEntry {
  name: string;
  /** when set, the scenario runs only on the stack of MariaDB and RabbitMQ, for this reason */
  processesOnly?: string;
  run(stack: E2eStack): Promise<void>;
}

function fromEntries(entries: readonly ScenarioEntry[]): Scenario[] {
  return entries.map((entry) =>
    entry.processesOnly === undefined
      ? { name: entry.name, on: 'both', run: entry.run }
      : { name: entry.name, on: 'mariadb-rabbitmq', because: entry.processesOnly, run: entry.run },
  );
}

const ORIGINAL_RESULT = { yiya: 'yippie', yeah: 1234123 };

const SCENARIOS: Scenario[] = [
  {
    name: 'says at start which storage and broker it uses, and creates the SQLite file',
    on: 'embedded',
    because: 'only `tasker up` prints this summary, and only the embedded stack has a file',
    run: async (stack) => {
      const output = stack.serving().output();
      const file = join(stack.cwd, 'var', 'tasker.sqlite3');
      expect(output).toContain(`storage: SQLite file ${file}`);
      expect(output).toContain(
        'broker:  in-process (embedded single-machine mode, not for production)',
      );
      expect(output).toContain('agents:  console1, console2 (task types worker, backup)');
      expect(existsSync(file)).toBe(true);
    },
  },
  {
    name: 'answers the original curl POST with the task, status SENT',
    on: 'both',
    run: async ({ api }) => {
      const created = await api.postTestdata('worker');
      expect(created).toMatchObject({
        status: 'SENT',
        endpoints: ['console1', 'console2'],
        identifier: ORIGINAL_IDENTIFIER,
        type: 'worker',
        payload: { foo: 'bar' },
      });
      expect(typeof created.id).toBe('number');
      expect(typeof created.start_time).toBe('string');
    },
  },
  {
    name: 'answers the original curl GET with DONE and both endpoints responses once they finished',
    on: 'both',
    run: async ({ api }) => {
      const done = await api.terminal('worker', ORIGINAL_IDENTIFIER);
      expect(done.task.status).toBe('DONE');
      expect(done.taskResponseList.map((r) => [r.endpoint, r.status, r.payload])).toEqual([
        ['console1', 'DONE', ORIGINAL_RESULT],
        ['console2', 'DONE', ORIGINAL_RESULT],
      ]);
      for (const r of done.taskResponseList) {
        expect(r).toMatchObject({
          status: 'DONE',
          errnr: 0,
          errmsg: null,
          payload: ORIGINAL_RESULT,
        });
        expect(r.agent?.pid).toEqual(expect.any(Number));
      }
    },
  },
  {
    name: 'reports the backup handler failure per endpoint and the task FAILED',
    on: 'both',
    run: async ({ api }) => {
      await api.post('backup', { identifier: 'b1', endpoints: ['console1', 'console2'] });
      const done = await api.terminal('backup', 'b1');
      expect(done.task.status).toBe('FAILED');
      expect(done.taskResponseList.map((r) => [r.status, r.errnr, r.errmsg])).toEqual([
        ['FAILED', 32, 'could not backup!'],
        ['FAILED', 32, 'could not backup!'],
      ]);
    },
  },
  {
    name: 'marks an endpoint without an agent UNDELIVERED and the task INCOMPLETE',
    on: 'both',
    run: async ({ api }) => {
      await api.post('worker', {
        identifier: 'i1',
        payload: { seconds: 0 },
        endpoints: ['console1', 'console3'],
      });
      const done = await api.terminal('worker', 'i1');
      expect(done.task.status).toBe('INCOMPLETE');
      expect(Object.fromEntries(done.taskResponseList.map((r) => [r.endpoint, r.status]))).toEqual({
        console1: 'DONE',
        console3: 'UNDELIVERED',
      });
    },
  },
  {
    name: 'runs a plain .js handler dropped into the handlers directory',
    on: 'mariadb-rabbitmq',
    because: 'the embedded stack runs `tasker up` as a fresh checkout does: shipped handlers only',
    run: async ({ api }) => {
      await api.post('hello', {
        identifier: 'h1',
        payload: { name: 'world' },
        endpoints: ['console2'],
      });
      const done = await api.terminal('hello', 'h1');
      expect(done.task.status).toBe('DONE');
      expect(done.taskResponseList[0]?.payload).toEqual({
        greeting: 'hello world',
        endpoint: 'console2',
      });
    },
  },
  // operating a broadcast: lists, waits, streams, cancels, retries, waves, thresholds
  ...fromEntries(OPERATE_SCENARIOS),
  // knowing the fleet: the registry, its API, selectors
  ...fromEntries(FLEET_SCENARIOS),
  // time and order: delayed tasks, dependencies, schedules
  ...fromEntries(TIME_SCENARIOS),
  ...fromEntries(SCHEDULE_SCENARIOS),
  {
    name: 'drains and exits 0 on SIGTERM, and a restart keeps every task and takes new ones',
    on: 'both',
    run: async (stack) => {
      const started = Date.now();
      expect(await stack.serving().stop('SIGTERM')).toBe(0);
      expect(Date.now() - started).toBeLessThan(10_000);
      await stack.restartServing();
      expect(stack.serving().output()).toContain('schema is up to date');
      const again = await stack.api.get('worker', ORIGINAL_IDENTIFIER);
      expect(again.task.status).toBe('DONE');
      expect(again.taskResponseList).toHaveLength(2);
      // no endpoints named: a broadcast to every agent of the type
      await stack.api.post('worker', { identifier: 'after-restart', payload: { seconds: 0 } });
      const broadcast = await stack.api.terminal('worker', 'after-restart');
      expect(broadcast.task.status).toBe('DONE');
      expect(broadcast.taskResponseList.map((r) => r.endpoint).sort()).toEqual([
        'console1',
        'console2',
      ]);
    },
  },
  {
    name: 'lets an agent finish its running task on SIGTERM before it exits',
    on: 'mariadb-rabbitmq',
    because: 'only there is an agent a process of its own',
    run: async (stack) => {
      await stack.api.post('worker', {
        identifier: 'drain-1',
        payload: { seconds: 5 },
        endpoints: ['console1'],
      });
      await waitFor(
        () => stack.api.get('worker', 'drain-1'),
        (t) => t.taskResponseList[0]?.status === 'RUNNING',
        5000,
        'drain-1 running',
      );
      expect(await stack.agent('console1').stop('SIGTERM')).toBe(0);
      const done = await stack.api.terminal('worker', 'drain-1');
      expect(done.taskResponseList[0]).toMatchObject({ status: 'DONE', attempt: 1 });
    },
  },
  {
    name: 'installs, lists and rolls back the schema with tasker migrate',
    on: 'mariadb-rabbitmq',
    because: 'it installs into a scratch database of its own on the MariaDB server',
    run: async (stack) => {
      const dbName = uniqueName('tasker_m_');
      const flags = ['--mode', 'test', '--database-url', `${MYSQL_ROOT}/${dbName}`];
      try {
        const install = await runCli(['migrate', ...flags]);
        expect(install.code).toBe(0);
        expect(install.output).toMatch(/applied: .*create_tasks/);
        const status = await runCli(['migrate', '--status', ...flags]);
        expect(JSON.parse(status.output)).toMatchObject({ pending: [] });
        const rollback = await runCli(['migrate', '--rollback', '--all', ...flags]);
        expect(rollback.output).toMatch(/rolled back: .*create_outbox/);
        const after = await runCli(['migrate', '--status', ...flags]);
        expect(JSON.parse(after.output)).toMatchObject({ applied: [] });
      } finally {
        await stack.test.db.raw(`DROP DATABASE IF EXISTS \`${dbName}\``);
      }
    },
  },
  {
    name: 'refuses to start with a bad config value and names the key',
    on: 'both',
    run: async (stack) => {
      const result = await runCli(
        [...stack.serveCommand, '--port', 'eighty'],
        childEnv(),
        stack.cwd,
      );
      expect(result.code).toBe(1);
      expect(result.output).toMatch(/api\.port/);
    },
  },
  {
    name: 'refuses a second agent process for an endpoint on the same state directory',
    on: 'mariadb-rabbitmq',
    because: 'only there are agents processes of their own, each with its state directory',
    run: async (stack) => {
      // console2's agent is running with this stack's agent.state_dir
      const second = await runCli(stack.agentArgs('console2'));
      expect(second.code).not.toBe(0);
      expect(second.output).toMatch(
        /another agent process is using the state directory .*console2/,
      );
      expect(second.output).not.toMatch(/^\s+at /m);
    },
  },
  {
    name: 'runs 12 handlers at once in one agent without a listener-leak warning',
    on: 'mariadb-rabbitmq',
    because: 'it starts an agent process of its own, with --concurrency 12',
    run: async (stack) => {
      // every running handler listens to the agent's shutdown signal; Node warns past 10
      const wide = 12;
      const agent = await stack.startAgent('wide', ['--concurrency', String(wide)]);
      // posted together, each running long enough for the rest to start on a busy machine
      await Promise.all(
        Array.from({ length: wide }, (_, i) =>
          stack.api.post('worker', {
            identifier: `wide-${i + 1}`,
            payload: { seconds: 6 },
            endpoints: ['wide'],
          }),
        ),
      );
      const rows = [];
      for (let i = 1; i <= wide; i += 1) {
        const [row] = (await stack.api.terminal('worker', `wide-${i}`)).taskResponseList;
        rows.push(row);
      }
      expect(rows.map((row) => row?.status)).toEqual(Array.from({ length: wide }, () => 'DONE'));
      // all twelve ran at once: the last one started before the first one finished
      const lastStart = Math.max(...rows.map((row) => Date.parse(String(row?.start_time))));
      const firstFinish = Math.min(...rows.map((row) => Date.parse(String(row?.finished_at))));
      expect(lastStart).toBeLessThan(firstFinish);
      expect(agent.output()).not.toMatch(/MaxListenersExceededWarning/);
    },
  },
  {
    name: 'refuses to run a separate server or agent on the in-process broker',
    on: 'embedded',
    because: 'only the embedded stack uses the in-process broker',
    run: async (stack) => {
      const server = await runCli(['server', '--mode', 'development'], childEnv(), stack.cwd);
      expect(server.code).toBe(1);
      expect(server.output).toContain('a separate server needs RabbitMQ');
      const agent = await runCli(
        ['agent', '--mode', 'development', '--endpoint', 'web1'],
        childEnv(),
        stack.cwd,
      );
      expect(agent.code).toBe(1);
      expect(agent.output).toContain('a separate agent needs RabbitMQ');
    },
  },
];

function run(scenario: Scenario, stack: ProcessStack | EmbeddedStack): Promise<void> {
  if (scenario.on === 'both') return scenario.run(stack);
  if (scenario.on === 'mariadb-rabbitmq' && stack.kind === 'mariadb-rabbitmq')
    return scenario.run(stack);
  if (scenario.on === 'embedded' && stack.kind === 'embedded') return scenario.run(stack);
  throw new Error(`"${scenario.name}" is not for the ${stack.kind} stack`);
}

/**
 * Start `stack` before the scenarios that apply to it and stop it after them; `stop` must undo
 * whatever part of `start` happened, since `start` may fail halfway.
 */
export function runScenarios(
  stack: (ProcessStack | EmbeddedStack) & { start(): Promise<void>; stop(): Promise<void> },
): void {
  jest.setTimeout(60_000);
  beforeAll(() => stack.start());
  afterAll(() => stack.stop());
  for (const scenario of SCENARIOS) {
    if (scenario.on === 'both' || scenario.on === stack.kind) {
      it(scenario.name, () => run(scenario, stack));
    }
  }
}
