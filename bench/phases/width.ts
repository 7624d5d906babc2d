/**
 * Phase 4: width. One task addressed to 1,000 endpoints, with an agent for every one of them
 * (a few bench/agents.js processes hosting many Agents each). Timed from the POST until SQL says
 * the task is DONE; then the GET of that task (1,000 responses) is timed, and one task is rolled
 * out to them all in waves of 100 (./watchers.ts).
 */
import { endpointNames, keepAliveAgent, request, timedGets } from '../lib/http-load';
import { startCpuMeter, servicePids, type CpuShare } from '../lib/cpu-meter';
import type { Child } from '../../test/support/child-processes';
import { sleep } from '../../test/support/waiting';
import { peakRss } from '../lib/run-processes';
import { watchQueues } from '../lib/queue-watch';
import { TYPE, startStack, TERMINAL, type StackOptions } from '../lib/phase-stack';
import { latency, type Latency } from '../lib/stats';
import { rolloutOnce, type RolloutResult } from './watchers';

export interface WidthPhaseOptions {
  endpoints: number;
  processes: number;
  /** Agents sharing one AmqpBroker (AMQP connection); 1 = a connection each */
  agentsPerConnection: number;
  /** tasks posted one after the other; the first one also declares the 1,000 queues */
  rounds: number;
  gets: number;
  timeoutMs: number;
  /** node flags, extra settings for the processes */
  stack: StackOptions;
  progress: (line: string) => void;
}

export interface WidthRound {
  post_ms: number;
  answered: string;
  /** POST sent → task DONE in SQL */
  done_ms: number | null;
  status: string;
}

export interface WidthPhase {
  endpoints: number;
  agent_processes: number;
  connections: string;
  agents_start_ms: number;
  rounds: WidthRound[];
  /** the first round: the server also declares and binds every endpoint queue */
  cold_done_ms: number | null;
  /** median of the later rounds (or the first, with one round) */
  warm_done_ms: number | null;
  get: Latency;
  get_bytes: number;
  server_peak_rss_bytes: number | null;
  agent_host_peak_rss_bytes: number | null;
  /** CPU per process over all rounds, in % of one core */
  cpu: Record<string, CpuShare>;
  rollout: RolloutResult;
}

export async function widthPhase(options: WidthPhaseOptions): Promise<WidthPhase> {
  const { progress } = options;
  progress('width: starting server');
  const stack = await startStack('width', options.stack);
  const watch = await watchQueues();
  try {
    const endpoints = endpointNames(options.endpoints);
    const per = Math.ceil(endpoints.length / options.processes);
    const perConnection = Math.min(options.agentsPerConnection, per);
    const connections =
      perConnection === 1
        ? 'one AMQP connection per Agent'
        : `${Math.ceil(per / perConnection) * options.processes} AMQP connections, ` +
          `${perConnection} Agents on each`;
    progress(
      `width: starting ${endpoints.length} agents in ${options.processes} processes (${connections})`,
    );
    const agentsStarted = performance.now();
    const hosts: Child[] = await Promise.all(
      Array.from({ length: options.processes }, (_, i) =>
        stack.startAgentHost(
          `agents${i + 1}`,
          endpoints.slice(i * per, (i + 1) * per),
          perConnection,
        ),
      ),
    );
    await watch.waitForConsumers(
      endpoints.map((e) => `${stack.prefix}.${TYPE}.${e}`),
      120_000,
    );
    const agentsStartMs = Math.round(performance.now() - agentsStarted);
    progress(`width: ${endpoints.length} agents consuming after ${agentsStartMs} ms`);

    const meter = startCpuMeter({
      server: [stack.server.pid],
      agents: hosts.map((h) => h.pid),
      ...servicePids(),
    });
    const http = keepAliveAgent(1);
    const rounds: WidthRound[] = [];
    let identifier = '';
    for (let round = 1; round <= options.rounds; round += 1) {
      identifier = `width-${round}`;
      const body = JSON.stringify({ identifier, payload: { round }, endpoints });
      const started = performance.now();
      const res = await request(http, `${stack.baseUrl}/${TYPE}`, 'POST', body);
      if (res.status !== 201) throw new Error(`POST: ${res.status} ${res.body.slice(0, 300)}`);
      const task = JSON.parse(res.body) as { id: number; status: string };
      let status = task.status;
      let doneMs: number | null = null;
      while (performance.now() - started < options.timeoutMs) {
        const [rows] = await stack.sql.query('SELECT status FROM tasks WHERE id = ?', [task.id]);
        status = (rows as Array<{ status: string }>)[0]?.status ?? 'missing';
        if (TERMINAL.includes(status)) {
          doneMs = Math.round(performance.now() - started);
          break;
        }
        await sleep(10);
      }
      rounds.push({ post_ms: Math.round(res.ms), answered: task.status, done_ms: doneMs, status });
      progress(
        `  round ${round}: POST ${Math.round(res.ms)} ms (${task.status}), ` +
          `${status} after ${doneMs ?? `> ${options.timeoutMs}`} ms`,
      );
    }
    http.destroy();
    const cpu = meter.stop();

    progress(`width: ${options.gets} GETs of the last task`);
    const url = `${stack.baseUrl}/${TYPE}/${encodeURIComponent(identifier)}`;
    const { samples, bytes } = await timedGets(url, options.gets);
    progress(`width: one task to all ${endpoints.length} endpoints in waves of 100`);
    const rollout = await rolloutOnce(stack, endpoints, 100, options.timeoutMs * 3);
    progress(
      `width: rollout ${rollout.status} in ${rollout.waves} waves after ${rollout.done_ms} ms`,
    );

    const later = rounds.slice(1).map((r) => r.done_ms ?? Number.POSITIVE_INFINITY);
    const warm = later.length === 0 ? [rounds[0]?.done_ms ?? null] : later.sort((a, b) => a - b);
    const median = warm[Math.floor((warm.length - 1) / 2)] ?? null;
    return {
      endpoints: endpoints.length,
      agent_processes: options.processes,
      connections,
      agents_start_ms: agentsStartMs,
      rounds,
      cold_done_ms: rounds[0]?.done_ms ?? null,
      warm_done_ms: median === null || !Number.isFinite(median) ? null : median,
      get: latency(samples),
      get_bytes: bytes,
      server_peak_rss_bytes: stack.serverPeakRss(),
      agent_host_peak_rss_bytes: Math.max(...hosts.map((h) => peakRss(h.pid) ?? 0)) || null,
      cpu,
      rollout,
    };
  } finally {
    progress('width: stopping server and agents, deleting database and queues');
    await watch.close();
    await stack.close();
  }
}
