/**
 * Finds and loads handler modules: `<dir>/<type>.js` (or .cjs/.mjs), first directory wins, so an
 * operator can drop a plain JavaScript file next to the built-in ones without rebuilding. The
 * agent finds the files; its sandboxed child processes import them.
 */
import { access } from 'node:fs/promises';
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

/** Import a handler module and return its handle_task; errors name the file. */
export async function importHandler(file: string): Promise<HandleTask> {
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
  return handleTask as HandleTask;
}

/** Find and import the handlers of `types` into this process. */
export async function loadHandlers(
  dirs: readonly string[],
  types: readonly string[],
): Promise<Map<string, HandleTask>> {
  const handlers = new Map<string, HandleTask>();
  for (const [type, file] of await findHandlerFiles(dirs, types)) {
    handlers.set(type, await importHandler(file));
  }
  return handlers;
}
