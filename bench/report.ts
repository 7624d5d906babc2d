/**
 * The results: the targets checked against the measured figures, a table for people,
 * and the JSON shape written to bench/results/latest.json.
 */
import type { AmqpCeiling } from './phases/ceiling-amqp';
import type { MariaDbCeiling } from './phases/ceiling-mariadb';
import type { E2ePhase } from './phases/e2e';
import type { PostPhase } from './phases/post';
import type { SoakPhase } from './phases/soak';
import type { WidthPhase } from './phases/width';
import type { HeartbeatPhase, ListingPhase } from './phases/fleet';
import type { WatchersResult } from './phases/watchers';
import type { HandlerCost } from './phases/handler-cost';
import { formatCpu } from './lib/cpu-meter';
import { perUnit } from './lib/db-meter';
import { fmtInt, fmtMb, fmtMs } from './lib/stats';

export interface Results {
  run_id: string;
  mode: 'quick' | 'full';
  started_at: string;
  finished_at: string;
  machine: Record<string, unknown>;
  /** amqp_post: the broker alone, shaped like the POST phase (no consumers, its in-flight count) */
  ceilings: { amqp?: AmqpCeiling; amqp_post?: AmqpCeiling; mariadb?: MariaDbCeiling };
  post?: PostPhase;
  /** the POST phase again: with two servers, with quorum queues */
  scale?: { two_servers?: PostPhase; quorum?: PostPhase };
  e2e?: E2ePhase;
  width?: WidthPhase;
  soak?: SoakPhase;
  soak_pipeline?: SoakPhase;
  soak_pipeline_rabbitmq?: SoakPhase;
  listing?: ListingPhase;
  heartbeats?: HeartbeatPhase;
  watchers?: WatchersResult;
  handler_costs?: HandlerCost[];
  peak_rss: { server_bytes: number | null; agent_bytes: number | null };
  targets: Target[];
  errors: Array<{ phase: string; message: string }>;
}

export interface Target {
  name: string;
  measured: number | null;
  unit: string;
  /** "≥ 2000" */
  target: string;
  pass: boolean | null;
}

function atLeast(name: string, measured: number | null, min: number, unit: string): Target {
  return {
    name,
    measured,
    unit,
    target: `>= ${min}`,
    pass: measured === null ? null : measured >= min,
  };
}

function atMost(name: string, measured: number | null, max: number, unit: string): Target {
  return {
    name,
    measured,
    unit,
    target: `<= ${max}`,
    pass: measured === null ? null : measured <= max,
  };
}

const MB = 1024 * 1024;

export function checkTargets(r: Omit<Results, 'targets'>): Target[] {
  const ceiling = r.ceilings.amqp?.deliveries_per_s ?? null;
  const e2eRate = r.e2e?.completed === true ? r.e2e.endpoint_responses_per_s : null;
  const share = e2eRate === null || ceiling === null ? null : (100 * e2eRate) / ceiling;
  const mb = (bytes: number | null): number | null =>
    bytes === null ? null : Math.round(bytes / MB);
  return [
    atLeast('POST throughput', r.post?.tasks_per_s ?? null, 2000, 'tasks/s'),
    atMost('POST p99 latency', r.post?.latency.p99_ms ?? null, 50, 'ms'),
    atLeast('end to end', e2eRate, 5000, 'responses/s'),
    atLeast(
      'end to end / broker ceiling',
      share === null ? null : Math.round(share * 10) / 10,
      30,
      '%',
    ),
    atMost('1 task x 1,000 endpoints DONE', r.width?.warm_done_ms ?? null, 5000, 'ms'),
    atMost('GET of that task (median)', r.width?.get.p50_ms ?? null, 50, 'ms'),
    atMost('server peak RSS', mb(r.peak_rss.server_bytes), 250, 'MB'),
    atMost('agent peak RSS', mb(r.peak_rss.agent_bytes), 100, 'MB'),
  ];
}

function table(rows: string[][]): string {
  const widths =
    rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  const line = (row: string[]): string =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0] ?? []), rule, ...rows.slice(1).map(line)].join('\n');
}

