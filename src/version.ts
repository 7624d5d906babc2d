/** The package version, read once from package.json (reported by agents with each result). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

function readVersion(): string {
  for (const up of ['..', '../..']) {
    try {
      const pkg = JSON.parse(readFileSync(join(__dirname, up, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'tasker' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here; try one level up (running from dist/src rather than src)
    }
  }
  return '0.0.0';
}

export const VERSION = readVersion();
