/**
 * Phase 3: end to end. N tasks × 10 endpoints, real agents running the noop handler; timed from
 * the first POST until SQL says every task is terminal (DONE, FAILED or INCOMPLETE).
 */
import { endpointNames, postLoad, type PostLoadResult } from '../lib/http-load';
import { startCpuMeter, servicePids, type CpuShare } from '../lib/cpu-meter';
import { startDbMeter } from '../lib/db-meter';
import type { Child } from '../../test/support/child-processes';
import { sleep } from '../../test/support/waiting';
import { peakRss } from '../lib/run-processes';
import { watchQueues } from '../lib/queue-watch';
import {
  TERMINAL,
  TYPE,
  startStack,
  taskStatusCounts,
  type StackOptions,
} from '../lib/phase-stack';
import { latency, rate, type Latency } from '../lib/stats';

export type AgentMode = 'cli' | 'host';

export interface E2ePhaseOptions {
  tasks: number;
  endpoints: number;
  concurrency: number;
  /** cli: one `tasker agent` process per endpoint; host: all endpoints in one bench/agents.js */
  agents: AgentMode;
  /** tasks one agent runs at once (agent.concurrency; agent.prefetch stays as configured) */
  agentConcurrency: number;
  /** give up waiting for terminal tasks after this long */
  timeoutMs: number;
  /** node flags, extra settings for the processes */
  stack: StackOptions;
  progress: (line: string) => void;
}

export interface E2ePhase {
  tasks: number;
  endpoints_per_task: number;
  agents: string;
  agent_concurrency: number;
  completed: boolean;
  elapsed_ms: number;
  /** time spent POSTing, included in elapsed_ms */
  post_ms: number;
  post_tasks_per_s: number;
  post_latency: Latency;
  post_answered_sent: number;
  post_answered_created: number;
  post_errors: Record<string, number>;
  endpoint_responses: number;
  endpoint_responses_per_s: number;
  task_status: Record<string, number>;
  response_status: Record<string, number>;
  /** the most messages seen waiting at once */
  peak_task_queue_backlog: number;
  peak_results_queue_backlog: number;
  server_peak_rss_bytes: number | null;
  agent_peak_rss_bytes: number | null;
  /** CPU per process while the POSTs ran, and after, in % of one core */
  cpu_while_posting: Record<string, CpuShare>;
  cpu_after_posting: Record<string, CpuShare>;
  /** MariaDB SHOW GLOBAL STATUS deltas from the first POST until all tasks were terminal */
  db_status_delta: Record<string, number>;
  /** once a second: [s since first POST, tasks stored, terminal, in task queues, in results queue] */
  timeline: Array<[number, number, number, number, number]>;
}

async function countResponses(
  sql: Awaited<ReturnType<typeof startStack>>['sql'],
): Promise<Record<string, number>> {
  const [rows] = await sql.query(
    'SELECT status, COUNT(*) AS n FROM task_responses GROUP BY status',
  );
  const out: Record<string, number> = {};
  for (const row of rows as Array<{ status: string; n: number | string }>) {
    out[row.status] = Number(row.n);
  }
  return out;
}

