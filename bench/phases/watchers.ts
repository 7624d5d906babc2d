/**
 * Operating a broadcast: one task rolled out to the width phase's 1,000 agents in waves of 100,
 * and event-stream watchers on busy tasks, on a stack of their own (the server's added CPU per
 * watcher, and how long after a commit its event reaches a watcher).
 */
import * as http from 'node:http';
import { sleep } from '../../test/support/waiting';
import { startCpuMeter, type CpuShare } from '../lib/cpu-meter';
import { keepAliveAgent, request } from '../lib/http-load';
import { TERMINAL, TYPE, startStack, type Stack, type StackOptions } from '../lib/phase-stack';
import { endpointNames } from '../lib/http-load';
import { latency, type Latency } from '../lib/stats';

export interface RolloutResult {
  endpoints: number;
  batch: number;
  waves: number;
  /** POST → task DONE */
  done_ms: number | null;
  status: string;
}

/** POST one task to every endpoint with `rollout: {batch}` and time it until final. */
export async function rolloutOnce(
  stack: Stack,
  endpoints: string[],
  batch: number,
  timeoutMs: number,
): Promise<RolloutResult> {
  const agent = keepAliveAgent(1);
  const started = performance.now();
  const res = await request(
    agent,
    `${stack.baseUrl}/${TYPE}`,
    'POST',
    JSON.stringify({ identifier: 'rollout', endpoints, payload: {}, rollout: { batch } }),
  );
  agent.destroy();
  if (res.status !== 201) throw new Error(`POST rollout: ${res.status} ${res.body.slice(0, 300)}`);
  const { id } = JSON.parse(res.body) as { id: number };
  let status = 'SENT';
  let doneMs: number | null = null;
  while (performance.now() - started < timeoutMs) {
    const [rows] = await stack.sql.query('SELECT status FROM tasks WHERE id = ?', [id]);
    status = (rows as Array<{ status: string }>)[0]?.status ?? 'missing';
    if (TERMINAL.includes(status)) {
      doneMs = Math.round(performance.now() - started);
      break;
    }
    await sleep(20);
  }
  const [waves] = await stack.sql.query(
    'SELECT COUNT(DISTINCT wave) AS n FROM task_responses WHERE task_id = ?',
    [id],
  );
  return {
    endpoints: endpoints.length,
    batch,
    waves: Number((waves as Array<{ n: number }>)[0]?.n ?? 0),
    done_ms: doneMs,
    status,
  };
}

export interface WatchersResult {
  watchers: number;
  tasks: number;
  /** server CPU over the same busy tasks, without watchers and with them */
  server_cpu_s_without: number;
  server_cpu_s_with: number;
  server_cpu_ms_per_watcher: number;
  events: number;
  /** a task's updated_at (set in the transaction that changed it) → its `task` event read */
  commit_to_event: Latency;
  cpu_with: Record<string, CpuShare>;
}

/** `tasks` tasks of `perTask` endpoints each, kept busy 2-6 s; resolves once all are final. */
async function busyTasks(
  stack: Stack,
  label: string,
  endpoints: string[],
  tasks: number,
  perTask: number,
): Promise<string[]> {
  const agent = keepAliveAgent(8);
  const identifiers: string[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async (_, worker) => {
      for (let i = worker; i < tasks; i += 8) {
        const identifier = `${label}-${i}`;
        const targets = Array.from(
          { length: perTask },
          (_, k) => endpoints[(i * perTask + k) % endpoints.length] as string,
        );
        const res = await request(
          agent,
          `${stack.baseUrl}/${TYPE}`,
          'POST',
          JSON.stringify({
            identifier,
            endpoints: targets,
            payload: { sleep_ms: 2000 + (i % 5) * 1000 },
          }),
        );
        if (res.status !== 201) throw new Error(`POST ${identifier}: ${res.status} ${res.body}`);
        identifiers.push(identifier);
      }
    }),
  );
  agent.destroy();
  return identifiers;
}

async function allFinal(stack: Stack, label: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const terminal = TERMINAL.map((s) => `'${s}'`).join(', ');
  for (;;) {
    const [rows] = await stack.sql.query(
      `SELECT COUNT(*) AS n FROM tasks WHERE identifier LIKE ? AND status NOT IN (${terminal})`,
      [`${label}-%`],
    );
    if (Number((rows as Array<{ n: number }>)[0]?.n) === 0) return;
    if (Date.now() > deadline) throw new Error(`${label}: tasks not final within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Read one task's event stream to its end; the commit → read latency of each `task` event. */
function watch(url: string, samples: number[]): Promise<number> {
  return new Promise((resolve, reject) => {
    let events = 0;
    const req = http.get(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`GET ${url}: ${res.statusCode}`));
        res.resume();
        return;
      }
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const now = Date.now();
        buffer += chunk;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
          const name = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (name === undefined || data === undefined) continue;
          events += 1;
          if (name === 'task') {
            const { updated_at: updatedAt } = JSON.parse(data) as { updated_at: string };
            samples.push(now - Date.parse(updatedAt));
          }
        }
      });
      res.on('end', () => resolve(events));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

export interface WatchersOptions {
  watchers: number;
  /** endpoints (agents in one process); each busy task goes to 5 of them */
  endpoints: number;
  timeoutMs: number;
  stack: StackOptions;
  progress: (line: string) => void;
}

/**
 * Busy tasks without watchers, then the same with an event stream on each. Ten agents share
 * the work (a fanout exchange copies every task to each of its type's queues, so a thousand
 * endpoints would measure the broker's fanout instead), each running many handlers at once.
 */
export async function watchersPhase(options: WatchersOptions): Promise<WatchersResult> {
  const { progress, watchers } = options;
  const stack = await startStack('watchers', {
    ...options.stack,
    set: [
      ...(options.stack.set ?? []),
      'agent.isolation=inline',
      `agent.concurrency=${watchers}`,
      `agent.prefetch=${watchers}`,
    ],
  });
  try {
    const endpoints = endpointNames(options.endpoints);
    await stack.startAgentHost('agents', endpoints, endpoints.length);
    const perTask = 5;
    progress(`watchers: ${watchers} busy tasks of ${perTask} endpoints, no watchers`);
    let meter = startCpuMeter({ server: [stack.server.pid] });
    await busyTasks(stack, 'quiet', endpoints, watchers, perTask);
    await allFinal(stack, 'quiet', options.timeoutMs);
    const without = meter.stop().server?.cpu_s ?? 0;

    progress(`watchers: the same with a watcher on each (${watchers} event streams)`);
    const samples: number[] = [];
    meter = startCpuMeter({ server: [stack.server.pid] });
    const identifiers = await busyTasks(stack, 'watched', endpoints, watchers, perTask);
    const counts = await Promise.all(
      identifiers.map((identifier) =>
        watch(`${stack.baseUrl}/${TYPE}/${encodeURIComponent(identifier)}/events`, samples),
      ),
    );
    await allFinal(stack, 'watched', options.timeoutMs);
    const cpuWith = meter.stop();
    const withWatchers = cpuWith.server?.cpu_s ?? 0;
    return {
      watchers,
      tasks: identifiers.length,
      server_cpu_s_without: without,
      server_cpu_s_with: withWatchers,
      server_cpu_ms_per_watcher:
        Math.round(((withWatchers - without) * 1000 * 100) / watchers) / 100,
      events: counts.reduce((a, b) => a + b, 0),
      commit_to_event: latency(samples),
      cpu_with: cpuWith,
    };
  } finally {
    await stack.close();
  }
}
