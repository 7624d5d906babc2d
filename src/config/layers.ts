/**
 * Turning each source (defaults, file, environment, flags) into a layer: a flat map from a
 * setting's dotted path to its raw value and where it came from. Unknown names are rejected here,
 * and the original tasker's keys (`manager.db.uri`, `manager.message_queue.*`) are mapped to native paths.
 * Values stay raw; src/config/resolve.ts parses and validates the merged result.
 */
import { ConfigError } from '../domain/errors';
import { describeType, isPlainObject, type Fail } from '../domain/fields';
import {
  ORIGINAL_SECTIONS,
  TASK_TYPES,
  TOP_LEVEL_KEYS,
  TYPE_KEYS,
  NON_SETTING_ENV,
  allSettingPaths,
  canonicalKey,
  closest,
  isSection,
  sectionKeys,
  settingEnvNames,
  unknownKeyProblem,
  type Section,
} from './keys';
import { originalManagerSettings } from './original-keys';

export interface Setting {
  value: unknown;
  /** where the value came from, for messages: a file path, "env NAME", "flag --name" */
  origin: string;
}

export type Layer = Map<string, Setting>;

/** Settings that may be given as a YAML list; every other setting is a single value. */
const LIST_SETTINGS = ['api.tokens', 'agent.handlers_dir', TASK_TYPES];

/** Long CLI flags that set one setting each. */
const FLAG_SETTINGS: Record<string, string> = {
  port: 'api.port',
  host: 'api.host',
  'database-url': 'database.url',
  'broker-url': 'broker.url',
  prefix: 'broker.prefix',
  endpoint: 'agent.endpoint',
  handlers: 'agent.handlers_dir',
  types: TASK_TYPES,
  concurrency: 'agent.concurrency',
  prefetch: 'agent.prefetch',
  'log-level': 'log.level',
};

export function failFrom(origin: string): Fail {
  return (path, problem) => new ConfigError(path, `${problem} [${origin}]`);
}

export function mergeLayers(layers: Layer[]): Layer {
  const merged: Layer = new Map();
  for (const layer of layers) for (const [path, setting] of layer) merged.set(path, setting);
  return merged;
}

/** A layer from a YAML-shaped tree (a config file, or the built-in defaults). */
export function layerFromTree(tree: Record<string, unknown>, origin: string): Layer {
  const layer: Layer = new Map();
  const fail = failFrom(origin);
  for (const [key, value] of Object.entries(tree)) {
    if (key === TASK_TYPES) readTaskTypes(value, layer, origin);
    else if (isSection(key)) readSection(key, value, layer, origin);
    else if (!ORIGINAL_SECTIONS.includes(key)) {
      throw fail(key, unknownKeyProblem(key, TOP_LEVEL_KEYS, ''));
    }
  }
  // after the native sections, so an original key and its native twin in one file are caught
  if (tree.manager !== undefined) readManager(tree.manager, layer, origin);
  return layer;
}

function put(layer: Layer, path: string, value: unknown, origin: string): void {
  if (value === null || value === undefined) return;
  if (isPlainObject(value)) throw failFrom(origin)(path, 'must be a single value, not a mapping');
  if (Array.isArray(value) && !LIST_SETTINGS.includes(path)) {
    throw failFrom(origin)(path, 'must be a single value, not a list');
  }
  layer.set(path, { value, origin });
}

function mapping(value: unknown, path: string, origin: string): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (!isPlainObject(value)) {
    throw failFrom(origin)(path, `must be a mapping, got ${describeType(value)}`);
  }
  return value;
}

function readSection(section: Section, value: unknown, layer: Layer, origin: string): void {
  for (const [key, item] of Object.entries(mapping(value, section, origin))) {
    const canonical = canonicalKey(section, key);
    if (canonical === null) {
      const problem = unknownKeyProblem(key, sectionKeys(section), `${section}.`);
      throw failFrom(origin)(`${section}.${key}`, problem);
    }
    const path = `${section}.${canonical}`;
    if (canonical !== key && layer.has(path)) {
      throw failFrom(origin)(`${section}.${key}`, `is another name for ${path}; give only one`);
    }
    put(layer, path, item, origin);
  }
}

