/**
 * The client's command line, read into what to ask the server: pure, so every rule about it
 * is tested without a server. A mistake is a UsageError naming the argument.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { UsageError } from './exit-codes';

export const CLIENT_COMMANDS = [
  'send',
  'get',
  'watch',
  'list',
  'cancel',
  'retry',
  'endpoints',
  'schedules',
] as const;
export type ClientCommand = (typeof CLIENT_COMMANDS)[number];

export function isClientCommand(word: string | undefined): word is ClientCommand {
  return (CLIENT_COMMANDS as readonly string[]).includes(word ?? '');
}

/** where the server is: --url or $TASKER_URL, --token or $TASKER_TOKEN */
export interface Connection {
  url: string;
  token: string | null;
}

export const DEFAULT_URL = 'http://localhost:8888';

export type Selector = '*' | { labels?: Record<string, string>; status?: 'online' };

export interface SendBody {
  identifier: string;
  payload?: unknown;
  endpoints?: string[] | Selector;
  rollout?: { batch: number | string; max_errors?: number | string; pause?: string };
  success_threshold?: number | string;
}

export type ClientRequest =
  | { command: 'send'; type: string; body: SendBody; wait: boolean }
  | { command: 'get' | 'watch'; type: string; identifier: string }
  | { command: 'list'; type: string | null; query: Array<[string, string]> }
  | {
      command: 'cancel';
      type: string;
      identifier: string;
      body: { endpoints?: string[]; reason?: string };
    }
  | {
      command: 'retry';
      type: string;
      identifier: string;
      body: { endpoints?: string[] };
      wait: boolean;
    }
  | { command: 'endpoints'; name: string | null; query: Array<[string, string]> }
  | { command: 'schedules' };

export interface ClientInvocation {
  connection: Connection;
  /** machine-readable output: the API's JSON, one document */
  json: boolean;
  /** what to ask; null for --help, which asks nothing */
  request: ClientRequest | null;
}

const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  endpoints: { type: 'string' },
  select: { type: 'string' },
  online: { type: 'boolean' },
  broadcast: { type: 'boolean' },
  payload: { type: 'string' },
  id: { type: 'string' },
  wait: { type: 'boolean' },
  batch: { type: 'string' },
  'max-errors': { type: 'string' },
  pause: { type: 'string' },
  'success-threshold': { type: 'string' },
  reason: { type: 'string' },
  status: { type: 'string' },
  endpoint: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  'id-prefix': { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  type: { type: 'string' },
  label: { type: 'string', multiple: true },
  version: { type: 'string' },
  after: { type: 'string' },
} as const;
type Option = keyof typeof OPTIONS;

const COMMON: Option[] = ['url', 'token', 'json', 'help'];
/** each command's own options; any other is refused, naming the command */
const ALLOWED: Record<ClientCommand, Option[]> = {
  send: [
    'endpoints',
    'select',
    'online',
    'broadcast',
    'payload',
    'id',
    'wait',
    'batch',
    'max-errors',
    'pause',
    'success-threshold',
  ],
  get: [],
  watch: [],
  list: ['status', 'endpoint', 'since', 'until', 'id-prefix', 'limit', 'cursor'],
  cancel: ['endpoints', 'reason'],
  retry: ['endpoints', 'wait'],
  endpoints: ['type', 'label', 'status', 'version', 'limit', 'after'],
  schedules: [],
};

/** the operands each command takes: [required…], and whether more (send's k=v) may follow */
const OPERANDS: Record<ClientCommand, { required: string[]; optional: string[] }> = {
  send: { required: ['TYPE'], optional: [] },
  get: { required: ['TYPE', 'IDENTIFIER'], optional: [] },
  watch: { required: ['TYPE', 'IDENTIFIER'], optional: [] },
  list: { required: [], optional: ['TYPE'] },
  cancel: { required: ['TYPE', 'IDENTIFIER'], optional: [] },
  retry: { required: ['TYPE', 'IDENTIFIER'], optional: [] },
  endpoints: { required: [], optional: ['NAME'] },
  schedules: { required: [], optional: [] },
};

export interface ArgsContext {
  env: NodeJS.ProcessEnv;
  /** reads `--payload @file` */
  readFile: (path: string) => string;
  /** the identifier of a task sent without --id */
  newIdentifier?: () => string;
}

