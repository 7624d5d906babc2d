/**
 * `loadConfig`: the one place the configuration is assembled, from built-in defaults < YAML file
 * < TASKER_* environment < CLI flags, and validated once: every failure is a ConfigError naming
 * the key.
 */
import path from 'node:path';
import { ConfigError } from '../domain/errors';
import { findPackageRoot } from '../package';
import { locateConfigFile, readConfigFile } from './file';
import { layerFromDefaults, layerFromEnv, layerFromFlags, layerFromTree } from './layers';
import { resolveConfig } from './resolve';
import type { TaskerConfig } from './types';

export interface LoadConfigOptions {
  /** selects config/<mode>.yaml; default: env TASKER_MODE, else "development" */
  mode?: string;
  /** an explicit file (relative to cwd) instead of config/<mode>.yaml; default: env TASKER_CONFIG */
  configFile?: string;
  /** default: process.env */
  env?: NodeJS.ProcessEnv;
  /** long CLI flag name → value, e.g. { port: '9000', set: 'broker.prefix=t1' } */
  flags?: Record<string, string | undefined>;
  /** default: process.cwd() */
  cwd?: string;
  /**
   * told what was ignored (an unknown TASKER_* variable), one message each; default: a Node
   * process warning
   */
  warn?: (message: string) => void;
}

const MODE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function loadConfig(options: LoadConfigOptions = {}): TaskerConfig {
  const env = options.env ?? process.env;
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const mode = options.mode ?? (env.TASKER_MODE || 'development');
  if (!MODE_PATTERN.test(mode)) {
    throw new ConfigError('mode', 'must be 1-64 letters, digits, "_" or "-" (it names a file)');
  }
  const root = findPackageRoot();
  const configFile = options.configFile ?? (env.TASKER_CONFIG || undefined);
  const source = locateConfigFile(configFile, { mode, cwd, packageRoot: root });
  const file = source === null ? null : readConfigFile(source, env);
  const merged = new Map([
    ...layerFromDefaults(root),
    ...(file === null ? [] : layerFromTree(file.tree, source!)),
    ...layerFromEnv(
      env,
      file?.referenced ?? new Set(),
      options.warn ?? ((message) => process.emitWarning(message, 'TaskerConfigWarning')),
    ),
    ...layerFromFlags(options.flags ?? {}),
  ]);
  return resolveConfig(merged, { mode, source, cwd });
}
