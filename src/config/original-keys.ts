/**
 * The original tasker's `manager` section, kept working: `manager.db.uri` is the database url, and
 * `manager.message_queue` (pika-style host/port/username/password/virtual_host/exchange, or a
 * url) becomes broker.url and broker.prefix. `rabbitmq.*` is skipped by the caller.
 */
import { describeType, isPlainObject, type Fail } from '../domain/fields';
import { unknownKeyProblem } from './keys';
import { parseInteger } from './units';

const MANAGER_KEYS = ['db', 'message_queue'];
/** `verbose` was unused in the original tasker already; it is accepted and ignored. */
const DB_KEYS = ['uri', 'url', 'verbose'];
const MESSAGE_QUEUE_KEYS = [
  'url',
  'uri',
  'host',
  'port',
  'user',
  'username',
  'password',
  'vhost',
  'virtual_host',
  'exchange',
];

export interface OriginalSetting {
  /** the original tasker's key, for messages */
  originalPath: string;
  /** the native setting it sets */
  path: string;
  value: unknown;
}

function mapping(value: unknown, path: string, fail: Fail): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (!isPlainObject(value)) throw fail(path, `must be a mapping, got ${describeType(value)}`);
  return value;
}

function rejectUnknown(obj: Record<string, unknown>, known: string[], path: string, fail: Fail) {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key))
      throw fail(`${path}.${key}`, unknownKeyProblem(key, known, `${path}.`));
  }
}

function either(obj: Record<string, unknown>, a: string, b: string, path: string, fail: Fail) {
  if (obj[a] != null && obj[b] != null) {
    throw fail(`${path}.${b}`, `is another name for ${path}.${a}; give only one`);
  }
  return obj[a] ?? obj[b] ?? undefined;
}

export function originalManagerSettings(value: unknown, fail: Fail): OriginalSetting[] {
  const manager = mapping(value, 'manager', fail);
  rejectUnknown(manager, MANAGER_KEYS, 'manager', fail);
  const db = mapping(manager.db, 'manager.db', fail);
  rejectUnknown(db, DB_KEYS, 'manager.db', fail);
  const mq = mapping(manager.message_queue, 'manager.message_queue', fail);
  rejectUnknown(mq, MESSAGE_QUEUE_KEYS, 'manager.message_queue', fail);
  return [
    {
      originalPath: 'manager.db.uri',
      path: 'database.url',
      value: either(db, 'uri', 'url', 'manager.db', fail),
    },
    { originalPath: 'manager.message_queue', path: 'broker.url', value: messageQueueUrl(mq, fail) },
    // the original tasker named its exchanges "<exchange>.<task type>", which is what our prefix does
    { originalPath: 'manager.message_queue.exchange', path: 'broker.prefix', value: mq.exchange },
  ].filter((setting) => setting.value !== undefined && setting.value !== null);
}

function part(value: unknown, path: string, fail: Fail): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  throw fail(path, `must be a string, got ${describeType(value)}`);
}

/** broker.url from the original tasker's parts, or the given url; undefined when neither is there. */
function messageQueueUrl(mq: Record<string, unknown>, fail: Fail): unknown {
  const base = 'manager.message_queue';
  const url = either(mq, 'url', 'uri', base, fail);
  const host = part(mq.host, `${base}.host`, fail);
  const port = mq.port ?? undefined;
  const user = part(either(mq, 'username', 'user', base, fail), `${base}.username`, fail);
  const password = part(mq.password, `${base}.password`, fail);
  const vhost = part(either(mq, 'virtual_host', 'vhost', base, fail), `${base}.virtual_host`, fail);
  const hasParts = [host, port, user, password, vhost].some((item) => item !== undefined);
  if (url !== undefined) {
    if (hasParts) throw fail(base, 'give either url or host/port/username/password/virtual_host');
    return url;
  }
  if (!hasParts) return undefined;

  let portText = '';
  if (port !== undefined) {
    let number: number;
    try {
      number = parseInteger(port);
    } catch (error) {
      throw fail(`${base}.port`, (error as Error).message);
    }
    if (number < 1 || number > 65535) throw fail(`${base}.port`, 'must be from 1 to 65535');
    portText = `:${number}`;
  }
  const hostName = host ?? '127.0.0.1';
  const hostText = hostName.includes(':') ? `[${hostName}]` : hostName;
  let credentials = '';
  if (user !== undefined) {
    const secret = password === undefined ? '' : `:${encodeURIComponent(password)}`;
    credentials = `${encodeURIComponent(user)}${secret}@`;
  } else if (password !== undefined) {
    throw fail(`${base}.password`, 'needs a username');
  }
  // amqplib takes the vhost from the path; an empty path is the default vhost "/"
  const vhostText = vhost === undefined || vhost === '/' ? '' : `/${encodeURIComponent(vhost)}`;
  return `amqp://${credentials}${hostText}${portText}${vhostText}`;
}
