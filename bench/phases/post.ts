/**
 * Phase 2: POST throughput and latency against the real server, no agents running (the
 * endpoint queues just fill; the phase's queues are deleted at its end).
 */
import { endpointNames, postLoad } from '../lib/http-load';
import { startCpuMeter, servicePids, type CpuShare } from '../lib/cpu-meter';
import { startDbMeter } from '../lib/db-meter';
import { sleep } from '../../test/support/waiting';
import { peakRss } from '../lib/run-processes';
import { watchQueues } from '../lib/queue-watch';
import { TYPE, startStack, taskStatusCounts, type StackOptions } from '../lib/phase-stack';
import { latency, rate, type Latency } from '../lib/stats';
import { scrapeSteps, stepMeans, type AcceptSteps } from '../lib/accept-steps';

export interface PostPhaseOptions {
  durationMs: number;
  warmupTasks: number;
  concurrency: number;
  endpoints: number;
  /** node flags, extra settings for the processes, how many servers */
  stack: StackOptions;
  /** names the phase's database, prefix and logs ('post') */
  part?: string;
  progress: (line: string) => void;
}

export interface PostPhase {
  /** `tasker server` processes the POSTs went to, in turn */
  servers: number;
  /** of the endpoint queues */
  queue_type: string;
  concurrency: number;
  endpoints_per_task: number;
  duration_ms: number;
  accepted: number;
  tasks_per_s: number;
  latency: Latency;
  /** mean ms a POST waited for each durable step, and for the rest of the request */
  steps: AcceptSteps;
  answered_sent: number;
  answered_created: number;
  errors: Record<string, number>;
  first_error: string | null;
  /** task status in SQL a few seconds after the load (CREATED ones should have been relayed) */
  db_status_after: Record<string, number>;
  /** messages waiting in the first endpoint's queue: every accepted task, once */
  queue_e1_messages: number;
  server_peak_rss_bytes: number | null;
  /** CPU per process during the measured load, in % of one core */
  cpu: Record<string, CpuShare>;
  /** MariaDB SHOW GLOBAL STATUS deltas during the measured load */
  db_status_delta: Record<string, number>;
}

export async function postPhase(options: PostPhaseOptions): Promise<PostPhase> {
  const { progress } = options;
  progress('POST: starting server');
  const stack = await startStack(options.part ?? 'post', options.stack);
  const queueType = (options.stack.set ?? []).includes('broker.queue_type=quorum')
    ? 'quorum'
    : 'classic';
  try {
    const endpoints = endpointNames(options.endpoints);
    const base = {
      baseUrl: stack.baseUrl,
      baseUrls: stack.baseUrls,
      type: TYPE,
      endpoints,
      concurrency: options.concurrency,
    };
    progress(`POST: warm-up, ${options.warmupTasks} tasks`);
    const warm = await postLoad({ ...base, count: options.warmupTasks, idPrefix: 'warm' });
    if (warm.accepted !== options.warmupTasks) {
      throw new Error(`warm-up: ${JSON.stringify(warm.errors)} ${warm.firstError ?? ''}`);
    }
    progress(`POST: ${options.durationMs / 1000} s at ${options.concurrency} in flight`);
    const stepsBefore = await scrapeSteps(stack.baseUrls);
    const dbMeter = await startDbMeter();
    const meter = startCpuMeter({
      server: stack.servers.map((server) => server.pid),
      ...servicePids(),
    });
    const run = await postLoad({
      ...base,
      durationMs: options.durationMs,
      idPrefix: 'post',
      onProgress: (done) => progress(`  ${done} POSTs answered`),
    });
    const cpu = meter.stop();
    const dbDelta = await dbMeter.stop();
    const steps = stepMeans(stepsBefore, await scrapeSteps(stack.baseUrls));
    const serverRss = peakRss(stack.server.pid);
    // let the relay publish what was answered CREATED, then look at SQL and the queue
    let after = await taskStatusCounts(stack.sql);
    for (let i = 0; i < 50 && (after.CREATED ?? 0) > 0; i += 1) {
      await sleep(200);
      after = await taskStatusCounts(stack.sql);
    }
    const watch = await watchQueues();
    const [e1] = await watch.depths([`${stack.prefix}.${TYPE}.e1`]);
    await watch.close();
    return {
      servers: stack.servers.length,
      queue_type: queueType,
      concurrency: options.concurrency,
      endpoints_per_task: options.endpoints,
      duration_ms: Math.round(run.elapsedMs),
      accepted: run.accepted,
      tasks_per_s: rate(run.accepted, run.elapsedMs),
      latency: latency(run.latenciesMs),
      steps,
      answered_sent: run.sent,
      answered_created: run.created,
      errors: run.errors,
      first_error: run.firstError,
      db_status_after: after,
      queue_e1_messages: e1 ?? 0,
      server_peak_rss_bytes: serverRss,
      cpu,
      db_status_delta: dbDelta,
    };
  } finally {
    progress('POST: stopping server, deleting its database and queues');
    await stack.close();
  }
}
