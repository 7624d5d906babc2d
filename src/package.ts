/**
 * The tasker package itself: the directory it is installed in (config/<mode>.yaml, the built-in
 * handlers and the sandbox's child script are found from there) and its version, which agents
 * report with each result.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

let packageRoot: string | undefined;

function readManifest(dir: string): { name?: unknown; version?: unknown } {
  try {
    return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as object;
  } catch {
    return {}; // no (readable) package.json here
  }
}

/**
 * The first directory above this module whose package.json is named "tasker". Works from src/
 * (ts-jest) and from dist/src/ (compiled).
 */
export function findPackageRoot(): string {
  if (packageRoot !== undefined) return packageRoot;
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (readManifest(dir).name === 'tasker') return (packageRoot = dir);
  }
  // not found (e.g. the package.json was renamed): the layout of dist/src
  return (packageRoot = path.resolve(__dirname, '..', '..'));
}

const version = readManifest(findPackageRoot()).version;
export const VERSION = typeof version === 'string' ? version : '0.0.0';
