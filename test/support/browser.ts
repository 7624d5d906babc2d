/**
 * A real headless Chromium for the dashboard's tests and its screenshots: the machine's own
 * (Debian's `chromium` package; TEST_CHROMIUM points elsewhere), driven by playwright-core, with
 * a fresh profile, nothing that reaches the internet, and the times of the page in UTC. A
 * missing browser fails loudly.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.TEST_CHROMIUM ?? '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(
  viewport: { width: number; height: number } = { width: 1280, height: 800 },
): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the dashboard is tested in a real Chromium ` +
        '(apt-get install chromium, or TEST_CHROMIUM=/path/to/chromium)',
    );
  }
  const profile = mkdtempSync(join(tmpdir(), 'tasker-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport,
    timezoneId: 'UTC',
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
