/**
 * `loadConfig`: the one place the configuration is assembled. Sources, lowest to highest
 * precedence: built-in defaults < YAML file < TASKER_* environment < CLI flags. The merged result
 * is validated once; every failure is a ConfigError naming the key.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../domain/errors';
import { builtInDefaults } from './defaults';
import { locateConfigFile, readConfigFile } from './file';
import { layerFromEnv, layerFromFlags, layerFromTree, mergeLayers, type Layer } from './layers';
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
}

const MODE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const PACKAGE_NAME = 'tasker';

let packageRootCache: string | undefined;

/**
 * The tasker package's directory: the first directory above this module whose package.json is
 * named "tasker". Works from src/config (ts-jest) and from dist/src/config (compiled).
 */
export function findPackageRoot(): string {
  if (packageRootCache !== undefined) return packageRootCache;
  let dir = __dirname;
  for (;;) {
    try {
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
        name?: unknown;
      };
      if (manifest.name === PACKAGE_NAME) return (packageRootCache = dir);
    } catch {
      // no (readable) package.json here: keep walking up
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  // not found (e.g. the package.json was renamed): the layout of dist/src/config
  return (packageRootCache = path.resolve(__dirname, '..', '..', '..'));
}

export function loadConfig(options: LoadConfigOptions = {}): TaskerConfig {
  const env = options.env ?? process.env;
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const mode = options.mode ?? (env.TASKER_MODE || 'development');
  if (!MODE_PATTERN.test(mode)) {
    throw new ConfigError('mode', 'must be 1-64 letters, digits, "_" or "-" (it names a file)');
  }
  const packageRoot = findPackageRoot();
  const source = locateConfigFile({
    configFile: options.configFile ?? (env.TASKER_CONFIG || undefined),
    mode,
    cwd,
    packageRoot,
  });
  const file = source === null ? null : { path: source, ...readConfigFile(source, env) };

  const layers: Layer[] = [
    layerFromTree(builtInDefaults({ cwd, packageRoot }), 'defaults'),
    file === null ? new Map() : layerFromTree(file.tree, file.path),
    layerFromEnv(env, file?.referenced ?? new Set()),
    layerFromFlags(options.flags ?? {}),
  ];
  return resolveConfig(mergeLayers(layers), { mode, source, cwd });
}
