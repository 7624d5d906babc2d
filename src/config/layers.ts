/**
 * Each source of settings (defaults, file, environment, flags) as a layer: a map from a setting's
 * dotted path to its raw value and where it came from. Unknown names are refused here, with a
 * "did you mean"; src/config/resolve.ts parses the merged values.
 */
import { describeType, isPlainObject } from '../domain/fields';
import { IGNORED_SECTIONS, MQ, ORIGINAL_GROUPS, ORIGINAL_SECTIONS } from './original-keys';
import { ORIGINAL_KEYS, URL_PARTS, brokerUrl } from './original-keys';
import { DECLARED, SETTING_FLAGS, SECTIONS, TASK_TYPES, TYPE_SETTINGS, envName } from './settings';
import { failFrom, type Setting } from './kinds';

/** A raw value, and where it came from: a file, "env NAME", "flag --name" or "defaults". */
export type Layer = Map<string, { value: unknown; origin: string }>;

/**
 * TASKER_* variables that are no setting: the mode and the file, read by the loader, and the
 * client commands' server and token (`tasker send` reads them; a server or agent ignores them).
 */
const NON_SETTING_ENV = ['TASKER_MODE', 'TASKER_CONFIG', 'TASKER_URL', 'TASKER_TOKEN'];
const GROUPS = [...Object.keys(SECTIONS), ...ORIGINAL_GROUPS];
const TOP_LEVEL = [TASK_TYPES, ...Object.keys(SECTIONS), ...ORIGINAL_SECTIONS];
/** Every name a file may hold below the top level, for "did you mean". */
const IN_FILES = [
  ...GROUPS,
  ...DECLARED.keys(),
  ...Object.keys({ ...ORIGINAL_KEYS, ...URL_PARTS }),
];

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length];
}

/**
 * `what` ("unknown key"), with "did you mean" when a known name is within a small edit distance;
 * below `task_types.<name>.` the known names are a task type's own keys.
 */
function unknown(what: string, name: string, known: Iterable<string>): string {
  const [first, type] = name.split('.');
  if (first === TASK_TYPES && type !== undefined) {
    known = Object.keys(TYPE_SETTINGS).map((key) => `${TASK_TYPES}.${type}.${key}`);
  }
  let guess: string | null = null;
  let guessDistance = Math.max(2, Math.floor(name.length / 4)) + 1;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < guessDistance) [guess, guessDistance] = [candidate, distance];
  }
  return guess === null ? what : `${what} (did you mean ${guess}?)`;
}

/** The declaration of a path, a task type's own (`task_types.<name>.<key>`) included. */
function declared(path: string): Setting | undefined {
  const [first, , key = '', ...rest] = path.split('.');
  if (first === TASK_TYPES && rest.length === 0 && Object.hasOwn(TYPE_SETTINGS, key)) {
    return TYPE_SETTINGS[key as keyof typeof TYPE_SETTINGS];
  }
  return DECLARED.get(path);
}

/** The setting a name sets (null: none, it is ignored); undefined when the name is unknown. */
function settingPath(name: string): string | null | undefined {
  if (Object.hasOwn(ORIGINAL_KEYS, name)) return ORIGINAL_KEYS[name];
  return declared(name) ? name : undefined;
}

/** The built-in defaults, as declared; a null default stays, meaning "unset". */
export function layerFromDefaults(packageRoot: string): Layer {
  const layer: Layer = new Map();
  for (const [path, { default: value }] of DECLARED) {
    const computed: unknown = typeof value === 'function' ? value(packageRoot) : value;
    layer.set(path, { value: computed, origin: 'defaults' });
  }
  return layer;
}

/**
 * A layer from a config file's top-level mapping. Task types come as a list (`[worker, backup]`)
 * or as a mapping from each name to its settings (`{ worker: { max_deliveries: 3 }, backup: }`).
 */
