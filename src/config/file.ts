/**
 * Finding and reading the YAML config file: `--config FILE`, else `config/<mode>.yaml` under the
 * working directory, then under the package root. Parsing errors name the file and line, and
 * `${VAR}` / `${VAR:-default}` references in string values are filled from the environment.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadAll as loadYamlDocuments, YAMLException } from 'js-yaml';
import { ConfigError } from '../domain/errors';
import { describeType, isPlainObject } from '../domain/fields';

export interface ConfigFileContents {
  /** the parsed top-level mapping, with `${VAR}` references already replaced */
  tree: Record<string, unknown>;
  /** names of the environment variables the file referenced */
  referenced: Set<string>;
}

/** Sections whose content tasker ignores, so their strings are not interpolated either. */
const UNREAD_SECTIONS = ['rabbitmq'];

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The file to read, or null when the mode has none. An explicit `configFile` must exist; it is
 * resolved against `cwd`.
 */
export function locateConfigFile(where: {
  configFile: string | undefined;
  mode: string;
  cwd: string;
  packageRoot: string;
}): string | null {
  if (where.configFile !== undefined) {
    const file = path.resolve(where.cwd, where.configFile);
    if (!isFile(file)) throw new ConfigError('config', `file ${file} not found`);
    return file;
  }
  const name = path.join('config', `${where.mode}.yaml`);
  const candidates = [path.join(where.cwd, name), path.join(where.packageRoot, name)];
  return candidates.find(isFile) ?? null;
}

/** Read and parse one YAML file; an empty file is an empty mapping. */
export function readConfigFile(file: string, env: NodeJS.ProcessEnv): ConfigFileContents {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError('config', `cannot read ${file}: ${(error as Error).message}`);
  }
  const parsed = parseYaml(text, file);
  const referenced = new Set<string>();
  const tree: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    tree[key] = UNREAD_SECTIONS.includes(key)
      ? value
      : interpolateTree(value, key, { env, referenced, file });
  }
  return { tree, referenced };
}

function parseYaml(text: string, file: string): Record<string, unknown> {
  let documents: unknown[];
  try {
    documents = loadYamlDocuments(text, { filename: file });
  } catch (error) {
    if (error instanceof YAMLException) {
      const where = error.mark
        ? ` at line ${error.mark.line + 1}, column ${error.mark.column + 1}`
        : '';
      throw new ConfigError('config', `cannot parse ${file}${where}: ${error.reason}`);
    }
    throw new ConfigError('config', `cannot parse ${file}: ${(error as Error).message}`);
  }
  if (documents.length > 1) {
    throw new ConfigError(
      'config',
      `${file} holds ${documents.length} YAML documents, expected one`,
    );
  }
  const top = documents[0] ?? null;
  if (top === null) return {};
  if (!isPlainObject(top)) {
    throw new ConfigError(
      'config',
      `${file} must hold a mapping of sections, got ${describeType(top)}`,
    );
  }
  return top;
}

interface InterpolationContext {
  env: NodeJS.ProcessEnv;
  referenced: Set<string>;
  file: string;
}

function interpolateTree(value: unknown, keyPath: string, context: InterpolationContext): unknown {
  if (typeof value === 'string') return interpolate(value, keyPath, context);
  if (Array.isArray(value)) {
    return value.map((item, index) => interpolateTree(item, `${keyPath}[${index}]`, context));
  }
  if (isPlainObject(value)) {
    const result: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      result[key] = interpolateTree(item, `${keyPath}.${key}`, context);
    }
    return result;
  }
  return value;
}

const REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

/**
 * Replace `${NAME}` (must be set, may be empty) and `${NAME:-default}` (default when unset or
 * empty, as in the shell). The result is always a string; the key's parser converts it.
 */
function interpolate(text: string, keyPath: string, context: InterpolationContext): string {
  const fail = (problem: string) => new ConfigError(keyPath, `${problem} [${context.file}]`);
  let result = '';
  let rest = text;
  for (let start = rest.indexOf('${'); start >= 0; start = rest.indexOf('${')) {
    const end = rest.indexOf('}', start + 2);
    if (end < 0) throw fail('has "${" without a closing "}"');
    const inner = rest.slice(start + 2, end);
    const match = REFERENCE.exec(inner);
    if (!match)
      throw fail(`has a bad reference "\${${inner}}" (use \${NAME} or \${NAME:-default})`);
    const [, name, fallback] = match;
    context.referenced.add(name);
    const value = context.env[name];
    let replacement: string;
    if (value !== undefined && (fallback === undefined || value !== '')) replacement = value;
    else if (fallback !== undefined) replacement = fallback;
    else throw fail(`environment variable ${name} is not set`);
    result += rest.slice(0, start) + replacement;
    rest = rest.slice(end + 1);
  }
  return result + rest;
}
