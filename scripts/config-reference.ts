#!/usr/bin/env node
/**
 * The reference part of docs/configuration.md, generated from the setting declarations in
 * src/config/settings.ts. `npm run docs:config` rewrites it in place; test/unit/config-docs.test.ts
 * fails when the file is out of date.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DECLARED, SETTING_FLAGS, TASK_TYPES, TYPE_SETTINGS, envName } from '../src/config';
import { findPackageRoot } from '../src/package';

export const DOC_FILE = path.join(findPackageRoot(), 'docs', 'configuration.md');
const BEGIN = '<!-- reference: generated from src/config/settings.ts by npm run docs:config -->';
const END = '<!-- end of the generated reference -->';

function code(text: string): string {
  return `\`${text.replace(/\|/g, '\\|')}\``;
}

/** Plain text in a table cell: "|" would end the cell and "<name>" would be taken for HTML. */
function text(words: string): string {
  return words.replace(/[|<>]/g, (char) => `\\${char}`);
}

/** A default as a YAML file would write it; computed ones as they are under the package. */
function shownDefault(value: unknown): string {
  if (typeof value === 'function') return shownDefault(value('<package>'));
  if (value === null) return '—';
  if (Array.isArray(value))
    return value.length === 0 ? 'none' : value.map(String).map(code).join(', ');
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    return entries.length === 0
      ? 'none'
      : code(entries.map(([k, v]) => `${k}=${String(v)}`).join(','));
  }
  return code(String(value));
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The reference: one table per section, every setting with its env name, flag and default. */
export function renderReference(): string {
  const flags = new Map(SETTING_FLAGS.map(({ name, arg, path }) => [path, `--${name} ${arg}`]));
  const sections = new Map<string, string[][]>();
  for (const [key, setting] of DECLARED) {
    const section = key.split('.')[0];
    const flag = flags.get(key);
    const typeDefault = key.startsWith('api.') && Object.hasOwn(TYPE_SETTINGS, key.slice(4));
    const row = [
      code(key),
      code(envName(key)),
      flag === undefined ? '' : code(flag),
      shownDefault(setting.default),
      text(setting.type),
      text(typeDefault ? `${setting.doc}; the default of every task type` : setting.doc),
    ];
    sections.set(section, [...(sections.get(section) ?? []), row]);
  }
  const header = ['key', 'environment', 'flag', 'default', 'type', 'meaning'];
  const perType = Object.entries(TYPE_SETTINGS).map(([key, setting]) => [
    code(`${TASK_TYPES}.<name>.${key}`),
    code(`api.${key}`),
    text(setting.type),
    text(setting.doc),
  ]);
  const parts = [...sections].map(([section, rows]) => `### ${section}\n\n${table(header, rows)}`);
  parts.splice(
    1,
    0,
    '### Per task type\n\nEach task type may set these under its name in the mapping form of ' +
      '`task_types`, or with `--set task_types.<name>.<key>=…`; there are no environment names ' +
      'for them.\n\n' +
      table(['key', 'default', 'type', 'meaning'], perType),
  );
  return parts.join('\n\n');
}

/** `document` with the text between the markers replaced by the current reference. */
export function withReference(document: string): string {
  const start = document.indexOf(BEGIN);
  const end = document.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${DOC_FILE} lacks the markers ${BEGIN} … ${END}`);
  return `${document.slice(0, start + BEGIN.length)}\n\n${renderReference()}\n\n${document.slice(end)}`;
}

if (require.main === module) {
  const before = fs.readFileSync(DOC_FILE, 'utf8');
  const after = withReference(before);
  fs.writeFileSync(DOC_FILE, after);
  console.log(before === after ? `${DOC_FILE} was up to date` : `${DOC_FILE} updated`);
}