export function layerFromTree(tree: Record<string, unknown>, origin: string): Layer {
  const layer: Layer = new Map();
  const fail = failFrom(origin);
  const givenAs = new Map<string, string>(); // setting path → the name this file gave it
  const urlParts: Record<string, unknown> = {};
  const claim = (path: string, name: string) => {
    const twin = givenAs.get(path);
    if (twin !== undefined) throw fail(name, `sets the same thing as ${twin}; give only one`);
    givenAs.set(path, name);
  };
  const put = (path: string, name: string, value: unknown) => {
    const shape = Array.isArray(value) ? 'list' : isPlainObject(value) ? 'mapping' : undefined;
    const takes = declared(path)?.takes;
    if (shape && shape !== takes) {
      throw fail(
        name,
        `must be ${takes === undefined ? 'a single value' : `a ${takes}`}, not a ${shape}`,
      );
    }
    claim(path, name);
    layer.set(path, { value, origin });
  };
  const visit = (name: string, value: unknown): void => {
    if (value === null || value === undefined || IGNORED_SECTIONS.includes(name)) return;
    if (name === TASK_TYPES && !Array.isArray(value)) return visitTaskTypes(value);
    const path = settingPath(name);
    if (path === null) return; // an original key that tasker ignores
    if (path !== undefined) return put(path, name, value);
    if (Object.hasOwn(URL_PARTS, name)) {
      claim(`${MQ}.${URL_PARTS[name]}`, name);
      urlParts[URL_PARTS[name]] = value;
      return;
    }
    if (!GROUPS.includes(name)) {
      throw fail(name, unknown('unknown key', name, name.includes('.') ? IN_FILES : TOP_LEVEL));
    }
    if (!isPlainObject(value)) throw fail(name, `must be a mapping, got ${describeType(value)}`);
    for (const [key, item] of Object.entries(value)) visit(`${name}.${key}`, item);
  };
  const visitTaskTypes = (types: unknown) => {
    if (!isPlainObject(types)) {
      throw fail(TASK_TYPES, 'must be a list of names or a mapping from name to settings');
    }
    put(TASK_TYPES, TASK_TYPES, Object.keys(types));
    for (const [type, settings] of Object.entries(types)) {
      const typePath = `${TASK_TYPES}.${type}`;
      if (settings !== null && !isPlainObject(settings)) {
        throw fail(
          typePath,
          `must be a mapping of settings or empty, got ${describeType(settings)}`,
        );
      }
      for (const [key, item] of Object.entries(settings ?? {})) visit(`${typePath}.${key}`, item);
    }
  };
  for (const [key, value] of Object.entries(tree)) visit(key, value);
  if (Object.keys(urlParts).length > 0) {
    if (givenAs.get('broker.url')?.startsWith(MQ)) {
      throw fail(MQ, 'give either url or host/port/username/password/virtual_host');
    }
    put('broker.url', MQ, brokerUrl(urlParts, fail));
  }
  return layer;
}

/**
 * TASKER_<SECTION>_<KEY> variables. Any other TASKER_* name (other than TASKER_MODE,
 * TASKER_CONFIG and the variables the config file referenced as `${NAME}`) is passed to `warn`
 * with a did-you-mean and ignored: an environment is shared with other tools, which may have
 * TASKER_* variables of their own, while a mistyped key in a file or `--set` is an error.
 */
export function layerFromEnv(
  env: NodeJS.ProcessEnv,
  referenced: ReadonlySet<string>,
  warn: (message: string) => void,
): Layer {
  const layer: Layer = new Map();
  const known = new Map([...DECLARED.keys()].map((path) => [envName(path), path]));
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('TASKER_') || value === undefined) continue;
    if (NON_SETTING_ENV.includes(name) || referenced.has(name)) continue;
    const path = known.get(name);
    if (path === undefined) {
      const candidates = [...known.keys(), ...NON_SETTING_ENV];
      warn(`${name}: ${unknown('unknown environment variable, ignored', name, candidates)}`);
      continue;
    }
    layer.set(path, { value, origin: `env ${name}` });
  }
  return layer;
}

/**
 * CLI flags, parsed into long name → string: the declared flags, and `set` with one
 * `section.key=value` per line. Other flags (mode, config, a command's own) are left to the CLI;
 * a named flag wins over a `--set` line for the same setting.
 */
export function layerFromFlags(flags: Record<string, string | undefined>): Layer {
  const layer: Layer = new Map();
  const fail = failFrom('flag --set');
  for (const line of (flags.set ?? '').split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const equals = line.indexOf('=');
    const name = equals < 0 ? '' : line.slice(0, equals).trim();
    if (name === '') throw fail('set', `expected section.key=value, got "${line.trim()}"`);
    const path = settingPath(name);
    if (!path) throw fail(name, unknown('unknown key', name, DECLARED.keys()));
    layer.set(path, { value: line.slice(equals + 1).trim(), origin: 'flag --set' });
  }
  for (const { name, path } of SETTING_FLAGS) {
    const value = flags[name];
    if (value !== undefined) layer.set(path, { value, origin: `flag --${name}` });
  }
  return layer;
}