/** Read `argv` (the command first: `send worker --endpoints a,b`) into a request. */
export function parseClientArgs(argv: string[], context: ArgsContext): ClientInvocation {
  const [command, ...rest] = argv;
  if (!isClientCommand(command)) throw new UsageError(`unknown command "${command ?? ''}"`);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (thrown) {
    const message = (thrown as Error).message;
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    throw new UsageError(
      unknown === null
        ? `${command}: ${message}`
        : `${command}: unknown option ${unknown[1]} (tasker ${command} --help lists them)`,
    );
  }
  const { values, positionals } = parsed;
  const allowed = new Set<string>([...COMMON, ...ALLOWED[command]]);
  for (const name of Object.keys(values)) {
    if (!allowed.has(name)) throw new UsageError(`${command} does not take --${name}`);
  }
  const connection = {
    url: readUrl(values.url ?? context.env.TASKER_URL ?? DEFAULT_URL),
    token: values.token ?? context.env.TASKER_TOKEN ?? null,
  };
  const json = values.json === true;
  if (values.help === true) {
    return { connection, json, request: null };
  }
  const { required, optional } = OPERANDS[command];
  if (positionals.length < required.length) {
    throw new UsageError(`${command} needs ${required.join(' ')}`);
  }
  const [first, second] = positionals;
  const extra = positionals.slice(required.length + optional.length);
  if (command !== 'send' && extra.length > 0) {
    throw new UsageError(`${command}: unexpected argument "${extra[0]}"`);
  }
  const type = first as string;
  const identifier = second as string;
  const names = (flag: string | undefined, what: string): string[] | undefined =>
    flag === undefined ? undefined : splitList(flag, what);
  let request: ClientRequest;
  switch (command) {
    case 'send':
      request = {
        command,
        type,
        body: sendBody(values, positionals.slice(1), context),
        wait: values.wait === true,
      };
      break;
    case 'get':
    case 'watch':
      request = { command, type, identifier };
      break;
    case 'list':
      request = {
        command,
        type: first ?? null,
        query: query(values, {
          status: 'status',
          endpoint: 'endpoint',
          since: 'since',
          until: 'until',
          'id-prefix': 'identifier',
          limit: 'limit',
          cursor: 'cursor',
        }),
      };
      break;
    case 'cancel': {
      const endpoints = names(values.endpoints, '--endpoints');
      request = {
        command,
        type,
        identifier,
        body: {
          ...(endpoints === undefined ? {} : { endpoints }),
          ...(values.reason === undefined ? {} : { reason: values.reason }),
        },
      };
      break;
    }
    case 'retry': {
      const endpoints = names(values.endpoints, '--endpoints');
      request = {
        command,
        type,
        identifier,
        body: endpoints === undefined ? {} : { endpoints },
        wait: values.wait === true,
      };
      break;
    }
    case 'endpoints':
      request = {
        command,
        name: first ?? null,
        query: [
          ...query(values, {
            type: 'type',
            status: 'status',
            version: 'version',
            limit: 'limit',
            after: 'after',
          }),
          ...(values.label ?? []).map((label): [string, string] => ['label', label]),
        ],
      };
      break;
    case 'schedules':
      request = { command };
      break;
  }
  return { connection, json, request };
}

function readUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--url: "${text}" is not a URL (e.g. http://localhost:8888)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--url: "${text}" is not an http:// or https:// URL`);
  }
  return text.replace(/\/+$/, '');
}

function splitList(text: string, what: string): string[] {
  const items = text.split(',').map((item) => item.trim());
  if (items.some((item) => item === '')) {
    throw new UsageError(`${what}: "${text}" has an empty name; give a,b,c`);
  }
  return items;
}

function query(
  values: Partial<Record<Option, unknown>>,
  names: Partial<Record<Option, string>>,
): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const [option, parameter] of Object.entries(names) as Array<[Option, string]>) {
    const value = values[option];
    if (typeof value === 'string') pairs.push([parameter, value]);
  }
  return pairs;
}

type SendValues = Partial<Record<Option, string | boolean | string[]>>;

function sendBody(values: SendValues, assignments: string[], context: ArgsContext): SendBody {
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
  return body;
}

function newId(context: ArgsContext): string {
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
  const given = ['endpoints', 'select', 'broadcast'].filter((name) => values[name as Option]);
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
  context: ArgsContext,
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