export async function e2ePhase(options: E2ePhaseOptions): Promise<E2ePhase> {
  const { progress } = options;
  progress('end to end: starting server');
  const stack = await startStack('e2e', {
    ...options.stack,
    set: [`agent.concurrency=${options.agentConcurrency}`, ...(options.stack.set ?? [])],
  });
  const watch = await watchQueues();
  try {
    const endpoints = endpointNames(options.endpoints);
    progress(`end to end: starting agents (${options.agents}) for ${endpoints.join(',')}`);
    const agents: Child[] =
      options.agents === 'cli'
        ? endpoints.map((endpoint) => stack.startCliAgent(endpoint))
        : [await stack.startAgentHost('agents', endpoints, 1)];
    const taskQueues = endpoints.map((e) => `${stack.prefix}.${TYPE}.${e}`);
    const resultsQueue = `${stack.prefix}.results`;
    await watch.waitForConsumers(taskQueues, 60_000);

    progress(`end to end: ${options.tasks} tasks × ${endpoints.length} endpoints`);
    const roles = {
      server: [stack.server.pid],
      agents: agents.map((a) => a.pid),
      ...servicePids(),
    };
    const dbMeter = await startDbMeter();
    let meter = startCpuMeter(roles);
    let cpuWhilePosting: Record<string, CpuShare> = {};
    const started = performance.now();
    let posted: PostLoadResult | null = null;
    const load = postLoad({
      baseUrl: stack.baseUrl,
      type: TYPE,
      endpoints,
      concurrency: options.concurrency,
      count: options.tasks,
      idPrefix: 'e2e',
    }).then((result) => {
      posted = result;
      cpuWhilePosting = meter.stop();
      meter = startCpuMeter(roles);
    });
    let peakTasks = 0;
    let peakResults = 0;
    let open = options.tasks;
    let total = 0;
    let nextReport = started + 1000;
    const timeline: E2ePhase['timeline'] = [];
    let finishedAt = Number.NaN;
    const deadline = started + options.timeoutMs;
    while (performance.now() < deadline) {
      const [rows] = await stack.sql.query(
        `SELECT COUNT(*) AS total, SUM(status NOT IN (${TERMINAL.map(() => '?').join(',')})) AS open FROM tasks`,
        TERMINAL,
      );
      const row = (rows as Array<{ total: number | string; open: number | string | null }>)[0];
      total = Number(row?.total ?? 0);
      open = Number(row?.open ?? 0);
      if (posted !== null && total >= options.tasks && open === 0) {
        finishedAt = performance.now();
        break;
      }
      const depths = await watch.depths([...taskQueues, resultsQueue]);
      const results = depths.pop() ?? 0;
      const inTaskQueues = depths.reduce((a, b) => a + b, 0);
      peakTasks = Math.max(peakTasks, inTaskQueues);
      peakResults = Math.max(peakResults, results);
      if (performance.now() >= nextReport) {
        nextReport += 1000;
        const secs = Math.round((performance.now() - started) / 1000);
        timeline.push([secs, total, total - open, inTaskQueues, results]);
        progress(
          `  ${secs} s: ${total} tasks stored, ${total - open} terminal; waiting: ` +
            `${inTaskQueues} in task queues, ${results} results`,
        );
      }
      await sleep(100);
    }
    await load;
    const cpuAfterPosting = meter.stop();
    const dbDelta = await dbMeter.stop();
    const completed = !Number.isNaN(finishedAt);
    const elapsed = (completed ? finishedAt : performance.now()) - started;
    const post = posted as unknown as PostLoadResult;
    const responses = await countResponses(stack.sql);
    const finalResponses = (responses.DONE ?? 0) + (responses.FAILED ?? 0);
    if (!completed) progress(`end to end: gave up after ${options.timeoutMs / 1000} s`);
    return {
      tasks: options.tasks,
      endpoints_per_task: endpoints.length,
      agents:
        options.agents === 'cli'
          ? `${endpoints.length} tasker agent processes`
          : `${endpoints.length} Agents in 1 bench/agents.js process`,
      agent_concurrency: options.agentConcurrency,
      completed,
      elapsed_ms: Math.round(elapsed),
      post_ms: Math.round(post.elapsedMs),
      post_tasks_per_s: rate(post.accepted, post.elapsedMs),
      post_latency: latency(post.latenciesMs),
      post_answered_sent: post.sent,
      post_answered_created: post.created,
      post_errors: post.errors,
      endpoint_responses: finalResponses,
      endpoint_responses_per_s: rate(finalResponses, elapsed),
      task_status: await taskStatusCounts(stack.sql),
      response_status: responses,
      peak_task_queue_backlog: peakTasks,
      peak_results_queue_backlog: peakResults,
      server_peak_rss_bytes: stack.serverPeakRss(),
      agent_peak_rss_bytes: Math.max(...agents.map((a) => peakRss(a.pid) ?? 0)) || null,
      cpu_while_posting: cpuWhilePosting,
      cpu_after_posting: cpuAfterPosting,
      db_status_delta: dbDelta,
      timeline,
    };
  } finally {
    progress('end to end: stopping server and agents, deleting database and queues');
    await watch.close();
    await stack.close();
  }
}
