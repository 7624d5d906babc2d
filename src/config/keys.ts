/**
 * The names the config accepts: native sections and their keys, per-type keys, aliases, the
 * TASKER_* environment variable for each key, and a did-you-mean helper for unknown names.
 * Keys are the YAML (snake_case) spellings; a setting is addressed by its dotted path.
 */

export const SECTION_KEYS = {
  api: [
    'host',
    'port',
    'wait_for_endpoints_timeout',
    'execution_timeout',
    'max_deliveries',
    'body_limit',
    'max_payload_bytes',
    'max_endpoints',
    'max_identifier_length',
    'tokens',
    'publish_wait',
  ],
  database: ['url', 'pool_min', 'pool_max', 'acquire_timeout', 'create_database'],
  broker: [
    'url',
    'prefix',
    'heartbeat',
    'confirm_timeout',
    'reconnect_initial_delay',
    'reconnect_max_delay',
    'queue_expires',
  ],
  server: [
    'api',
    'relay',
    'recorder',
    'sweeper',
    'relay_interval',
    'sweep_interval',
    'recorder_batch_size',
    'recorder_prefetch',
    'timeout_grace',
    'authenticate_agents',
    'agent_user_prefix',
  ],
  agent: [
    'endpoint',
    'handlers_dir',
    'concurrency',
    'prefetch',
    'state_dir',
    'report_delay',
    'isolation',
  ],
  log: ['level'],
} as const satisfies Record<string, readonly string[]>;

export type Section = keyof typeof SECTION_KEYS;

export const SECTIONS = Object.keys(SECTION_KEYS) as Section[];

/** Per-type settings under `task_types.<name>`; each defaults to the `api.` key of that name. */
export const TYPE_KEYS = ['wait_for_endpoints_timeout', 'execution_timeout', 'max_deliveries'];

/** Path under which the list of task type names is kept while layers merge. */
export const TASK_TYPES = 'task_types';

/** Second spellings accepted in files and `--set`, mapped to the canonical key. */
const KEY_ALIASES: Record<string, string> = {
  'api.max_payload': 'api.max_payload_bytes',
};

/** The original tasker's top-level sections, read by the file layer but not native. */
export const ORIGINAL_SECTIONS = ['manager', 'rabbitmq'];

export const TOP_LEVEL_KEYS: readonly string[] = [TASK_TYPES, ...SECTIONS, ...ORIGINAL_SECTIONS];

export function isSection(name: string): name is Section {
  return Object.hasOwn(SECTION_KEYS, name);
}

export function sectionKeys(section: Section): readonly string[] {
  return SECTION_KEYS[section];
}

/** Canonical key name within a section ("max_payload" → "max_payload_bytes"), or null if unknown. */
export function canonicalKey(section: Section, key: string): string | null {
  const alias = KEY_ALIASES[`${section}.${key}`];
  if (alias !== undefined) return alias.slice(section.length + 1);
  return sectionKeys(section).includes(key) ? key : null;
}

/** Every dotted path a scalar setting can have: "api.port", "database.url", ... */
export function allSettingPaths(): string[] {
  return SECTIONS.flatMap((section) => sectionKeys(section).map((key) => `${section}.${key}`));
}

/** "api.port" → "TASKER_API_PORT" */
export function envNameFor(path: string): string {
  return `TASKER_${path.replace(/\./g, '_').toUpperCase()}`;
}

/** TASKER_* variables that are read elsewhere (mode and file selection), not as settings. */
export const NON_SETTING_ENV = ['TASKER_MODE', 'TASKER_CONFIG'];

export const TASK_TYPES_ENV = 'TASKER_TASK_TYPES';

/** Map of every TASKER_* variable that sets a setting to the setting's path. */
export function settingEnvNames(): Map<string, string> {
  const names = new Map(allSettingPaths().map((path) => [envNameFor(path), path]));
  names.set(TASK_TYPES_ENV, TASK_TYPES);
  return names;
}

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

/** The closest candidate within a small edit distance, for "did you mean" hints. */
export function closest(name: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Math.max(2, Math.floor(name.length / 4)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** "unknown key" plus a hint when a known name is close; `prefix` is the parent path. */
export function unknownKeyProblem(
  key: string,
  candidates: readonly string[],
  prefix: string,
): string {
  const guess = closest(key, candidates);
  return guess === null ? 'unknown key' : `unknown key (did you mean ${prefix}${guess}?)`;
}