/** `task_types: [worker, backup]` or `task_types: { worker: { max_deliveries: 3 }, backup: }` */
function readTaskTypes(value: unknown, layer: Layer, origin: string): void {
  const fail = failFrom(origin);
  if (value === null || value === undefined) return;
  if (Array.isArray(value)) {
    value.forEach((name, index) => {
      if (typeof name !== 'string') {
        throw fail(
          `${TASK_TYPES}[${index}]`,
          `must be a task type name, got ${describeType(name)}`,
        );
      }
    });
    put(layer, TASK_TYPES, value, origin);
    return;
  }
  if (!isPlainObject(value)) {
    throw fail(TASK_TYPES, 'must be a list of names or a mapping from name to settings');
  }
  put(layer, TASK_TYPES, Object.keys(value), origin);
  for (const [name, settings] of Object.entries(value)) {
    const typePath = `${TASK_TYPES}.${name}`;
    if (settings !== null && !isPlainObject(settings)) {
      throw fail(typePath, `must be a mapping of settings or empty, got ${describeType(settings)}`);
    }
    for (const [key, item] of Object.entries(settings ?? {})) {
      if (!TYPE_KEYS.includes(key)) {
        throw fail(`${typePath}.${key}`, unknownKeyProblem(key, TYPE_KEYS, `${typePath}.`));
      }
      put(layer, `${typePath}.${key}`, item, origin);
    }
  }
}

/** The original tasker's `manager` section, mapped onto database.* and broker.* */
function readManager(value: unknown, layer: Layer, origin: string): void {
  const fail = failFrom(origin);
  for (const { originalPath, path, value: item } of originalManagerSettings(value, fail)) {
    if (layer.has(path)) throw fail(originalPath, `sets the same thing as ${path}; give only one`);
    put(layer, path, item, origin);
  }
}

/**
 * TASKER_<SECTION>_<KEY> variables. Any other TASKER_* name is a mistake and fails, except
 * TASKER_MODE, TASKER_CONFIG and the variables the config file referenced as `${NAME}`.
 */
export function layerFromEnv(env: NodeJS.ProcessEnv, referenced: ReadonlySet<string>): Layer {
  const layer: Layer = new Map();
  const known = settingEnvNames();
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('TASKER_') || value === undefined) continue;
    if (NON_SETTING_ENV.includes(name) || referenced.has(name)) continue;
    const path = known.get(name);
    if (path === undefined) {
      const guess = closest(name, [...known.keys(), ...NON_SETTING_ENV]);
      const hint = guess === null ? '' : ` (did you mean ${guess}?)`;
      throw new ConfigError(name, `unknown environment variable${hint}`);
    }
    layer.set(path, { value, origin: `env ${name}` });
  }
  return layer;
}

/** The dotted path `--set` accepts for `name`, or null: section keys, task_types, per-type keys. */
function settablePath(name: string): string | null {
  if (name === TASK_TYPES) return TASK_TYPES;
  const parts = name.split('.');
  if (parts.length === 3 && parts[0] === TASK_TYPES && TYPE_KEYS.includes(parts[2])) return name;
  if (parts.length !== 2 || !isSection(parts[0])) return null;
  const key = canonicalKey(parts[0], parts[1]);
  return key === null ? null : `${parts[0]}.${key}`;
}

/**
 * CLI flags, already parsed into long-name → string. Flags that are not settings (mode, config,
 * command options) are left to the CLI. `set` holds `section.key=value` lines; named flags win
 * over `set` lines for the same setting.
 */
export function layerFromFlags(flags: Record<string, string | undefined>): Layer {
  const layer: Layer = new Map();
  const fail = failFrom('flag --set');
  for (const line of (flags.set ?? '').split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const equals = line.indexOf('=');
    const name = equals < 0 ? '' : line.slice(0, equals).trim();
    if (name === '') throw fail('set', `expected section.key=value, got "${line.trim()}"`);
    const path = settablePath(name);
    if (path === null) {
      const guess = closest(name, [...allSettingPaths(), TASK_TYPES]);
      throw fail(name, guess === null ? 'unknown key' : `unknown key (did you mean ${guess}?)`);
    }
    layer.set(path, { value: line.slice(equals + 1).trim(), origin: 'flag --set' });
  }
  for (const [flag, path] of Object.entries(FLAG_SETTINGS)) {
    const value = flags[flag];
    if (value !== undefined) layer.set(path, { value, origin: `flag --${flag}` });
  }
  return layer;
}
