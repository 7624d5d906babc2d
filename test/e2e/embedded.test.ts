/**
 * The embedded mode end to end: `tasker up --mode development` (what `npm start` runs) with no
 * MariaDB and no RabbitMQ involved, a SQLite file and the in-process broker. Runs in an empty
 * working directory, as a fresh checkout would, and starts the stack twice on the same file.
 * The scenarios are in scenarios.ts, shared with the walk-through on MariaDB and RabbitMQ.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertBuilt, childEnv, startCli, type Child } from '../support/child-processes';
import { curlApi } from '../support/curl';
import { freePort } from '../support/ports';
import { runScenarios } from './scenarios';

let workDir: string | undefined;
let port: number;
let up: Child | undefined;

/** `tasker up` in the work directory; it migrates the SQLite file first, every time. */
async function startUp(): Promise<void> {
  if (workDir === undefined) throw new Error('no work directory');
  up = startCli(
    [
      'up',
      '--mode',
      'development',
      '--port',
      String(port),
      '--set',
      'task_types.worker.wait_for_endpoints_timeout=3s',
      '--set',
      'server.sweep_interval=250ms',
    ],
    childEnv({ WORKER_SECONDS: '1' }),
    workDir,
  );
  // the start-up summary on stdout; the JSON log line on stderr says "tasker is up" first
  await up.waitForOutput('tasker is up: API', 30_000);
}

runScenarios({
  kind: 'embedded',
  api: curlApi(() => port),
  serveCommand: ['up', '--mode', 'development'],
  get cwd(): string {
    if (workDir === undefined) throw new Error('no work directory');
    return workDir;
  },
  serving: () => {
    if (up === undefined) throw new Error('tasker up is not running');
    return up;
  },
  restartServing: startUp,
  start: async () => {
    assertBuilt();
    workDir = mkdtempSync(join(tmpdir(), 'tasker-embedded-'));
    port = await freePort();
    await startUp();
  },
  stop: async () => {
    await up?.stop();
    if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
  },
});
