/**
 * A tasker deployment made of real processes (one or more servers and agents from the built CLI)
 * on a test stack, a client load spread round-robin over the live servers that retries each task
 * until it is accepted (POST is idempotent, so a retry may go to another server), and helpers to
 * wait for the end state.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestStack, type StackOptions, type TestStack } from '../support/stack';
import { sleep, waitFor } from '../support/waiting';
import { freePort } from '../support/ports';
import { ROOT, childEnv, startCli, waitForHttp, type Child } from '../support/child-processes';
import { Observer, check, taskKey, type Verdict } from './checker';

export interface ClusterOptions extends StackOptions {
  endpoints: string[];
  /** extra handler files: name → source */
  handlers?: Record<string, string>;
  types?: string[];
  /** broker url for the servers only (e.g. through a proxy); a list gives each server its own */
  serverBrokerUrl?: string | Array<string | undefined>;
  /** how many `tasker server` processes share the database and broker, each on its port (1) */
  servers?: number;
}

export class Cluster {
  stack!: TestStack;
  /** each server's port, by index; a restarted server keeps its port */
  readonly ports: number[] = [];
  /** each server's process, by index; null before its start */
  readonly servers: Array<Child | null> = [];
  readonly agents = new Map<string, Child>();
  handlersDir = '';
  observer!: Observer;
  readonly posted = new Set<string>();
  readonly accepted = new Set<string>();
  /** answers seen by clients: HTTP status → count */
  readonly answers = new Map<number, number>();
  /** by server index: POSTs it answered 201/200, and POSTs that got no answer from it */
  readonly acceptedBy: number[] = [];
  readonly unansweredBy: number[] = [];
  private types: string[] = [];
  private nextServer = 0;

  constructor(private readonly options: ClusterOptions) {}

  /** the first server */
  get server(): Child | null {
    return this.servers[0] ?? null;
  }

  get url(): string {
    return this.urls[0] ?? '';
  }

  get urls(): string[] {
    return this.ports.map((port) => `http://127.0.0.1:${port}`);
  }

  async start(): Promise<void> {
    this.stack = await createTestStack(this.options);
    for (let i = 0; i < (this.options.servers ?? 1); i += 1) {
      let port = await freePort();
      // free a moment ago, and not yet taken by a server of this cluster
      while (this.ports.includes(port)) port = await freePort();
      this.ports.push(port);
      this.servers.push(null);
      this.acceptedBy.push(0);
      this.unansweredBy.push(0);
    }
    this.handlersDir = mkdtempSync(join(tmpdir(), 'tasker-fault-handlers-'));
    for (const [name, source] of Object.entries(this.options.handlers ?? {})) {
      writeFileSync(join(this.handlersDir, `${name}.js`), source);
    }
    this.types = this.options.types ?? ['worker'];
    this.observer = new Observer(this.stack.db);
    for (const index of this.ports.keys()) await this.startServer(index);
    for (const endpoint of this.options.endpoints) await this.startAgent(endpoint);
    this.observer.start();
  }

  private flags(brokerUrl?: string): string[] {
    const flags = [...this.stack.cliFlags, '--types', this.types.join(','), '--log-level', 'info'];
    if (brokerUrl !== undefined) flags.push('--broker-url', brokerUrl);
    return flags;
  }

  /** Start (or start again) server `index` on its port. */
  async startServer(index = 0): Promise<void> {
    const brokerUrl = this.options.serverBrokerUrl;
    const server = startCli([
      'server',
      ...this.flags(typeof brokerUrl === 'string' ? brokerUrl : brokerUrl?.[index]),
      '--port',
      String(this.ports[index]),
    ]);
    this.servers[index] = server;
    await waitForHttp(`${this.urls[index]}/healthz`, server);
  }

  /** Whether server `index` is running (started, and not exited). */
  serverAlive(index: number): boolean {
    const server = this.servers[index];
    return (
      server !== null &&
      server !== undefined &&
      server.process.exitCode === null &&
      server.process.signalCode === null
    );
  }

  /** The next live server in turn (the first one when none is). */
  private pickServer(): number {
    for (let i = 0; i < this.ports.length; i += 1) {
      const index = (this.nextServer + i) % this.ports.length;
      if (this.serverAlive(index)) {
        this.nextServer = index + 1;
        return index;
      }
    }
    return 0;
  }

