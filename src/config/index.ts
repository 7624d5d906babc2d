/**
 * Public surface of the config module: load once at start, then pass the typed result around.
 */
export { findPackageRoot, loadConfig, type LoadConfigOptions } from './load';
export { isInProcessBroker } from './resolve';
export { parseBoolean, parseBytes, parseDuration } from './units';
export { sqliteFile } from './urls';
export type {
  AgentConfig,
  ApiConfig,
  BrokerConfig,
  DatabaseConfig,
  ServerConfig,
  TaskerConfig,
  TaskTypeConfig,
} from './types';
