/**
 * A tasker deployment made of real processes (server and agents from the built CLI) on a test
 * stack, a client load that retries each task until it is accepted (POST is idempotent), and
 * helpers to wait for the end state.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestStack, type StackOptions, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';
import { freePort } from '../support/ports';
import { ROOT, childEnv, startCli, waitForHttp, type Child } from '../support/child-processes';
import { Observer, check, taskKey, type Verdict } from './checker';

export interface ClusterOptions extends StackOptions {
  endpoints: string[];
  /** extra handler files: name → source */
  handlers?: Record<string, string>;
  types?: string[];
  /** broker url for the server only (e.g. through a proxy) */
  serverBrokerUrl?: string;
}

export class Cluster {
  stack!: TestStack;
  port = 0;
  server: Child | null = null;
  readonly agents = new Map<string, Child>();
  handlersDir = '';
  observer!: Observer;
  readonly posted = new Set<string>();
  readonly accepted = new Set<string>();
  /** answers seen by clients: HTTP status → count */
  readonly answers = new Map<number, number>();
  private types: string[] = [];

  constructor(private readonly options: ClusterOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.stack = await createTestStack(this.options);
    this.port = await freePort();
    this.handlersDir = mkdtempSync(join(tmpdir(), 'tasker-fault-handlers-'));
    for (const [name, source] of Object.entries(this.options.handlers ?? {})) {
      writeFileSync(join(this.handlersDir, `${name}.js`), source);
    }
    this.types = this.options.types ?? ['worker'];
    this.observer = new Observer(this.stack.db);
    await this.startServer();
    for (const endpoint of this.options.endpoints) await this.startAgent(endpoint);
    this.observer.start();
  }

  private flags(brokerUrl?: string): string[] {
    const flags = [...this.stack.cliFlags, '--types', this.types.join(','), '--log-level', 'info'];
    if (brokerUrl !== undefined) flags.push('--broker-url', brokerUrl);
    return flags;
  }

  async startServer(): Promise<void> {
    this.server = startCli([
      'server',
      ...this.flags(this.options.serverBrokerUrl),
      '--port',
      String(this.port),
    ]);
    await waitForHttp(`${this.url}/healthz`, this.server);
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

  /** POST one task, retrying until the server accepts it or `giveUpAt`. */
  async post(
    identifier: string,
    body: Record<string, unknown>,
    giveUpAt: number,
    type = 'worker',
  ): Promise<void> {
    const key = taskKey(type, identifier);
    this.posted.add(key);
    while (Date.now() < giveUpAt) {
      try {
        const res = await fetch(`${this.url}/${type}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ identifier, ...body }),
          signal: AbortSignal.timeout(10_000),
        });
        this.answers.set(res.status, (this.answers.get(res.status) ?? 0) + 1);
        await res.arrayBuffer();
        if (res.status === 201 || res.status === 200) {
          this.accepted.add(key);
          return;
        }
      } catch {
        this.answers.set(0, (this.answers.get(0) ?? 0) + 1);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** `concurrency` clients posting distinct tasks until `durationMs` has passed. */
  async load(
    name: string,
    durationMs: number,
    concurrency: number,
    body: Record<string, unknown>,
  ): Promise<void> {
    const stopAt = Date.now() + durationMs;
    let n = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < stopAt) {
          n += 1;
          await this.post(`${name}-${n}`, body, stopAt + 60_000);
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
    await this.server?.stop('SIGKILL');
    await this.stack?.cleanup();
    if (this.handlersDir !== '') rmSync(this.handlersDir, { recursive: true, force: true });
  }

  /** On failure, the processes' output is the best clue. */
  logs(): string {
    const parts = [`--- server\n${this.server?.output().slice(-4000) ?? ''}`];
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
