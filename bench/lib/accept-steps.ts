/**
 * Where a POST's time goes: the servers' `tasker_task_accept_step_seconds` (write, publish,
 * mark) and their POST requests' `tasker_http_request_duration_seconds`, read from /metrics
 * before and after a load (parsed, and so checked, by the tests' strict parser). The difference gives each step's mean, and what the request spent
 * besides them (HTTP, checks, waiting for the event loop).
 */
import { parsePrometheusText, type Sample } from '../../test/support/prometheus-text';
import { keepAliveAgent, request } from './http-load';

export interface StepTotals {
  /** seconds summed and observations, by step ('write', 'publish', 'mark', 'request') */
  [step: string]: { seconds: number; count: number };
}

/** Mean milliseconds per accepted task of each step, and of the rest of the request. */
export interface AcceptSteps {
  write_ms: number | null;
  publish_ms: number | null;
  mark_ms: number | null;
  request_ms: number | null;
  rest_ms: number | null;
}

/** The step a sample adds to, if any: a step of the histogram, or the POST requests' time. */
function stepOf(sample: Sample): string | null {
  const { labels } = sample;
  if (sample.name.startsWith('tasker_task_accept_step_seconds_')) return labels.step ?? null;
  return labels.method === 'POST' && labels.route === '/:type' ? 'request' : null;
}

/** The step sums of one scrape of these servers together. */
export async function scrapeSteps(baseUrls: readonly string[]): Promise<StepTotals> {
  const agent = keepAliveAgent(1);
  const totals: StepTotals = {};
  try {
    for (const base of baseUrls) {
      const { status, body } = await request(agent, `${base}/metrics`, 'GET');
      if (status !== 200) throw new Error(`GET ${base}/metrics answered ${status}`);
      const families = parsePrometheusText(body);
      for (const name of [
        'tasker_task_accept_step_seconds',
        'tasker_http_request_duration_seconds',
      ]) {
        for (const sample of families.get(name)?.samples ?? []) {
          const step = stepOf(sample);
          if (step === null) continue;
          const entry = (totals[step] ??= { seconds: 0, count: 0 });
          if (sample.name === `${name}_sum`) entry.seconds += sample.value;
          else if (sample.name === `${name}_count`) entry.count += sample.value;
        }
      }
    }
  } finally {
    agent.destroy();
  }
  return totals;
}

/** The mean of each step between two scrapes, in ms. */
export function stepMeans(before: StepTotals, after: StepTotals): AcceptSteps {
  const mean = (step: string): number | null => {
    const a = after[step];
    const b = before[step] ?? { seconds: 0, count: 0 };
    if (a === undefined || a.count <= b.count) return null;
    return Math.round((100_000 * (a.seconds - b.seconds)) / (a.count - b.count)) / 100;
  };
  const [write, publish, mark, requestMs] = ['write', 'publish', 'mark', 'request'].map(mean);
  const steps = [write, publish, mark];
  const rest =
    requestMs == null || steps.some((s) => s == null)
      ? null
      : Math.round(100 * (requestMs - steps.reduce<number>((sum, s) => sum + (s ?? 0), 0))) / 100;
  return {
    write_ms: write ?? null,
    publish_ms: publish ?? null,
    mark_ms: mark ?? null,
    request_ms: requestMs ?? null,
    rest_ms: rest,
  };
}
