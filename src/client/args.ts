/**
 * The client's command line, read into what to ask the server: pure, so every rule about it
 * is tested without a server. A mistake is a UsageError naming the argument.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './exit-codes';
import { sendBody, splitList, type SendBody, type SendContext } from './send-body';
export type { SendBody, Selector } from './send-body';

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
  priority: { type: 'string' },
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
    'priority',
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

export interface ArgsContext extends SendContext {
  env: NodeJS.ProcessEnv;
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
