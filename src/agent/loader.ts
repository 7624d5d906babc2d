/**
 * Finds and loads handler modules: `<dir>/<type>.js` (or .cjs/.mjs), first directory wins, so an
 * operator can drop a plain JavaScript file next to the built-in ones without rebuilding. The
 * agent finds the files; its sandboxed child processes import them.
 */
import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TaskerError, isPlainObject } from '../domain';
import type { HandleTask } from './contract';

const EXTENSIONS = ['.js', '.cjs', '.mjs'];

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

async function findHandlerFile(dirs: readonly string[], type: string): Promise<string | null> {
  for (const dir of dirs) {
    for (const ext of EXTENSIONS) {
      const file = join(dir, `${type}${ext}`);
      if (await exists(file)) return file;
    }
  }
  return null;
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

/** The handler file of each type: the first `<type>.js`, `.cjs` or `.mjs` in `dirs`. */
export async function findHandlerFiles(
  dirs: readonly string[],
  types: readonly string[],
): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const type of types) {
    const file = await findHandlerFile(dirs, type);
    if (file === null) {
      throw new TaskerError(
        'handler_invalid',
        `no handler for task type "${type}": looked for ${type}.js, .cjs or .mjs in ${dirs.join(', ')}`,
      );
    }
    files.set(type, file);
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

/** Find and import the handlers of `types` into this process. */
export async function loadHandlers(
  dirs: readonly string[],
  types: readonly string[],
): Promise<Map<string, HandleTask>> {
  const handlers = new Map<string, HandleTask>();
  for (const [type, file] of await findHandlerFiles(dirs, types)) {
    handlers.set(type, (await importHandler(file)).handleTask);
  }
  return handlers;
}
