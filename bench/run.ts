#!/usr/bin/env node
/**
 * The benchmark: `npm run bench` (full, about 3 min) or `npm run bench:quick` (CI smoke, < 1 min).
 * Measures the broker and database ceilings first, then the real tasker server and agents:
 * POST throughput, end to end, width, soak. Prints a table, writes bench/results/latest.json, and
 * removes every process, database, queue and exchange it created, also on Ctrl-C or failure.
 *
 * Options:
 *   --quick                         small N, short durations (CI smoke, < 1 min)
 *   --phases ceilings,post,scale,e2e,width,soak,fleet  run only these (scale: the POST phase
 *                                   again with two servers, and with quorum queues)
 *   --server-node-args="--cpu-prof --cpu-prof-dir=DIR"   node flags for the server (note the =)
 *   --agent-node-args="…"           node flags for agent processes, after those of
 *                                   deploy/tasker-agent@.service (which agents always get)
 *   --set section.key=value         any tasker setting, for every tasker process (repeatable)
 *   --agents cli|host               end to end: 10 `tasker agent` processes (default), or 10
 *                                   Agents in one bench/agents.js process
 *   --e2e-tasks N  --post-seconds S  --concurrency N (POSTs in flight, default 32)
 *   --agent-concurrency N           agent.concurrency for end to end (default 4, as shipped)
 *   --agents-per-connection N       width: Agents sharing one AMQP connection (default 10)
 *   --out FILE                      instead of bench/results/latest.json
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RESULTS_DIR, RUN_ID, cleanupRun, mysqlRoot } from './lib/run-resources';
import { stopAll } from './lib/run-processes';
import type { StackOptions } from './lib/phase-stack';
import { amqpCeiling } from './phases/ceiling-amqp';
import { mariadbCeiling } from './phases/ceiling-mariadb';
import { e2ePhase, type AgentMode } from './phases/e2e';
import { postPhase } from './phases/post';
import { agentSoak, pipelineSoak } from './phases/soak';
import { widthPhase } from './phases/width';
import { heartbeatPhase, listingPhase } from './phases/fleet';
import { watchersPhase } from './phases/watchers';
import { handlerCosts } from './phases/handler-cost';
import { checkTargets, render, type Results } from './report';

const PHASES = ['ceilings', 'post', 'scale', 'e2e', 'width', 'soak', 'fleet'] as const;

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    help: { type: 'boolean', short: 'h' },
    quick: { type: 'boolean' },
    phases: { type: 'string' },
    'server-node-args': { type: 'string' },
    'agent-node-args': { type: 'string' },
    set: { type: 'string', multiple: true },
    agents: { type: 'string' },
    'e2e-tasks': { type: 'string' },
    'post-seconds': { type: 'string' },
    concurrency: { type: 'string' },
    'agent-concurrency': { type: 'string' },
    'agents-per-connection': { type: 'string' },
    out: { type: 'string' },
  },
});

if (values.help === true) {
  console.log(
    `usage: node dist/bench/run.js [--quick] [--phases ${PHASES.join(',')}] [options]\n` +
      'options are described at the top of bench/run.ts and in bench/README.md',
  );
  process.exit(0);
}
const quick = values.quick === true;
const phases = new Set((values.phases ?? PHASES.join(',')).split(','));
for (const phase of phases) {
  if (!(PHASES as readonly string[]).includes(phase)) throw new Error(`unknown phase ${phase}`);
}
const words = (text: string | undefined): string[] =>
  (text ?? '').split(' ').filter((a) => a !== '');
const stack: StackOptions = {
  serverNodeArgs: words(values['server-node-args']),
  agentNodeArgs: words(values['agent-node-args']),
  set: values.set ?? [],
};
const agents = (values.agents ?? 'cli') as AgentMode;
if (agents !== 'cli' && agents !== 'host') throw new Error('--agents is cli or host');
const int = (value: string | undefined, fallback: number): number =>
  value === undefined ? fallback : Number.parseInt(value, 10);

const settings = {
  amqpMs: quick ? 3000 : 10_000,
  mariadbMs: quick ? 2000 : 5000,
  postMs: int(values['post-seconds'], quick ? 5 : 20) * 1000,
  postWarmup: quick ? 200 : 1000,
  concurrency: int(values.concurrency, 32),
  e2eTasks: int(values['e2e-tasks'], quick ? 300 : 3000),
  e2eTimeoutMs: quick ? 30_000 : 150_000,
  agentConcurrency: int(values['agent-concurrency'], 4),
  widthEndpoints: 1000,
  widthProcesses: 4,
  // RabbitMQ here allows ~830 sockets (its 1024 file descriptors): 1,000 connections do not fit
  agentsPerConnection: int(values['agents-per-connection'], 10),
  widthRounds: quick ? 2 : 4,
  gets: 20,
  soakTasks: quick ? 10_000 : 100_000,
  pipelineSoakTasks: quick ? 2000 : 20_000,
  listingTasks: quick ? 20_000 : 1_000_000,
  fleetEndpoints: quick ? 1000 : 10_000,
  fleetMs: quick ? 5000 : 30_000,
};

const startedAt = Date.now();
function progress(line: string): void {
  const secs = ((Date.now() - startedAt) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${secs}s] ${line}\n`);
}

async function machine(): Promise<Record<string, unknown>> {
  const conn = await mysqlRoot();
  const [rows] = await conn.query('SELECT VERSION() AS v, @@innodb_flush_log_at_trx_commit AS f');
  await conn.end();
  const row = (rows as Array<{ v: string; f: number }>)[0];
  let rabbit = 'unknown';
  try {
    rabbit = execFileSync('rabbitmqctl', ['version'], { encoding: 'utf8' }).trim();
  } catch {
    // leave unknown
  }
  const load = loadavg()[0] ?? 0;
  if (load > 1) {
    progress(
      `warning: load average ${load.toFixed(2)} before the run: something else is busy here, ` +
        'and the figures will show it',
    );
  }
  return {
    cpus: cpus().length,
    load_average_1m_at_start: Math.round(load * 100) / 100,
    node: process.version,
    mariadb: row?.v ?? 'unknown',
    innodb_flush_log_at_trx_commit: row?.f ?? null,
    rabbitmq: rabbit,
  };
}

let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll();
    await cleanupRun(progress);
  })();
  return cleaning;
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress(`${signal}: stopping children and removing what this run created`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  const results: Omit<Results, 'targets'> = {
    run_id: RUN_ID,
    mode: quick ? 'quick' : 'full',
    started_at: new Date(startedAt).toISOString(),
    finished_at: '',
    machine: await machine(),
    ceilings: {},
    peak_rss: { server_bytes: null, agent_bytes: null },
    errors: [],
  };
  progress(`run ${RUN_ID}, ${quick ? 'quick' : 'full'} mode, phases ${[...phases].join(',')}`);
  const attempt = async (phase: string, work: () => Promise<void>): Promise<void> => {
    if (interrupted) return;
    try {
      await work();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      progress(`${phase} failed: ${message}`);
      results.errors.push({ phase, message });
    }
  };
  if (phases.has('ceilings')) {
    await attempt('ceiling amqp', async () => {
      progress('ceiling: RabbitMQ persistent fanout');
      results.ceilings.amqp = await amqpCeiling({
        queues: 10,
        durationMs: settings.amqpMs,
        inFlight: 1000,
        prefetch: 100,
        progress,
      });
    });
    await attempt('ceiling amqp, POST bound', async () => {
      progress(`ceiling: RabbitMQ alone at the POST phase's ${settings.concurrency} in flight`);
      results.ceilings.amqp_post = await amqpCeiling({
        queues: 10,
        durationMs: settings.amqpMs,
        inFlight: settings.concurrency,
        prefetch: null,
        progress,
      });
    });
    await attempt('ceiling mariadb', async () => {
      progress('ceiling: MariaDB batched insert');
      results.ceilings.mariadb = await mariadbCeiling({
        durationMs: settings.mariadbMs,
        rowsPerStatement: 500,
        connections: 4,
        progress,
      });
    });
  }
  const servers: number[] = [];
  if (phases.has('post')) {
    await attempt('post', async () => {
      results.post = await postPhase({
        durationMs: settings.postMs,
        warmupTasks: settings.postWarmup,
        concurrency: settings.concurrency,
        endpoints: 10,
        stack,
        progress,
      });
      servers.push(results.post.server_peak_rss_bytes ?? 0);
    });
  }
  if (phases.has('scale')) {
    // the POST phase again, as capacity planning asks: two servers, then quorum queues
    const variants: Array<['two_servers' | 'quorum', StackOptions]> = [
      ['two_servers', { ...stack, servers: 2 }],
      ['quorum', { ...stack, set: [...(stack.set ?? []), 'broker.queue_type=quorum'] }],
    ];
    for (const [name, variant] of variants) {
      await attempt(`scale: ${name}`, async () => {
        const phase = await postPhase({
          durationMs: settings.postMs,
          warmupTasks: settings.postWarmup,
          concurrency: settings.concurrency,
          endpoints: 10,
          stack: variant,
          part: name === 'quorum' ? 'postq' : 'post2',
          progress,
        });
        results.scale = { ...results.scale, [name]: phase };
      });
    }
  }
  if (phases.has('e2e')) {
    await attempt('e2e', async () => {
      results.e2e = await e2ePhase({
        tasks: settings.e2eTasks,
        endpoints: 10,
        concurrency: settings.concurrency,
        agents,
        agentConcurrency: settings.agentConcurrency,
        timeoutMs: settings.e2eTimeoutMs,
        stack,
        progress,
      });
      servers.push(results.e2e.server_peak_rss_bytes ?? 0);
      results.peak_rss.agent_bytes = results.e2e.agent_peak_rss_bytes;
    });
  }
  if (phases.has('width')) {
    await attempt('width', async () => {
      results.width = await widthPhase({
        endpoints: settings.widthEndpoints,
        processes: settings.widthProcesses,
        agentsPerConnection: settings.agentsPerConnection,
        rounds: settings.widthRounds,
        narrowTasks: quick ? 5 : 20,
        gets: settings.gets,
        timeoutMs: quick ? 20_000 : 60_000,
        stack,
        progress,
      });
      servers.push(results.width.server_peak_rss_bytes ?? 0);
    });
  }
  if (phases.has('soak')) {
    await attempt('soak', async () => {
      results.soak = await agentSoak({
        warmupTasks: 5000,
        tasks: settings.soakTasks,
        concurrency: settings.agentConcurrency,
        prefetch: 32,
        timeoutMs: quick ? 60_000 : 300_000,
        progress,
      });
    });
    await attempt('handler cost', async () => {
      results.handler_costs = await handlerCosts({
        tasks: quick ? 300 : 3000,
        concurrency: 4,
        timeoutMs: quick ? 60_000 : 300_000,
        progress,
      });
    });
    for (const broker of ['memory', 'rabbitmq'] as const) {
      await attempt(`soak pipeline on ${broker}`, async () => {
        const phase = await pipelineSoak({
          warmupTasks: 2000,
          tasks: settings.pipelineSoakTasks,
          concurrency: 16,
          timeoutMs: quick ? 60_000 : 300_000,
          broker,
          progress,
        });
        if (broker === 'memory') results.soak_pipeline = phase;
        else results.soak_pipeline_rabbitmq = phase;
      });
    }
  }
  if (phases.has('fleet')) {
    await attempt('listing', async () => {
      results.listing = await listingPhase({
        tasks: settings.listingTasks,
        gets: settings.gets,
        stack,
        progress,
      });
    });
    await attempt('watchers', async () => {
      results.watchers = await watchersPhase({
        watchers: quick ? 50 : 200,
        endpoints: 10,
        narrowTasks: quick ? 20 : 100,
        timeoutMs: 60_000,
        stack,
        progress,
      });
    });
    await attempt('heartbeats', async () => {
      results.heartbeats = await heartbeatPhase({
        endpoints: settings.fleetEndpoints,
        intervalMs: 15_000,
        durationMs: settings.fleetMs,
        taskRate: 20,
        stack,
        progress,
      });
    });
  }
  results.peak_rss.server_bytes = servers.length === 0 ? null : Math.max(...servers) || null;
  await cleanup();
  results.finished_at = new Date().toISOString();
  const final: Results = { ...results, targets: checkTargets(results) };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const out = values.out ?? join(RESULTS_DIR, 'latest.json');
  writeFileSync(out, `${JSON.stringify(final, null, 2)}\n`);
  console.log(render(final));
  progress(`wrote ${out} in ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
  return final.errors.length > 0 || interrupted ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanup();
    process.exit(1);
  },
);
