/**
 * What `tasker send` posts, read from its flags: the endpoints (named, selected, or a
 * broadcast), the payload (a file, JSON, key=value operands), a rollout, a threshold and a
 * priority. Pure;
 * a mistake is a UsageError naming the flag.
 */
import { randomUUID } from 'node:crypto';
import { UsageError } from './exit-codes';

export type Selector = '*' | { labels?: Record<string, string>; status?: 'online' };

export interface SendBody {
  identifier: string;
  payload?: unknown;
  endpoints?: string[] | Selector;
  rollout?: { batch: number | string; max_errors?: number | string; pause?: string };
  success_threshold?: number | string;
  priority?: number;
}

/** the flags' values, by long name */
export type SendValues = Partial<Record<string, string | boolean | string[]>>;

export interface SendContext {
  /** reads `--payload @file` */
  readFile: (path: string) => string;
  /** the identifier of a task sent without --id */
  newIdentifier?: () => string;
}

/** `a,b,c` as names; an empty one is refused, naming the flag */
export function splitList(text: string, what: string): string[] {
  const items = text.split(',').map((item) => item.trim());
  if (items.some((item) => item === '')) {
    throw new UsageError(`${what}: "${text}" has an empty name; give a,b,c`);
  }
  return items;
}

export function sendBody(
  values: SendValues,
  assignments: string[],
  context: SendContext,
): SendBody {
  const body: SendBody = { identifier: (values.id as string | undefined) ?? newId(context) };
  const payload = readPayload(values.payload as string | undefined, assignments, context);
  if (payload !== undefined) body.payload = payload;
  const endpoints = targets(values);
  if (endpoints !== undefined) body.endpoints = endpoints;
  if (values.batch !== undefined) {
    body.rollout = { batch: share(values.batch as string, '--batch') };
    if (values['max-errors'] !== undefined) {
      body.rollout.max_errors = share(values['max-errors'] as string, '--max-errors');
    }
    if (values.pause !== undefined) body.rollout.pause = values.pause as string;
  } else if (values['max-errors'] !== undefined || values.pause !== undefined) {
    throw new UsageError('--max-errors and --pause are for a rollout: give --batch too');
  }
  if (values['success-threshold'] !== undefined) {
    body.success_threshold = share(values['success-threshold'] as string, '--success-threshold');
  }
  if (values.priority !== undefined) {
    const text = values.priority as string;
    if (!/^\d$/.test(text)) throw new UsageError(`--priority must be 0 to 9, got "${text}"`);
    body.priority = Number(text);
  }
  return body;
}

function newId(context: SendContext): string {
  return (context.newIdentifier ?? randomUUID)();
}

/** a count or a percentage, as the API takes them */
function share(text: string, what: string): number | string {
  if (/^\d+$/.test(text)) return Number(text);
  if (/^\d+(\.\d+)?%$/.test(text)) return text;
  throw new UsageError(`${what}: "${text}" is neither a count nor a percentage such as 25%`);
}

/** --endpoints a,b, --select k=v,… or '*' (with --online), or --broadcast: exactly one */
function targets(values: SendValues): SendBody['endpoints'] {
  const given = ['endpoints', 'select', 'broadcast'].filter((name) => values[name]);
  if (given.length === 0 && values.online !== true) {
    throw new UsageError(
      'send needs its endpoints: --endpoints a,b, --select role=web (or "*"), or --broadcast',
    );
  }
  if (given.length > 1) {
    throw new UsageError(`send takes one of --${given.join(', --')}, not several`);
  }
  if (values.endpoints !== undefined) {
    if (values.online === true) throw new UsageError('--online is for --select');
    return splitList(values.endpoints as string, '--endpoints');
  }
  if (values.broadcast === true) {
    if (values.online === true) throw new UsageError('--online is for --select');
    return undefined;
  }
  const select = values.select as string | undefined;
  if (select === '*') {
    if (values.online === true) return { status: 'online' };
    return '*';
  }
  const selector: Exclude<Selector, '*'> = {};
  if (select !== undefined) selector.labels = labels(select);
  if (values.online === true) selector.status = 'online';
  return selector;
}

function labels(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const part of text.split(',')) {
    const at = part.indexOf('=');
    const key = part.slice(0, at).trim();
    if (at < 1 || key === '') {
      throw new UsageError(
        `--select: "${part}" is not label=value (e.g. role=web,dc=fra1, or "*")`,
      );
    }
    result[key] = part.slice(at + 1).trim();
  }
  return result;
}

/**
 * The payload: --payload @file.json or inline JSON, and/or key=value operands merged into it
 * (a value that reads as JSON is that JSON — 2, true, [1,2] — else the text; a.b=1 nests).
 */
function readPayload(
  flag: string | undefined,
  assignments: string[],
  context: SendContext,
): unknown {
  let payload: unknown;
  if (flag !== undefined) {
    const fromFile = flag.startsWith('@');
    let text: string;
    try {
      text = fromFile ? context.readFile(flag.slice(1)) : flag;
    } catch (thrown) {
      throw new UsageError(`--payload: cannot read ${flag.slice(1)}: ${(thrown as Error).message}`);
    }
    try {
      payload = JSON.parse(text);
    } catch (thrown) {
      const where = fromFile ? flag.slice(1) : `"${flag}"`;
      throw new UsageError(`--payload: ${where} is not JSON: ${(thrown as Error).message}`);
    }
  }
  if (assignments.length === 0) return payload;
  if (payload === undefined) payload = {};
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new UsageError('key=value arguments need a payload that is a JSON object');
  }
  for (const assignment of assignments) {
    const at = assignment.indexOf('=');
    if (at < 1) {
      throw new UsageError(`"${assignment}" is not key=value (the payload's fields: seconds=2)`);
    }
    const path = assignment.slice(0, at).split('.');
    if (path.some((key) => key === '' || key === '__proto__')) {
      throw new UsageError(`"${assignment}": a key is empty or __proto__`);
    }
    setPath(payload as Record<string, unknown>, path, jsonOrText(assignment.slice(at + 1)));
  }
  return payload;
}

function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}
