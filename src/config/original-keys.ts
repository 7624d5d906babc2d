/**
 * The original tasker's configuration keys, kept working: `manager.db.uri` is database.url,
 * `manager.message_queue` (pika-style host/port/username/password/virtual_host/exchange, or a
 * url) becomes broker.url and broker.prefix, and `api.max_payload` is api.max_payload_bytes. Its
 * `rabbitmq` section is read and ignored.
 */
import { describeType, type Fail } from '../domain/fields';
import { int } from './kinds';

export const MQ = 'manager.message_queue';
const PORT = int(null, 'the broker port', { min: 1, max: 65535 });

/** The original tasker's top-level sections; `rabbitmq` is ignored (`${VAR}` in it is not filled). */
export const ORIGINAL_SECTIONS = ['manager', 'rabbitmq'];
export const IGNORED_SECTIONS = ['rabbitmq'];
/** The groups of the original tasker's keys. */
export const ORIGINAL_GROUPS = ['manager', 'manager.db', MQ];

/** Each original spelling, and the setting it sets; null: accepted and ignored. */
export const ORIGINAL_KEYS: Record<string, string | null> = {
  'api.max_payload': 'api.max_payload_bytes',
  'manager.db.uri': 'database.url',
  'manager.db.url': 'database.url',
  'manager.db.verbose': null, // unused in the original tasker already
  [`${MQ}.url`]: 'broker.url',
  [`${MQ}.uri`]: 'broker.url',
  // the original tasker named its exchanges "<exchange>.<task type>", which is what our prefix does
  [`${MQ}.exchange`]: 'broker.prefix',
};

/** The parts broker.url is built from, under `manager.message_queue.`, by their spellings. */
export const URL_PARTS: Record<string, string> = {
  [`${MQ}.host`]: 'host',
  [`${MQ}.port`]: 'port',
  [`${MQ}.user`]: 'username',
  [`${MQ}.username`]: 'username',
  [`${MQ}.password`]: 'password',
  [`${MQ}.vhost`]: 'virtual_host',
  [`${MQ}.virtual_host`]: 'virtual_host',
};

/** broker.url from the parts given under `manager.message_queue`, by their URL_PARTS names. */
export function brokerUrl(parts: Record<string, unknown>, fail: Fail): string {
  const text = (part: string): string | undefined => {
    const value = parts[part];
    if (value === undefined || typeof value === 'string') return value;
    if (typeof value === 'number') return String(value);
    throw fail(`${MQ}.${part}`, `must be a string, got ${describeType(value)}`);
  };
  const host = text('host') ?? '127.0.0.1';
  const [user, password, vhost] = [text('username'), text('password'), text('virtual_host')];
  const at = { path: `${MQ}.port`, fail, cwd: '' };
  const port = parts.port === undefined ? '' : `:${PORT.parse(parts.port, at)}`;
  if (user === undefined && password !== undefined) {
    throw fail(`${MQ}.password`, 'needs a username');
  }
  const secret = password === undefined ? '' : `:${encodeURIComponent(password)}`;
  const credentials = user === undefined ? '' : `${encodeURIComponent(user)}${secret}@`;
  // amqplib takes the vhost from the path; an empty path is the default vhost "/"
  const path = vhost === undefined || vhost === '/' ? '' : `/${encodeURIComponent(vhost)}`;
  return `amqp://${credentials}${host.includes(':') ? `[${host}]` : host}${port}${path}`;
}