  /**
   * Start an agent and wait until it consumes; `consuming: false` returns at once, for an agent
   * that may run (and die of) a waiting task before it gets to say so.
   */
  async startAgent(endpoint: string, options: { consuming?: boolean } = {}): Promise<Child> {
    const agent = startCli(
      [
        'agent',
        ...this.flags(),
        '--endpoint',
        endpoint,
        '--handlers',
        `${this.handlersDir},${join(ROOT, 'dist', 'handlers')}`,
      ],
      childEnv({ WORKER_SECONDS: '0' }),
    );
    this.agents.set(endpoint, agent);
    if (options.consuming !== false) await agent.waitForOutput('agent consuming', 60_000);
    return agent;
  }

  /**
   * POST one task, retrying until a server accepts it or `giveUpAt`: each try goes to the next
   * live server in turn, or always to server `via` when given.
   */
  async post(
    identifier: string,
    body: Record<string, unknown>,
    giveUpAt: number,
    type = 'worker',
    via?: number,
  ): Promise<void> {
    const key = taskKey(type, identifier);
    this.posted.add(key);
    while (Date.now() < giveUpAt) {
      const index = via ?? this.pickServer();
      try {
        const res = await fetch(`${this.urls[index]}/${type}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ identifier, ...body }),
          signal: AbortSignal.timeout(10_000),
        });
        this.answers.set(res.status, (this.answers.get(res.status) ?? 0) + 1);
        await res.arrayBuffer();
        if (res.status === 201 || res.status === 200) {
          this.accepted.add(key);
          this.acceptedBy[index] = (this.acceptedBy[index] ?? 0) + 1;
          return;
        }
      } catch {
        this.answers.set(0, (this.answers.get(0) ?? 0) + 1);
        this.unansweredBy[index] = (this.unansweredBy[index] ?? 0) + 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /**
   * `concurrency` clients posting distinct tasks until `durationMs` has passed, each pausing
   * `pauseMs` after every task it got accepted.
   */
  async load(
    name: string,
    durationMs: number,
    concurrency: number,
    body: Record<string, unknown>,
    pauseMs = 0,
  ): Promise<void> {
    const stopAt = Date.now() + durationMs;
    let n = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < stopAt) {
          n += 1;
          await this.post(`${name}-${n}`, body, stopAt + 60_000);
          if (pauseMs > 0) await sleep(pauseMs);
        }
      }),
    );
  }

  /** Wait until every accepted task is final, then stop observing and judge. */
  async verdict(timeoutMs = 90_000): Promise<Verdict> {
    await waitFor(
      async () => {
        const rows = (await this.stack
          .db('tasks')
          .whereIn('status', ['CREATED', 'SENT'])
          .count({ n: '*' })) as Array<{ n: number }>;
        return Number(rows[0]?.n);
      },
      (open) => open === 0,
      timeoutMs,
      'every task to be final',
    ).catch(() => undefined);
    await this.observer.stop();
    return check(this.stack.db, this.posted, this.accepted, this.observer);
  }

  async stop(): Promise<void> {
    // a test that failed before its verdict leaves the observer polling, which keeps jest alive
    await this.observer?.stop().catch(() => undefined);
    for (const agent of this.agents.values()) await agent.stop('SIGKILL');
    for (const server of this.servers) await server?.stop('SIGKILL');
    await this.stack?.cleanup();
    if (this.handlersDir !== '') rmSync(this.handlersDir, { recursive: true, force: true });
  }

  /** On failure, the processes' output is the best clue. */
  logs(): string {
    const parts = this.servers.map(
      (server, i) => `--- server ${i}\n${server?.output().slice(-4000) ?? ''}`,
    );
    for (const [endpoint, agent] of this.agents)
      parts.push(`--- ${endpoint}\n${agent.output().slice(-2000)}`);
    return parts.join('\n');
  }
}

export function expectClean(verdict: Verdict, cluster: Cluster): void {
  const clean =
    verdict.lost === 0 &&
    verdict.unexpected === 0 &&
    verdict.duplicates === 0 &&
    verdict.backwards === 0;
  if (!clean || verdict.accepted === 0) {
    throw new Error(`checker: ${JSON.stringify(verdict, null, 2)}\n${cluster.logs()}`);
  }
}
