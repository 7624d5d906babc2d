/**
 * Public surface of the config module: load once at start, then pass the typed result around.
 */
export { loadConfig, type LoadConfigOptions } from './load';
export { isInProcessBroker } from './resolve';
/** the declarations, for `tasker --help` and the reference in docs/configuration.md */
export { DECLARED, SETTING_FLAGS, TASK_TYPES, TYPE_SETTINGS, envName } from './settings';
export { DURATION_PATTERN, parseBoolean, parseBytes, parseDuration } from './kinds';
export { listenAddress, sqliteFile } from './urls';
export type { BrokerConfig, DatabaseConfig, TaskerConfig, TaskTypeConfig } from './types';
