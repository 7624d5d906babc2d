/**
 * The server's metrics without services: what committed changes count, the probe that reads the
 * database at scrape time, and the strict parser the integration tests read scrapes with.
 */
import { AgentMetrics, CachedProbe, ServerMetrics } from '../../src/metrics';
import { countChanges } from '../../src/server';
import type { ResponseRow, TaskChange, TaskRow } from '../../src/store';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text';

const task = (status: string, type = 'worker'): TaskRow => ({ id: 1, type, status }) as TaskRow;
const row = (endpoint: string, status: string): ResponseRow =>
  ({ task_id: 1, endpoint, status }) as ResponseRow;

async function scrape(metrics: ServerMetrics) {
  return parsePrometheusText(await metrics.render());
}

describe('countChanges', () => {
  it('counts a task once when it becomes final, and each row that moved to a status', async () => {
    const metrics = new ServerMetrics({ defaultMetrics: false });
    const changes: TaskChange[] = [
      // the recorder: a1 finished, a2 started running, a3 repeated what it had
      {
        task: task('SENT'),
        statusBefore: 'SENT',
        rows: [row('a1', 'DONE'), row('a2', 'RUNNING'), row('a3', 'RUNNING')],
        rowStatusBefore: new Map([
          ['a1', 'RUNNING'],
          ['a2', 'RECEIVED'],
          ['a3', 'RUNNING'],
        ]),
      },
      // the sweeper: the last row UNDELIVERED, the task final
      {
        task: task('INCOMPLETE'),
        statusBefore: 'SENT',
        rows: [row('a4', 'UNDELIVERED')],
        rowStatusBefore: new Map([['a4', 'PENDING']]),
      },
      // a late fact changes which final state: not finished again
      { task: task('FAILED'), statusBefore: 'INCOMPLETE', rows: [] },
      // an endpoint that answers a broadcast gets a new row
      { task: task('SENT', 'backup'), statusBefore: 'SENT', rows: [row('b1', 'RECEIVED')] },
      // the intake and the relay: no statusBefore, nothing finished
      { task: task('SENT'), rows: [] },
    ];
    countChanges(metrics, changes);
    const families = await scrape(metrics);
    const finished = (labels: Record<string, string>) =>
      sampleValue(families, 'tasker_tasks_finished_total', labels);
    expect(finished({ type: 'worker', status: 'INCOMPLETE' })).toBe(1);
    expect(finished({ type: 'worker', status: 'FAILED' })).toBe(0);
    expect(families.get('tasker_tasks_finished_total')?.samples).toHaveLength(1);
    const responses = (type: string, status: string) =>
      sampleValue(families, 'tasker_responses_total', { type, status });
    expect(responses('worker', 'DONE')).toBe(1);
    expect(responses('worker', 'RUNNING')).toBe(1);
    expect(responses('worker', 'UNDELIVERED')).toBe(1);
    expect(responses('backup', 'RECEIVED')).toBe(1);
    expect(families.get('tasker_responses_total')?.samples).toHaveLength(4);
  });
});

describe('ServerMetrics', () => {
  it('leaves out the gauges read from the database when it did not answer', async () => {
    const metrics = new ServerMetrics({ defaultMetrics: false, watchers: () => 3 });
    metrics.database({
      outboxDepth: 4,
      outboxOldestAgeSeconds: 1.5,
      endpoints: { online: 2, offline: 1, stopped: 0 },
    });
    let families = await scrape(metrics);
    expect(sampleValue(families, 'tasker_database_up')).toBe(1);
    expect(sampleValue(families, 'tasker_outbox_depth')).toBe(4);
    expect(sampleValue(families, 'tasker_outbox_oldest_age_seconds')).toBe(1.5);
    expect(sampleValue(families, 'tasker_endpoints', { status: 'offline' })).toBe(1);
    expect(sampleValue(families, 'tasker_watchers')).toBe(3);
    metrics.database(null);
    families = await scrape(metrics);
    expect(sampleValue(families, 'tasker_database_up')).toBe(0);
    expect(families.has('tasker_outbox_depth')).toBe(false);
    expect(families.has('tasker_endpoints')).toBe(false);
    expect(families.get('tasker_tasks_created_total')?.type).toBe('counter');
  });

  it('keeps each registry apart, so that servers in one process do not share counts', async () => {
    const one = new ServerMetrics();
    const two = new ServerMetrics();
    one.taskCreated('worker');
    expect(sampleValue(await scrape(one), 'tasker_tasks_created_total', { type: 'worker' })).toBe(
      1,
    );
    const other = await scrape(two);
    expect(sampleValue(other, 'tasker_tasks_created_total', { type: 'worker' })).toBe(0);
    // the process's own metrics come along
    expect(other.get('process_cpu_seconds_total')?.type).toBe('counter');
  });

  it('counts recorder events by outcome and never observes a negative age', async () => {
    const metrics = new ServerMetrics({ defaultMetrics: false });
    metrics.eventsCommitted({ applied: 2, ignored: 1, orphaned: 0 }, [0.2, -3, 40]);
    metrics.recorderBatchTaken(7);
    const families = await scrape(metrics);
    expect(sampleValue(families, 'tasker_recorder_events_total', { outcome: 'applied' })).toBe(2);
    expect(sampleValue(families, 'tasker_recorder_events_total', { outcome: 'ignored' })).toBe(1);
    expect(sampleValue(families, 'tasker_recorder_lag_seconds_count')).toBe(3);
    expect(sampleValue(families, 'tasker_recorder_lag_seconds_bucket', { le: '0.01' })).toBe(1);
    expect(sampleValue(families, 'tasker_recorder_lag_seconds_bucket', { le: '30' })).toBe(2);
    expect(sampleValue(families, 'tasker_recorder_batch_messages_sum')).toBe(7);
  });
});

