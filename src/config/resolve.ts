/**
 * From the merged layers to the validated TaskerConfig: each value parsed by its declared kind,
 * then the rules that span several settings. Every failure names the key and, where it helps,
 * where the value came from.
 */
import { ConfigError } from '../domain/errors';
import type { Fail } from '../domain/fields';
import { failFrom, resolvedName, type Setting } from './kinds';
import type { Layer } from './layers';
import { SECTIONS, TASK_TYPES, TASK_TYPE_NAMES, TYPE_SETTINGS } from './settings';
import type { BrokerConfig, TaskerConfig } from './types';

export interface ResolveContext {
  mode: string;
  source: string | null;
  cwd: string;
}

/** `memory:`, the broker that lives inside one `tasker up` process. */
export function isInProcessBroker(broker: Pick<BrokerConfig, 'url'>): boolean {
  return broker.url.startsWith('memory:');
}

export function resolveConfig(layer: Layer, { mode, source, cwd }: ResolveContext): TaskerConfig {
  const failAt: Fail = (path, problem) => failFrom(layer.get(path)!.origin)(path, problem);
  const read = <T>(path: string, setting: Setting<T>) => {
    const { value, origin } = layer.get(path)!;
    return value === null ? null : setting.parse(value, { path, fail: failFrom(origin), cwd });
  };
  /** The group's settings under `prefix` that some layer sets, by their resolved names. */
  const group = (settings: Record<string, Setting>, prefix: string) =>
    Object.fromEntries(
      Object.entries(settings)
        .filter(([key]) => layer.has(`${prefix}.${key}`))
        .map(([key, setting]) => [resolvedName(key, setting), read(`${prefix}.${key}`, setting)]),
    );

  const names = read(TASK_TYPES, TASK_TYPE_NAMES) ?? [];
  if (names.length === 0) throw new ConfigError(TASK_TYPES, 'at least one task type is required');
  const typeDefaults = group(TYPE_SETTINGS, 'api');
  const taskType = (name: string) => ({
    name,
    ...typeDefaults,
    ...group(TYPE_SETTINGS, `${TASK_TYPES}.${name}`),
  });
  // the shape types.ts infers from the same declarations; the unit tests compare the two
  const config = {
    mode,
    source,
    taskTypes: Object.fromEntries(names.map((name) => [name, taskType(name)])),
    ...Object.fromEntries(
      Object.entries(SECTIONS).map(([section, settings]) => [section, group(settings, section)]),
    ),
  } as TaskerConfig;
  checkRules(config, failAt);
  return config;
}

/** The rules between settings; `fail` names where the value of its key came from. */
function checkRules(config: TaskerConfig, fail: Fail): void {
  const { api, database, broker, server, mode } = config;
  if (api.maxPayloadBytes > api.bodyLimitBytes) {
    throw fail(
      'api.max_payload_bytes',
      `must not exceed api.body_limit (${api.bodyLimitBytes} bytes)`,
    );
  }
  if (mode === 'production' && api.tokens.length === 0) {
    throw new ConfigError('api.tokens', 'production mode requires at least one token');
  }
  if (database.poolMax < database.poolMin) {
    throw fail('database.pool_max', `must be at least database.pool_min (${database.poolMin})`);
  }
  if (broker.reconnectMaxDelayMs < broker.reconnectInitialDelayMs) {
    throw fail(
      'broker.reconnect_max_delay',
      'must not be shorter than broker.reconnect_initial_delay',
    );
  }
  if (broker.url.includes(',') && broker.url.includes('memory:')) {
    throw fail('broker.url', 'names several brokers: the in-process one (memory:) comes alone');
  }
  if (isInProcessBroker(broker) && broker.queueType === 'quorum') {
    throw fail('broker.queue_type', 'quorum needs RabbitMQ: the in-process broker has one kind');
  }
  if (mode === 'production' && isInProcessBroker(broker)) {
    throw new ConfigError(
      'broker.url',
      'production mode needs RabbitMQ: the in-process broker (memory:) is for one machine only',
    );
  }
  const longest = Object.values(config.taskTypes).reduce((longest, type) =>
    type.waitForEndpointsTimeoutMs > longest.waitForEndpointsTimeoutMs ? type : longest,
  );
  if (broker.queueExpiresMs < longest.waitForEndpointsTimeoutMs) {
    throw fail(
      'broker.queue_expires',
      `must be at least the longest wait_for_endpoints_timeout (${longest.waitForEndpointsTimeoutMs / 1000} s, ` +
        `task type ${longest.name}): the queue of an endpoint that is away must outlive the tasks waiting in it`,
    );
  }
  if (server.authenticateAgents && isInProcessBroker(broker)) {
    throw new ConfigError(
      'server.authenticate_agents',
      'needs RabbitMQ users: the in-process broker (memory:) has none, so every result would be refused',
    );
  }
}
