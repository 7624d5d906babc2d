/**
 * One agent process per state directory. Two processes counting runs in one attempt journal
 * would overwrite each other's counts, so the agent holds a lock on its directory: a Unix socket
 * listening on a name derived from the directory. The kernel closes the socket however the
 * process ends (crash, kill -9, reboot).
 *
 * On Linux the name is abstract (no file): binding it is atomic and nothing is left behind, so
 * "in use" simply means another live process holds it. Abstract names belong to a network
 * namespace: agents in different containers that share a state directory do not see each
 * other's lock. Elsewhere the lock is a socket file in the directory; one left by a dead process
 * refuses connections and is taken over.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, realpathSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';

const SOCKET_FILE = 'agent.lock';

export class StateDirInUseError extends Error {
  override name = 'StateDirInUseError';
}

export interface DirLock {
  release(): Promise<void>;
}

/** The lock's address for an existing directory. */
export function lockAddress(dir: string, platform: NodeJS.Platform = process.platform): string {
  const real = realpathSync(dir);
  if (platform === 'linux') {
    return `\0tasker-agent-${createHash('sha256').update(real).digest('hex').slice(0, 40)}`;
  }
  return join(real, SOCKET_FILE);
}

function listen(server: Server, address: string): Promise<void> {
  return new Promise((done, failed) => {
    server.once('error', failed);
    server.listen(address, () => {
      server.off('error', failed);
      done();
    });
  });
}

/** Whether a socket file is a leftover: nobody listens on it any more. */
function isLeftover(address: string): Promise<boolean> {
  return new Promise((done, failed) => {
    const socket = createConnection(address);
    socket.once('connect', () => {
      socket.destroy();
      done(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') done(true);
      // gone in the meantime: let the caller try again
      else if (err.code === 'ENOENT') done(true);
      // EACCES and the like say nothing about whether its owner lives
      else failed(err);
    });
  });
}

function inUse(dir: string): StateDirInUseError {
  return new StateDirInUseError(
    `another agent process is using the state directory ${dir}: give each agent process of ` +
      'an endpoint its own agent.state_dir',
  );
}

const codeOf = (err: unknown): unknown => (err as { code?: unknown }).code;

/**
 * Lock `dir` (created if missing) for this process until `release`. Fails with
 * StateDirInUseError while another process, or another agent of this one, holds it.
 */
export async function lockStateDir(
  dir: string,
  platform: NodeJS.Platform = process.platform,
): Promise<DirLock> {
  mkdirSync(dir, { recursive: true });
  const address = lockAddress(dir, platform);
  const server = createServer((socket) => socket.destroy());
  try {
    await listen(server, address);
  } catch (err) {
    if (codeOf(err) !== 'EADDRINUSE') throw err;
    if (address.startsWith('\0') || !(await isLeftover(address))) throw inUse(dir);
    await unlink(address).catch((unlinkErr: unknown) => {
      if (codeOf(unlinkErr) !== 'ENOENT') throw unlinkErr;
    });
    try {
      await listen(server, address);
    } catch (again) {
      // another agent starting at the same moment took it first
      if (codeOf(again) === 'EADDRINUSE') throw inUse(dir);
      throw again;
    }
  }
  // a failed accept (EMFILE while a probe connects) must not crash the agent holding the lock
  server.on('error', () => undefined);
  // the lock alone must not keep the process running
  server.unref();
  return {
    release: () => new Promise<void>((done) => server.close(() => done())),
  };
}