describe('AgentMetrics', () => {
  it('counts runs of attempt 2 and up as retries, and reads what runs when scraped', async () => {
    let running = 2;
    const metrics = new AgentMetrics({ running: () => running, defaultMetrics: false });
    metrics.runStarted('worker', 1);
    metrics.runStarted('worker', 2);
    metrics.runStarted('worker', 3);
    metrics.handlerRan('worker', 'TIMED_OUT', 1.5);
    let families = parsePrometheusText(await metrics.render());
    expect(sampleValue(families, 'tasker_agent_retries_total', { type: 'worker' })).toBe(2);
    expect(sampleValue(families, 'tasker_agent_running')).toBe(2);
    expect(
      sampleValue(families, 'tasker_agent_handler_duration_seconds_sum', {
        type: 'worker',
        status: 'TIMED_OUT',
      }),
    ).toBe(1.5);
    running = 0;
    families = parsePrometheusText(await metrics.render());
    expect(sampleValue(families, 'tasker_agent_running')).toBe(0);
  });
});

describe('CachedProbe', () => {
  it('shares one read within its time to live, and reads again after it', async () => {
    let clock = 0;
    let reads = 0;
    const probe = new CachedProbe(async () => ++reads, {
      ttlMs: 5000,
      timeoutMs: 1000,
      now: () => clock,
    });
    expect(await Promise.all([probe.get(), probe.get()])).toEqual([1, 1]);
    clock = 4999;
    expect(await probe.get()).toBe(1);
    clock = 5000;
    expect(await probe.get()).toBe(2);
  });

  it('gives null for a read that fails or does not answer in time, and keeps it', async () => {
    let clock = 0;
    let fail = true;
    const failing = new CachedProbe(
      async () => {
        if (fail) throw new Error('database away');
        return 'figures';
      },
      { ttlMs: 1000, timeoutMs: 1000, now: () => clock },
    );
    expect(await failing.get()).toBeNull();
    fail = false;
    expect(await failing.get()).toBeNull();
    clock = 1000;
    expect(await failing.get()).toBe('figures');
    const hanging = new CachedProbe(() => new Promise<string>(() => undefined), {
      ttlMs: 1000,
      timeoutMs: 20,
    });
    expect(await hanging.get()).toBeNull();
  });
});

describe('parsePrometheusText', () => {
  it('reads families, help, labels with escapes, and special values', () => {
    const families = parsePrometheusText(
      [
        '# HELP a_total Things that happened.',
        '# TYPE a_total counter',
        'a_total{path="C:\\\\x",say="a \\"b\\"\\nc"} 3',
        'a_total{path="y",say=""} 1e3 1700000000000',
        '# a comment',
        'b NaN',
        'c{x="1",} -Inf',
        '',
      ].join('\n'),
    );
    expect(families.get('a_total')).toMatchObject({
      type: 'counter',
      help: 'Things that happened.',
    });
    expect(families.get('a_total')?.samples[0]?.labels).toEqual({ path: 'C:\\x', say: 'a "b"\nc' });
    expect(sampleValue(families, 'a_total', { path: 'y' })).toBe(1000);
    expect(sampleValue(families, 'b')).toBeNaN();
    expect(sampleValue(families, 'c')).toBe(-Infinity);
  });

  it.each([
    ['no final line feed', 'a 1'],
    ['a bad name', '1a 1\n'],
    ['a value that is no number', 'a one\n'],
    ['an unquoted label', 'a{b=1} 1\n'],
    ['an unclosed label', 'a{b="1} 1\n'],
    ['a bad escape', 'a{b="\\t"} 1\n'],
    ['a label twice', 'a{b="1",b="2"} 1\n'],
    ['a series twice', 'a{b="1"} 1\na{b="1"} 2\n'],
    ['a type after samples', 'a 1\n# TYPE a counter\n'],
    ['an unknown type', '# TYPE a meter\n'],
    ['a split family', 'a 1\nb 1\na{c="d"} 1\n'],
    ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
    [
      'a histogram whose buckets shrink',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    ],
    [
      'a histogram whose count is not +Inf',
      '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n',
    ],
  ])('refuses %s', (_what, text) => {
    expect(() => parsePrometheusText(text)).toThrow();
  });
});
