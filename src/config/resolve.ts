/**
 * From the merged layers to the validated `TaskerConfig`: parse each raw value by its key's type,
 * check ranges and cross-key rules, and name the key (and the source) in every failure.
 */
import path from 'node:path';
import { ConfigError } from '../domain/errors';
import { checkInt, checkString, describeType, type Fail } from '../domain/fields';
import { checkEndpoint, checkTaskType } from '../domain/names';
import type {
  AgentConfig,
  ApiConfig,
  BrokerConfig,
  DatabaseConfig,
  ServerConfig,
  TaskerConfig,
  TaskTypeConfig,
} from './types';
import { LOG_LEVELS, type LogLevel } from '../log';
import { TASK_TYPES } from './keys';
import type { Layer } from './layers';
import { sqliteFile } from './urls';
import { parseBoolean, parseBytes, parseDuration, parseInteger } from './units';

const PREFIX_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$/;
const MIN_TOKEN_LENGTH = 16;

export interface ResolveContext {
  mode: string;
  source: string | null;
  cwd: string;
}

/** Reads settings by path; each failure names the key and where the value came from. */
class SettingReader {
  constructor(private readonly settings: Layer) {}

  has(key: string): boolean {
    return this.settings.has(key);
  }

  /** A Fail for checks on `key`'s value; `reported` may name a part of it (e.g. a list item). */
  failFor(key: string): Fail {
    const origin = this.settings.get(key)?.origin;
    return (reported, problem) =>
      new ConfigError(reported, origin === undefined ? problem : `${problem} [${origin}]`);
  }

  raw(key: string): unknown {
    const setting = this.settings.get(key);
    if (setting === undefined) throw new ConfigError(key, 'is required');
    return setting.value;
  }

  parse<T>(key: string, parser: (value: unknown) => T): T {
    const value = this.raw(key);
    try {
      return parser(value);
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw this.failFor(key)(key, (error as Error).message);
    }
  }

  string(key: string): string {
    return checkString(this.raw(key), key, this.failFor(key));
  }

  integer(key: string, min: number, max?: number): number {
    const value = this.parse(key, parseInteger);
    return checkInt(value, key, this.failFor(key), { min, max });
  }

  boolean(key: string): boolean {
    return this.parse(key, parseBoolean);
  }

  /** A positive duration in milliseconds. */
  duration(key: string): number {
    const ms = this.parse(key, parseDuration);
    if (ms <= 0) throw this.failFor(key)(key, 'must be a positive duration');
    return ms;
  }

  /** A positive size in bytes. */
  bytes(key: string): number {
    const bytes = this.parse(key, parseBytes);
    if (bytes <= 0) throw this.failFor(key)(key, 'must be a positive size');
    return bytes;
  }

  /** One of the given words. */
  oneOf<const T extends string>(key: string, words: readonly T[]): T {
    const value = this.string(key);
    const word = words.find((candidate) => candidate === value);
    if (word === undefined) throw this.failFor(key)(key, `must be one of ${words.join(', ')}`);
    return word;
  }

  /** A YAML list of strings, or one string split at `separator` (env, flags, `${VAR}`). */
  list(key: string, separator: RegExp = /,/): string[] {
    const value = this.raw(key);
    const fail = this.failFor(key);
    if (typeof value === 'string') {
      return value
        .split(separator)
        .map((item) => item.trim())
        .filter((item) => item !== '');
    }
    if (!Array.isArray(value)) throw fail(key, `must be a list, got ${describeType(value)}`);
    return value.map((item: unknown, index) => {
      if (typeof item !== 'string') {
        throw fail(`${key}[${index}]`, `must be a string, got ${describeType(item)}`);
      }
      return item;
    });
  }
}

/** `memory:`, the broker that lives inside one `tasker up` process. */
export function isInProcessBroker(broker: Pick<BrokerConfig, 'url'>): boolean {
  return broker.url.startsWith('memory:');
}

