/**
 * The resolved configuration every part of tasker reads, inferred from the declarations in
 * src/config/settings.ts: each key in camelCase with its unit (`publish_wait` → `publishWaitMs`).
 * Built once at start by `loadConfig` from defaults < YAML file < TASKER_* environment < flags.
 */
import type { Resolved } from './kinds';
import type { SECTIONS, TYPE_SETTINGS } from './settings';

type Sections = typeof SECTIONS;

export type TaskTypeConfig = { name: string } & Resolved<typeof TYPE_SETTINGS>;
export type DatabaseConfig = Resolved<Sections['database']>;
export type BrokerConfig = Resolved<Sections['broker']>;

export type TaskerConfig = { [S in keyof Sections]: Resolved<Sections[S]> } & {
  mode: string;
  /** the file the values came from, if any (for messages) */
  source: string | null;
  taskTypes: Record<string, TaskTypeConfig>;
};
