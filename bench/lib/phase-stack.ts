/**
 * One phase's tasker: a fresh database and exchange/queue prefix, the schema migrated with the
 * real CLI, and the real `tasker server` process; agents are started with the same flags.
 */
import type { Connection } from 'mysql2/promise';
import { TASK_STATUSES, isTerminalTask } from '../../src/domain';
import { CLI, waitForHttp, type Child } from '../../test/support/child-processes';
import { freePort } from '../../test/support/ports';
import { deleteBrokerNames } from '../../test/support/services';
import { peakRss, startLogged } from './run-processes';
import {
  AGENTS_HOST,
  AMQP_URL,
  HANDLERS_DIR,
  deployedAgentNodeArgs,
  createDatabase,
  dbName,
  dropDatabase,
  mysqlRoot,
  mysqlUrl,
  prefixFor,
  removeScratchDir,
  scratchDir,
} from './run-resources';

export const TYPE = 'noop';

export interface StackOptions {
  /** extra `section.key=value` settings for every process */
  set?: string[];
  /** node flags for the server process, e.g. --cpu-prof */
  serverNodeArgs?: string[];
  /** node flags for agent processes (CLI agents and agent hosts), after the deployed ones */
  agentNodeArgs?: string[];
  /** `tasker server` processes on the one database and broker (1) */
  servers?: number;
}

export interface Stack {
  readonly part: string;
  readonly db: string;
  readonly prefix: string;
  /** the first server's */
  readonly baseUrl: string;
  readonly server: Child;
  /** every server's, in order */
  readonly baseUrls: string[];
  readonly servers: Child[];
  /** a connection to the phase's database, for polling */
  readonly sql: Connection;
  /** flags that point a `tasker` process at this stack */
  readonly flags: string[];
  /** `node dist/src/cli/main.js agent --endpoint <endpoint>` */
  startCliAgent(endpoint: string, extra?: string[]): Child;
  /** `node dist/bench/agents.js`: many Agent instances in one process */
  startAgentHost(name: string, endpoints: string[], agentsPerConnection: number): Promise<Child>;
  serverPeakRss(): number | null;
  close(): Promise<void>;
}

export async function startStack(part: string, options: StackOptions = {}): Promise<Stack> {
  const db = dbName(part);
  const prefix = prefixFor(part);
  const stateDir = scratchDir('tasker-bench-agent-');
  const agentNodeArgs = [...deployedAgentNodeArgs(), ...(options.agentNodeArgs ?? [])];
  await createDatabase(db);
  const set = [
    `agent.state_dir=${stateDir}`,
    // backlogs in a run may wait longer than test mode's 10 s before an agent takes them
    `task_types.${TYPE}.wait_for_endpoints_timeout=10m`,
    ...(options.set ?? []),
  ];
  const flags = [
    '--mode',
    'test',
    '--database-url',
    mysqlUrl(db),
    '--broker-url',
    AMQP_URL,
    '--prefix',
    prefix,
    '--types',
    TYPE,
    ...set.flatMap((entry) => ['--set', entry]),
  ];
  const migrate = startLogged(`${part}-migrate`, CLI, ['migrate', ...flags]);
  await new Promise<void>((resolve) => migrate.process.once('exit', () => resolve()));
  if (migrate.process.exitCode !== 0) throw new Error(`migrate failed:\n${migrate.output()}`);

  const servers: Child[] = [];
  const baseUrls: string[] = [];
  for (let i = 0; i < (options.servers ?? 1); i += 1) {
    const port = await freePort();
    const server = startLogged(
      i === 0 ? `${part}-server` : `${part}-server${i + 1}`,
      CLI,
      ['server', ...flags, '--host', '127.0.0.1', '--port', String(port)],
      options.serverNodeArgs ?? [],
    );
    servers.push(server);
    baseUrls.push(`http://127.0.0.1:${port}`);
    await waitForHttp(`${baseUrls[i]}/readyz`, server, 20_000);
  }
  const server = servers[0] as Child;
  const baseUrl = baseUrls[0] as string;
  const sql = await mysqlRoot(db);
  const agents: Child[] = [];

  return {
    part,
    db,
    prefix,
    baseUrl,
    server,
    baseUrls,
    servers,
    sql,
    flags,
    startCliAgent: (endpoint, extra = []) => {
      const child = startLogged(
        `${part}-agent-${endpoint}`,
        CLI,
        ['agent', ...flags, '--handlers', HANDLERS_DIR, '--endpoint', endpoint, ...extra],
        agentNodeArgs,
      );
      agents.push(child);
      return child;
    },
    startAgentHost: async (name, endpoints, agentsPerConnection) => {
      const child = startLogged(
        `${part}-${name}`,
        AGENTS_HOST,
        [
          ...flags,
          '--handlers',
          HANDLERS_DIR,
          '--endpoints',
          endpoints.join(','),
          '--agents-per-connection',
          String(agentsPerConnection),
        ],
        agentNodeArgs,
      );
      agents.push(child);
      await child.waitForOutput('agents ready', 60_000);
      return child;
    },
    serverPeakRss: () => peakRss(server.pid),
    // best effort, step by step: what fails here (a service restarting) is retried by the
    // run's final cleanup, which reports what it could not remove
    close: async () => {
      await Promise.all(agents.map((agent) => agent.stop()));
      await Promise.all(servers.map((one) => one.stop()));
      await sql.end().catch(() => undefined);
      await dropDatabase(db).catch(() => undefined);
      await deleteBrokerNames(`${prefix}.`, AMQP_URL).catch(() => undefined);
      removeScratchDir(stateDir);
    },
  };
}

/** Tasks by status, from SQL. */
export async function taskStatusCounts(sql: Connection): Promise<Record<string, number>> {
  const [rows] = await sql.query('SELECT status, COUNT(*) AS n FROM tasks GROUP BY status');
  const counts: Record<string, number> = {};
  for (const row of rows as Array<{ status: string; n: number | string }>) {
    counts[row.status] = Number(row.n);
  }
  return counts;
}

/** DONE, FAILED and INCOMPLETE: src/domain's, as a list for SQL */
export const TERMINAL: string[] = TASK_STATUSES.filter(isTerminalTask);