export function resolveConfig(settings: Layer, context: ResolveContext): TaskerConfig {
  const read = new SettingReader(settings);
  const taskTypes = resolveTaskTypes(read);
  const api = resolveApi(read);
  if (context.mode === 'production' && api.tokens.length === 0) {
    throw new ConfigError('api.tokens', 'production mode requires at least one token');
  }
  const database = resolveDatabase(read, context.cwd);
  const broker = resolveBroker(read);
  if (context.mode === 'production' && isInProcessBroker(broker)) {
    throw new ConfigError(
      'broker.url',
      'production mode needs RabbitMQ: the in-process broker (memory:) is for one machine only',
    );
  }
  const longestWait = Object.values(taskTypes).reduce((longest, type) =>
    type.waitForEndpointsTimeoutMs > longest.waitForEndpointsTimeoutMs ? type : longest,
  );
  if (broker.queueExpiresMs < longestWait.waitForEndpointsTimeoutMs) {
    throw read.failFor('broker.queue_expires')(
      'broker.queue_expires',
      `must be at least the longest wait_for_endpoints_timeout (${longestWait.waitForEndpointsTimeoutMs / 1000} s, ` +
        `task type ${longestWait.name}): the queue of an endpoint that is away must outlive the tasks waiting in it`,
    );
  }
  const server = resolveServer(read);
  if (server.authenticateAgents && isInProcessBroker(broker)) {
    throw new ConfigError(
      'server.authenticate_agents',
      'needs RabbitMQ users: the in-process broker (memory:) has none, so every result would be refused',
    );
  }
  return {
    mode: context.mode,
    source: context.source,
    taskTypes,
    api,
    database,
    broker,
    server,
    agent: resolveAgent(read, context.cwd),
    log: { level: resolveLogLevel(read) },
  };
}

function resolveTaskTypes(read: SettingReader): Record<string, TaskTypeConfig> {
  const names = read.has(TASK_TYPES) ? read.list(TASK_TYPES) : [];
  if (names.length === 0) {
    throw new ConfigError(TASK_TYPES, 'at least one task type is required');
  }
  const fail = read.failFor(TASK_TYPES);
  const defaults = {
    waitForEndpointsTimeoutMs: read.duration('api.wait_for_endpoints_timeout'),
    executionTimeoutMs: read.duration('api.execution_timeout'),
    maxDeliveries: read.integer('api.max_deliveries', 1, 100),
  };
  const taskTypes: Record<string, TaskTypeConfig> = {};
  for (const name of names) {
    const typePath = `${TASK_TYPES}.${name}`;
    checkTaskType(name, typePath, fail);
    if (Object.hasOwn(taskTypes, name)) throw fail(typePath, 'is listed more than once');
    const own = (key: string) => (read.has(`${typePath}.${key}`) ? `${typePath}.${key}` : null);
    const wait = own('wait_for_endpoints_timeout');
    const execution = own('execution_timeout');
    const deliveries = own('max_deliveries');
    taskTypes[name] = {
      name,
      waitForEndpointsTimeoutMs: wait ? read.duration(wait) : defaults.waitForEndpointsTimeoutMs,
      executionTimeoutMs: execution ? read.duration(execution) : defaults.executionTimeoutMs,
      maxDeliveries: deliveries ? read.integer(deliveries, 1, 100) : defaults.maxDeliveries,
    };
  }
  return taskTypes;
}

function resolveApi(read: SettingReader): ApiConfig {
  const bodyLimitBytes = read.bytes('api.body_limit');
  const maxPayloadBytes = read.bytes('api.max_payload_bytes');
  if (maxPayloadBytes > bodyLimitBytes) {
    throw read.failFor('api.max_payload_bytes')(
      'api.max_payload_bytes',
      `must not exceed api.body_limit (${bodyLimitBytes} bytes)`,
    );
  }
  return {
    host: read.string('api.host'),
    port: read.integer('api.port', 0, 65535), // 0: any free port
    bodyLimitBytes,
    maxPayloadBytes,
    maxEndpoints: read.integer('api.max_endpoints', 1),
    maxIdentifierLength: read.integer('api.max_identifier_length', 1),
    tokens: resolveTokens(read),
    publishWaitMs: read.duration('api.publish_wait'),
  };
}

function resolveTokens(read: SettingReader): string[] {
  const fail = read.failFor('api.tokens');
  // never echo a token: messages name its position only
  return read.list('api.tokens').map((token, index) => {
    const itemPath = `api.tokens[${index}]`;
    if (token.length < MIN_TOKEN_LENGTH) {
      throw fail(itemPath, `must be at least ${MIN_TOKEN_LENGTH} characters`);
    }
    if (/\s/.test(token)) throw fail(itemPath, 'must not contain whitespace');
    return token;
  });
}

/**
 * A URL whose scheme is one of `prefixes` ("mysql://", "sqlite:", ...). The url may hold a
 * password, so it is not repeated in messages.
 */
function resolveUrl(read: SettingReader, key: string, prefixes: string[]): string {
  const url = read.string(key);
  const fail = read.failFor(key);
  if (!prefixes.some((prefix) => url.startsWith(prefix))) {
    throw fail(key, `must be a URL starting with ${prefixes.join(' or ')}`);
  }
  if (!URL.canParse(url)) throw fail(key, 'is not a valid URL');
  return url;
}

/**
 * `sqlite:PATH` names a file relative to the working directory; store it absolute
 * (`sqlite:///abs/path`), so every part of the process, and `tasker up`'s agents, agree.
 */
