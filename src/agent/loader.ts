/**
 * Finds and loads handler modules: `<dir>/<type>.js` (or .cjs/.mjs), first directory wins, so an
 * operator can drop a plain JavaScript file next to the built-in ones without rebuilding; or an
 * executable file `<dir>/<type>` (a script or a binary), which runs as a command handler. The
 * agent finds the files; its sandboxed child processes import the modules.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TaskerError, isPlainObject } from '../domain';
import type { HandleTask } from './contract';

const EXTENSIONS = ['.js', '.cjs', '.mjs'];

async function exists(file: string, mode = constants.F_OK): Promise<boolean> {
  try {
    await access(file, mode);
    return true;
  } catch {
    return false;
  }
}

/** A regular file this process may execute. */
export async function isExecutableFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile() && (await exists(file, constants.X_OK));
  } catch {
    return false;
  }
}

/** Where a task type's handler is: a JavaScript module, or an executable run as a command. */
export interface HandlerFile {
  file: string;
  kind: 'module' | 'executable';
}

async function findHandlerFile(
  dirs: readonly string[],
  type: string,
): Promise<HandlerFile | string> {
  const notExecutable: string[] = [];
  for (const dir of dirs) {
    for (const ext of EXTENSIONS) {
      const file = join(dir, `${type}${ext}`);
      if (await exists(file)) return { file, kind: 'module' };
    }
    const bare = join(dir, type);
    if (await isExecutableFile(bare)) return { file: bare, kind: 'executable' };
    if (await exists(bare)) notExecutable.push(bare);
  }
  return (
    `no handler for task type "${type}": looked for ${type}.js, .cjs, .mjs or an executable ` +
    `${type} in ${dirs.join(', ')}` +
    (notExecutable.length === 0
      ? ''
      : `; ${notExecutable.join(', ')} is there but not executable (chmod +x)`)
  );
}

function pickHandleTask(module: unknown): unknown {
  if (!isPlainObject(module) && typeof module !== 'object') return undefined;
  const mod = module as Record<string, unknown>;
  if (typeof mod.handle_task === 'function') return mod.handle_task;
  const fallback = mod.default;
  if (isPlainObject(fallback) && typeof fallback.handle_task === 'function') {
    return fallback.handle_task;
  }
  return undefined;
}

/**
 * The handler file of each type: the first `<type>.js`, `.cjs` or `.mjs`, or executable
 * `<type>`, in `dirs`.
 */
export async function findHandlers(
  dirs: readonly string[],
  types: readonly string[],
): Promise<Map<string, HandlerFile>> {
  const files = new Map<string, HandlerFile>();
  for (const type of types) {
    const found = await findHandlerFile(dirs, type);
    if (typeof found === 'string') throw new TaskerError('handler_invalid', found);
    files.set(type, found);
  }
  return files;
}

/** A handler module as imported: its handle_task and the `version` it exports, if any. */
export interface LoadedHandler {
  handleTask: HandleTask;
  version: string | null;
}

/** Import a handler module: its handle_task and exported version; errors name the file. */
export async function importHandler(file: string): Promise<LoadedHandler> {
  let module: unknown;
  try {
    module = await import(pathToFileURL(file).href);
  } catch (err) {
    throw new TaskerError('handler_invalid', `handler ${file} failed to load: ${String(err)}`, {
      cause: err,
    });
  }
  const handleTask = pickHandleTask(module);
  if (typeof handleTask !== 'function') {
    throw new TaskerError(
      'handler_invalid',
      `handler ${file} does not export a handle_task function`,
    );
  }
  return { handleTask: handleTask as HandleTask, version: pickVersion(module) };
}

/** The module's exported `version` string (or its default export's), trimmed to 64 chars. */
function pickVersion(module: unknown): string | null {
  const mod = module as Record<string, unknown>;
  const fallback = mod.default;
  const version = mod.version ?? (isPlainObject(fallback) ? fallback.version : undefined) ?? null;
  return typeof version === 'string' && version.trim() !== '' ? version.trim().slice(0, 64) : null;
}

/** A handler file's version when it exports none: `sha256:` and 12 hex digits of its content. */
export async function fileVersion(file: string): Promise<string> {
  const digest = createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
  return `sha256:${digest.slice(0, 12)}`;
}

/**
 * Each task type's handler version: the one its module exports (from `exported`, by file),
 * else a hash of its file.
 */
export async function handlerVersions(
  files: ReadonlyMap<string, string>,
  exported: ReadonlyMap<string, string | null>,
): Promise<Map<string, string>> {
  const versions = new Map<string, string>();
  for (const [type, file] of files) {
    versions.set(type, exported.get(file) ?? (await fileVersion(file)));
  }
  return versions;
}
