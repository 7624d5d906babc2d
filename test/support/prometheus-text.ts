/**
 * A strict parser of Prometheus's text exposition format (version 0.0.4), for tests that scrape
 * /metrics: it throws, naming the line, on anything Prometheus would refuse (a malformed name,
 * label or value, a TYPE after its samples or given twice, a family split in two, a series given
 * twice, a histogram without its +Inf bucket, with buckets that shrink, or whose count is not
 * its +Inf bucket), so that a test that parses a scrape also checks it.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help: string | null;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly MetricType[] = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

/** A value as Prometheus reads it (Go's ParseFloat: NaN and Inf in any case, as prom-client
 * writes "Nan"). */
function parseValue(text: string, fail: (problem: string) => Error): number {
  const word = text.toLowerCase();
  if (word === 'nan') return Number.NaN;
  if (['inf', '+inf', 'infinity', '+infinity'].includes(word)) return Number.POSITIVE_INFINITY;
  if (['-inf', '-infinity'].includes(word)) return Number.NEGATIVE_INFINITY;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) {
    throw fail(`${JSON.stringify(text)} is not a number`);
  }
  return Number(text);
}

/** The labels of `{a="1",b="2"}` from `start` (at the brace); returns them and the end. */
function parseLabels(
  line: string,
  start: number,
  fail: (problem: string) => Error,
): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    if (line[i] === '}') return { labels, end: i + 1 };
    const eq = line.indexOf('=', i);
    if (eq < 0) throw fail('a label without "="');
    const name = line.slice(i, eq).trim();
    if (!LABEL_NAME.test(name)) throw fail(`bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw fail(`label ${name} given twice`);
    if (line[eq + 1] !== '"') throw fail(`label ${name}'s value is not quoted`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      const c = line[j];
      if (c === undefined) throw fail(`label ${name}'s value is not closed`);
      if (c === '"') break;
      if (c === '\\') {
        const next = line[j + 1];
        if (next === '\\' || next === '"') value += next;
        else if (next === 'n') value += '\n';
        else throw fail(`label ${name} has a bad escape \\${next ?? ''}`);
        j += 2;
        continue;
      }
      value += c;
      j += 1;
    }
    labels[name] = value;
    i = j + 1;
    if (line[i] === ',') i += 1;
    else if (line[i] !== '}') throw fail(`expected "," or "}" after label ${name}`);
  }
}

/** The family a sample belongs to: its own name, or a histogram's or summary's. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const own = families.get(name);
  if (own !== undefined) return own;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const family = families.get(name.slice(0, -suffix.length));
    if (family === undefined) continue;
    if (family.type === 'histogram') return family;
    if (family.type === 'summary' && suffix !== '_bucket') return family;
  }
  return undefined;
}

function checkHistogram(family: Family): void {
  const series = new Map<string, Sample[]>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    if (sample.name === `${family.name}_bucket` && le === undefined) {
      throw new Error(`${family.name}: a bucket without le`);
    }
    series.set(key, [...(series.get(key) ?? []), sample]);
  }
  for (const [key, samples] of series) {
    const buckets = samples.filter((s) => s.name === `${family.name}_bucket`);
    const count = samples.find((s) => s.name === `${family.name}_count`);
    const sum = samples.find((s) => s.name === `${family.name}_sum`);
    const inf = buckets.find((s) => s.labels.le === '+Inf');
    if (inf === undefined || count === undefined || sum === undefined) {
      throw new Error(`${family.name}${key}: needs a +Inf bucket, _sum and _count`);
    }
    let previous = -Infinity;
    let previousCount = 0;
    for (const bucket of buckets) {
      const le = parseValue(bucket.labels.le as string, (p) => new Error(p));
      if (le <= previous) throw new Error(`${family.name}${key}: buckets out of order`);
      if (bucket.value < previousCount) throw new Error(`${family.name}${key}: a bucket shrinks`);
      previous = le;
      previousCount = bucket.value;
    }
    if (count.value !== inf.value) {
      throw new Error(`${family.name}${key}: _count ${count.value} is not +Inf ${inf.value}`);
    }
  }
}

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const typed = new Set<string>();
  const seenSeries = new Set<string>();
  /** families left for another: none may come back */
  const closed = new Set<string>();
  let current: Family | null = null;
  const enter = (family: Family, fail: (problem: string) => Error): void => {
    if (current === family) return;
    if (closed.has(family.name)) throw fail(`family ${family.name} is split in two`);
    if (current !== null) closed.add(current.name);
    current = family;
  };
  const lines = text.split('\n');
  if (lines[lines.length - 1] !== '') throw new Error('the text must end with a line feed');
  for (const [index, line] of lines.entries()) {
    const fail = (problem: string): Error =>
      new Error(`line ${index + 1}: ${problem}: ${JSON.stringify(line)}`);
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const match = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (match === null) continue; // a comment
      const [, keyword, name, rest] = match as unknown as [string, string, string, string?];
      if (!METRIC_NAME.test(name)) throw fail(`bad metric name ${JSON.stringify(name)}`);
      let family = families.get(name);
      if (family === undefined) {
        family = { name, type: 'untyped', help: null, samples: [] };
        families.set(name, family);
      }
      enter(family, fail);
      if (keyword === 'HELP') {
        if (family.help !== null) throw fail(`HELP of ${name} given twice`);
        family.help = rest ?? '';
      } else {
        const type = (rest ?? '').trim() as MetricType;
        if (!TYPES.includes(type)) throw fail(`unknown type ${JSON.stringify(type)}`);
        if (family.samples.length > 0) throw fail(`TYPE of ${name} after its samples`);
        if (typed.has(name)) throw fail(`TYPE of ${name} given twice`);
        typed.add(name);
        family.type = type;
      }
      continue;
    }
    const nameEnd = line.search(/[{ \t]/);
    if (nameEnd <= 0) throw fail('a sample needs a name and a value');
    const name = line.slice(0, nameEnd);
    if (!METRIC_NAME.test(name)) throw fail(`bad metric name ${JSON.stringify(name)}`);
    let labels: Record<string, string> = {};
    let restStart = nameEnd;
    if (line[nameEnd] === '{') {
      const parsed = parseLabels(line, nameEnd, fail);
      labels = parsed.labels;
      restStart = parsed.end;
    }
    const rest = line
      .slice(restStart)
      .trim()
      .split(/[ \t]+/);
    if (rest.length > 2 || rest[0] === '') throw fail('expected a value and maybe a timestamp');
    const value = parseValue(rest[0] as string, fail);
    if (rest[1] !== undefined && !/^-?\d+$/.test(rest[1])) throw fail('bad timestamp');
    let family = familyOf(name, families);
    if (family === undefined) {
      family = { name, type: 'untyped', help: null, samples: [] };
      families.set(name, family);
    }
    enter(family, fail);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seenSeries.has(key)) throw fail('a series given twice');
    seenSeries.add(key);
    family.samples.push({ name, labels, value });
  }
  for (const family of families.values()) {
    if (family.type === 'histogram') checkHistogram(family);
  }
  return families;
}

/**
 * The value of the one sample named `name` whose labels include `labels`, or 0 when there is
 * none (a counter with those labels not yet moved); more than one such sample is an error.
 */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const matches = [...families.values()]
    .flatMap((family) => family.samples)
    .filter(
      (sample) =>
        sample.name === name &&
        Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
    );
  if (matches.length > 1) {
    throw new Error(`${name}${JSON.stringify(labels)} matches ${matches.length} samples`);
  }
  return matches[0]?.value ?? 0;
}