function resolveDatabaseUrl(read: SettingReader, cwd: string): string {
  const url = resolveUrl(read, 'database.url', ['mysql://', 'sqlite:']);
  if (!url.startsWith('sqlite:')) return url;
  let absolute: string;
  try {
    absolute = sqliteFile(url, cwd);
  } catch (err) {
    throw read.failFor('database.url')('database.url', (err as Error).message);
  }
  return `sqlite://${absolute.split('/').map(encodeURIComponent).join('/')}`;
}

function resolveDatabase(read: SettingReader, cwd: string): DatabaseConfig {
  const poolMin = read.integer('database.pool_min', 0);
  const poolMax = read.integer('database.pool_max', 1);
  if (poolMax < poolMin) {
    throw read.failFor('database.pool_max')(
      'database.pool_max',
      `must be at least database.pool_min (${poolMin})`,
    );
  }
  return {
    url: resolveDatabaseUrl(read, cwd),
    poolMin,
    poolMax,
    acquireTimeoutMs: read.duration('database.acquire_timeout'),
    createDatabase: read.boolean('database.create_database'),
  };
}

function resolveBroker(read: SettingReader): BrokerConfig {
  const prefix = read.string('broker.prefix');
  if (!PREFIX_PATTERN.test(prefix)) {
    throw read.failFor('broker.prefix')(
      'broker.prefix',
      'must be 1-64 letters, digits, "_" or "-", starting with a letter or digit',
    );
  }
  const heartbeatMs = read.duration('broker.heartbeat');
  if (heartbeatMs % 1000 !== 0) {
    throw read.failFor('broker.heartbeat')('broker.heartbeat', 'must be a whole number of seconds');
  }
  const reconnectInitialDelayMs = read.duration('broker.reconnect_initial_delay');
  const reconnectMaxDelayMs = read.duration('broker.reconnect_max_delay');
  if (reconnectMaxDelayMs < reconnectInitialDelayMs) {
    throw read.failFor('broker.reconnect_max_delay')(
      'broker.reconnect_max_delay',
      'must not be shorter than broker.reconnect_initial_delay',
    );
  }
  return {
    url: resolveUrl(read, 'broker.url', ['amqp://', 'amqps://', 'memory:']),
    prefix,
    heartbeatSeconds: heartbeatMs / 1000,
    confirmTimeoutMs: read.duration('broker.confirm_timeout'),
    reconnectInitialDelayMs,
    reconnectMaxDelayMs,
    queueExpiresMs: read.duration('broker.queue_expires'),
  };
}

function resolveServer(read: SettingReader): ServerConfig {
  return {
    api: read.boolean('server.api'),
    relay: read.boolean('server.relay'),
    recorder: read.boolean('server.recorder'),
    sweeper: read.boolean('server.sweeper'),
    relayIntervalMs: read.duration('server.relay_interval'),
    sweepIntervalMs: read.duration('server.sweep_interval'),
    recorderBatchSize: read.integer('server.recorder_batch_size', 1),
    // AMQP's prefetch count is a 16-bit field
    recorderPrefetch: read.integer('server.recorder_prefetch', 1, 65535),
    timeoutGraceMs: read.duration('server.timeout_grace'),
    authenticateAgents: read.boolean('server.authenticate_agents'),
    agentUserPrefix: read.string('server.agent_user_prefix'),
  };
}

function resolveAgent(read: SettingReader, cwd: string): AgentConfig {
  const endpointKey = 'agent.endpoint';
  const endpoint = read.has(endpointKey)
    ? checkEndpoint(read.raw(endpointKey), endpointKey, read.failFor(endpointKey))
    : null;
  const dirsKey = 'agent.handlers_dir';
  const dirs = read.list(dirsKey, new RegExp(`[,${path.delimiter}]`));
  if (dirs.length === 0) throw read.failFor(dirsKey)(dirsKey, 'must name at least one directory');
  return {
    endpoint,
    handlersDirs: dirs.map((dir) => path.resolve(cwd, dir)),
    concurrency: read.integer('agent.concurrency', 1, 1000),
    // AMQP's prefetch count is a 16-bit field
    prefetch: read.integer('agent.prefetch', 1, 65535),
    stateDir: path.resolve(cwd, read.string('agent.state_dir')),
    reportDelayMs: read.duration('agent.report_delay'),
    isolation: read.oneOf('agent.isolation', ['process', 'inline'] as const),
  };
}

function resolveLogLevel(read: SettingReader): LogLevel {
  const level = read.string('log.level').toLowerCase();
  const known = LOG_LEVELS.find((candidate) => candidate === level);
  if (known === undefined) {
    throw read.failFor('log.level')('log.level', `must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return known;
}
