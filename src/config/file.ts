/**
 * Finding and reading the YAML config file: `--config FILE`, else `config/<mode>.yaml` under the
 * working directory, then under the package root. Parsing errors name the file and line, and
 * `${VAR}` / `${VAR:-default}` references in string values are filled from the environment.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadAll, YAMLException } from 'js-yaml';
import { ConfigError } from '../domain/errors';
import { describeType, isPlainObject } from '../domain/fields';
import { failFrom } from './kinds';
import { IGNORED_SECTIONS } from './original-keys';

const fileError = (problem: string) => new ConfigError('config', problem);
const isFile = (file: string) => fs.existsSync(file) && fs.statSync(file).isFile();

/** The file to read, or null when the mode has none; an explicit file must exist. */
export function locateConfigFile(
  configFile: string | undefined,
  { mode, cwd, packageRoot }: { mode: string; cwd: string; packageRoot: string },
): string | null {
  if (configFile !== undefined) {
    const file = path.resolve(cwd, configFile);
    if (!isFile(file)) throw fileError(`file ${file} not found`);
    return file;
  }
  const name = path.join('config', `${mode}.yaml`);
  return [path.join(cwd, name), path.join(packageRoot, name)].find(isFile) ?? null;
}

/**
 * The file's top-level mapping (an empty file is an empty one) with `${VAR}` references filled,
 * and the names of the variables it referenced.
 */
export function readConfigFile(file: string, env: NodeJS.ProcessEnv) {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw fileError(`cannot read ${file}: ${(error as Error).message}`);
  }
  let documents: unknown[];
  try {
    documents = loadAll(text, { filename: file });
  } catch (error) {
    if (!(error instanceof YAMLException)) throw fileError(`cannot parse ${file}: ${error}`);
    const where = error.mark
      ? ` at line ${error.mark.line + 1}, column ${error.mark.column + 1}`
      : '';
    throw fileError(`cannot parse ${file}${where}: ${error.reason}`);
  }
  if (documents.length > 1) {
    throw fileError(`${file} holds ${documents.length} YAML documents, expected one`);
  }
  const top = documents[0] ?? {};
  if (!isPlainObject(top)) {
    throw fileError(`${file} must hold a mapping of sections, got ${describeType(top)}`);
  }
  const referenced = new Set<string>();
  const fill = (value: unknown, keyPath: string): unknown => {
    if (IGNORED_SECTIONS.includes(keyPath)) return value;
    if (typeof value === 'string') return interpolate(value, keyPath, { file, env, referenced });
    if (Array.isArray(value)) return value.map((item, index) => fill(item, `${keyPath}[${index}]`));
    if (!isPlainObject(value)) return value;
    const prefix = keyPath === '' ? '' : `${keyPath}.`;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fill(v, prefix + k)]));
  };
  return { tree: fill(top, '') as Record<string, unknown>, referenced };
}

/**
 * Replace `${NAME}` (must be set, may be empty) and `${NAME:-default}` (default when unset or
 * empty, as in the shell). The result is a string; the setting's kind converts it.
 */
function interpolate(
  text: string,
  keyPath: string,
  { file, env, referenced }: { file: string; env: NodeJS.ProcessEnv; referenced: Set<string> },
): string {
  const fail = (problem: string) => failFrom(file)(keyPath, problem);
  return text.replace(/\$\{([^}]*)(\}?)/g, (_, inner: string, closed: string) => {
    if (closed === '') throw fail('has "${" without a closing "}"');
    const match = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s.exec(inner);
    if (!match)
      throw fail(`has a bad reference "\${${inner}}" (use \${NAME} or \${NAME:-default})`);
    const [, name, fallback] = match;
    referenced.add(name);
    const value = env[name];
    if (value !== undefined && (fallback === undefined || value !== '')) return value;
    if (fallback !== undefined) return fallback;
    throw fail(`environment variable ${name} is not set`);
  });
}