export function render(r: Results): string {
  const out: string[] = [];
  out.push(`tasker benchmark ${r.run_id} (${r.mode}), ${r.started_at}`);
  out.push(
    Object.entries(r.machine)
      .map(([k, v]) => `${k}: ${String(v)}`)
      .join(', '),
  );
  out.push('');
  const rows: string[][] = [['measurement', 'value']];
  const { amqp, amqp_post: amqpPost, mariadb } = r.ceilings;
  if (amqp) {
    rows.push([
      `ceiling: RabbitMQ fanout to ${amqp.queues} queues, persistent, confirmed`,
      `${fmtInt(amqp.deliveries_per_s)} deliveries/s`,
    ]);
    rows.push([
      `  publishes confirmed (${fmtInt(amqp.in_flight)} in flight)`,
      `${fmtInt(amqp.publish_confirms_per_s)} msg/s`,
    ]);
    rows.push(['  CPU, % of one core', formatCpu(amqp.cpu)]);
  }
  if (amqpPost) {
    rows.push([
      `ceiling for POST: the same, ${fmtInt(amqpPost.in_flight)} in flight, no consumers`,
      `${fmtInt(amqpPost.publish_confirms_per_s)} msg/s`,
    ]);
    rows.push([
      '  confirm latency p50 / p99; broker CPU per publish',
      `${fmtMs(amqpPost.confirm_latency.p50_ms)} / ${fmtMs(amqpPost.confirm_latency.p99_ms)}; ` +
        `${amqpPost.broker_cpu_ms_per_publish?.toFixed(2) ?? '-'} ms`,
    ]);
  }
  if (mariadb) {
    rows.push([
      `ceiling: MariaDB INSERT, ${mariadb.rows_per_statement} rows/statement, ${mariadb.connections} connections`,
      `${fmtInt(mariadb.rows_per_s)} rows/s`,
    ]);
    rows.push(['  CPU, % of one core', formatCpu(mariadb.cpu)]);
  }
  const p = r.post;
  if (p) {
    rows.push([
      `POST, ${p.concurrency} in flight, ${p.endpoints_per_task} endpoints/task`,
      `${fmtInt(p.tasks_per_s)} tasks/s`,
    ]);
    rows.push([
      '  latency p50 / p90 / p99 / max',
      `${fmtMs(p.latency.p50_ms)} / ${fmtMs(p.latency.p90_ms)} / ${fmtMs(p.latency.p99_ms)} / ${fmtMs(p.latency.max_ms)}`,
    ]);
    rows.push([
      '  mean wait per POST: write / publish to confirm / mark SENT / rest',
      [p.steps.write_ms, p.steps.publish_ms, p.steps.mark_ms, p.steps.rest_ms]
        .map((ms) => (ms === null ? '-' : `${ms.toFixed(1)} ms`))
        .join(' / '),
    ]);
    rows.push(['  CPU, % of one core', formatCpu(p.cpu)]);
    rows.push(['  MariaDB', perUnit(p.db_status_delta, p.accepted, 'task')]);
    rows.push([
      '  answered SENT / CREATED / errors',
      `${fmtInt(p.answered_sent)} / ${fmtInt(p.answered_created)} / ${fmtInt(Object.values(p.errors).reduce((a, b) => a + b, 0))}`,
    ]);
  }
  // what one accepted task costs each part, for sizing (docs/scaling.md)
  const costs: Array<[string, PostPhase | undefined]> = [
    ['one server, classic queues', r.post],
    ['two servers, classic queues', r.scale?.two_servers],
    ['one server, quorum queues', r.scale?.quorum],
  ];
  for (const [what, phase] of costs) {
    if (!phase) continue;
    const ms = (role: string): string => {
      const share = phase.cpu[role];
      return share === undefined || phase.accepted === 0
        ? '-'
        : ((share.cpu_s * 1000) / phase.accepted).toFixed(2);
    };
    rows.push([
      `POST, ${what}: tasks/s, p99; CPU ms per task: server(s) / RabbitMQ / MariaDB`,
      `${fmtInt(phase.tasks_per_s)}, ${fmtMs(phase.latency.p99_ms)}; ${ms('server')} / ${ms('rabbitmq')} / ${ms('mariadb')}`,
    ]);
  }
  const e = r.e2e;
  if (e) {
    rows.push([
      `end to end, ${fmtInt(e.tasks)} tasks x ${e.endpoints_per_task} endpoints${e.completed ? '' : ' (DID NOT FINISH)'}`,
      `${fmtInt(e.endpoint_responses_per_s)} responses/s`,
    ]);
    rows.push(['  wall time (of which POSTing)', `${fmtMs(e.elapsed_ms)} (${fmtMs(e.post_ms)})`]);
    rows.push([
      '  POST under load: rate, p50 / p99, SENT / CREATED',
      `${fmtInt(e.post_tasks_per_s)} tasks/s, ${fmtMs(e.post_latency.p50_ms)} / ` +
        `${fmtMs(e.post_latency.p99_ms)}, ${fmtInt(e.post_answered_sent)} / ` +
        `${fmtInt(e.post_answered_created)}`,
    ]);
    rows.push([
      '  peak backlog: task queues / results queue',
      `${fmtInt(e.peak_task_queue_backlog)} / ${fmtInt(e.peak_results_queue_backlog)}`,
    ]);
    rows.push(['  tasks by status', JSON.stringify(e.task_status)]);
    rows.push(['  CPU while POSTing, % of one core', formatCpu(e.cpu_while_posting)]);
    rows.push(['  CPU after POSTing', formatCpu(e.cpu_after_posting)]);
    rows.push(['  MariaDB', perUnit(e.db_status_delta, e.tasks, 'task')]);
  }
  const w = r.width;
  if (w) {
    rows.push([
      `width: 1 task x ${fmtInt(w.endpoints)} endpoints, DONE after (warm)`,
      fmtMs(w.warm_done_ms),
    ]);
    rows.push(['  first task (server declares the queues)', fmtMs(w.cold_done_ms)]);
    rows.push([
      `  GET of that task, median / max (${fmtInt(w.get_bytes)} bytes)`,
      `${fmtMs(w.get.p50_ms)} / ${fmtMs(w.get.max_ms)}`,
    ]);
    rows.push([
      `  agents: ${w.agent_processes} processes, ${w.connections}`,
      `started in ${fmtMs(w.agents_start_ms)}`,
    ]);
    rows.push(['  agent host process peak RSS', fmtMb(w.agent_host_peak_rss_bytes)]);
    rows.push(['  CPU over the rounds, % of one core', formatCpu(w.cpu)]);
    const ro = w.rollout;
    rows.push([
      `  one task in waves of ${ro.batch} (${ro.waves} waves), ${ro.status} after`,
      fmtMs(ro.done_ms),
    ]);
    const n = w.narrow;
    rows.push([
      `  ${n.tasks} tasks each to ${n.addressed} of ${n.queues} endpoints: CPU per task, RabbitMQ / server`,
      `${n.rabbitmq_cpu_ms_per_task} / ${n.server_cpu_ms_per_task} ms (all final after ${fmtMs(n.done_ms)})`,
    ]);
  }
  const wa = r.watchers;
  if (wa) {
    rows.push([
      `watchers: ${wa.watchers} event streams on busy tasks, server CPU ms per watcher`,
      `${wa.server_cpu_ms_per_watcher} (${wa.server_cpu_s_without} s -> ${wa.server_cpu_s_with} s)`,
    ]);
    rows.push([
      `  commit -> event read, p50 / p99 (${fmtInt(wa.events)} events)`,
      `${fmtMs(wa.commit_to_event.p50_ms)} / ${fmtMs(wa.commit_to_event.p99_ms)}`,
    ]);
    const wn = wa.narrow;
    rows.push([
      `  ${wn.tasks} tasks each to ${wn.addressed} of ${wn.queues} endpoints: CPU per task, RabbitMQ / server`,
      `${wn.rabbitmq_cpu_ms_per_task} / ${wn.server_cpu_ms_per_task} ms (all final after ${fmtMs(wn.done_ms)})`,
    ]);
  }
  const soaks: Array<[string, SoakPhase | undefined]> = [
    ['through one agent, in-process broker', r.soak],
    ['POSTed to server + agent in one process, MariaDB, in-process broker', r.soak_pipeline],
    ['POSTed to server + agent in one process, MariaDB, RabbitMQ', r.soak_pipeline_rabbitmq],
  ];
  for (const [what, k] of soaks) {
    if (!k) continue;
    rows.push([`soak: ${fmtInt(k.tasks)} tasks ${what}`, `${fmtInt(k.tasks_per_s)} tasks/s`]);
    rows.push([
      '  heap and Buffers kept per task, after a full GC (before / after)',
      `${fmtInt(k.heap_bytes_per_task)} bytes (${fmtMb(k.heap_before_bytes)} / ${fmtMb(k.heap_after_bytes)})`,
    ]);
  }
  const l = r.listing;
  if (l) {
    rows.push([
      `listing: ${fmtInt(l.tasks)} tasks, ${fmtInt(l.responses)} responses (filled in)`,
      fmtMs(l.fill_ms),
    ]);
    for (const q of l.queries) {
      rows.push([
        `  GET ${q.name}, 50 per page: median / p99`,
        `${fmtMs(q.latency.p50_ms)} / ${fmtMs(q.latency.p99_ms)}`,
      ]);
    }
  }
  const h = r.heartbeats;
  if (h) {
    rows.push([
      `heartbeats: ${fmtInt(h.endpoints)} endpoints every 15 s (${fmtInt(h.heartbeats_per_s)}/s)`,
      `${fmtInt(h.registry_rows)} registry rows`,
    ]);
    rows.push([
      '  CPU ms per heartbeat: server / MariaDB',
      `${h.server_cpu_ms_per_heartbeat ?? '-'} / ${h.mariadb_cpu_ms_per_heartbeat ?? '-'}`,
    ]);
    rows.push([
      '  MariaDB per heartbeat: statements / commits',
      `${h.db_per_heartbeat.statements} / ${h.db_per_heartbeat.commits}`,
    ]);
    rows.push([
      '  tasks POST -> DONE p50 / p99: without heartbeats',
      `${fmtMs(h.without.done.p50_ms)} / ${fmtMs(h.without.done.p99_ms)}`,
    ]);
    rows.push([
      '  the same with heartbeats',
      `${fmtMs(h.with.done.p50_ms)} / ${fmtMs(h.with.done.p99_ms)}`,
    ]);
    rows.push(['  CPU with heartbeats, % of one core', formatCpu(h.with.cpu)]);
  }
  for (const cost of r.handler_costs ?? []) {
    rows.push([
      `agent CPU per task: ${cost.handler} (${fmtInt(cost.tasks)} tasks)`,
      `${cost.cpu_ms_per_task} ms, ${fmtInt(cost.tasks_per_s)} tasks/s`,
    ]);
  }
  rows.push([
    'peak RSS: server (max over phases) / one agent process',
    `${fmtMb(r.peak_rss.server_bytes)} / ${fmtMb(r.peak_rss.agent_bytes)}`,
  ]);
  out.push(table(rows));
  out.push('');
  const targets: string[][] = [['target', 'measured', 'goal', 'result']];
  for (const t of r.targets) {
    targets.push([
      t.name,
      t.measured === null ? '-' : `${fmtInt(t.measured)} ${t.unit}`,
      `${t.target} ${t.unit}`,
      t.pass === null ? 'n/a' : t.pass ? 'pass' : 'MISS',
    ]);
  }
  out.push(table(targets));
  if (amqpPost) {
    out.push(
      `(POST can be no faster than RabbitMQ alone: ${fmtInt(amqpPost.publish_confirms_per_s)} ` +
        `confirmed fanout publishes/s at ${fmtInt(amqpPost.in_flight)} in flight, ` +
        `p99 ${fmtMs(amqpPost.confirm_latency.p99_ms)}, measured above with nothing else running)`,
    );
  }
  out.push('(the original Python tasker: ~30 tasks/s POST, ~40 endpoint responses/s)');
  for (const err of r.errors) out.push(`ERROR in ${err.phase}: ${err.message}`);
  return out.join('\n');
}
