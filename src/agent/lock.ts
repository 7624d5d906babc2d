/**
 * One agent process per state directory. Two processes counting runs in one attempt journal
 * would overwrite each other's counts, so the agent holds a lock on its directory: a Unix socket
 * listening in it. The kernel closes the socket however the process ends (crash, kill -9,
 * reboot), so a lock left behind is told apart from a live one by connecting to it: refused
 * means nobody holds it any more and it is taken over; answered means another agent is running.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';

const SOCKET_NAME = 'agent.lock';
/** a socket path must fit sun_path: 108 bytes on Linux, 104 on macOS */
const MAX_SOCKET_PATH = 100;

export class StateDirInUseError extends Error {
  override name = 'StateDirInUseError';
}

export interface DirLock {
  release(): Promise<void>;
}

/** The lock's address: a file in the directory, or on Linux an abstract name if that is too long. */
export function lockAddress(dir: string): string {
  const file = join(resolve(dir), SOCKET_NAME);
  if (Buffer.byteLength(file) <= MAX_SOCKET_PATH) return file;
  if (process.platform === 'linux') {
    return `\0tasker-agent-${createHash('sha256').update(file).digest('hex').slice(0, 40)}`;
  }
  throw new Error(`the state directory's path is too long for its lock socket: ${dir}`);
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

/** Whether a process answers on `address`. */
function answers(address: string): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection(address);
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

function inUse(dir: string): StateDirInUseError {
  return new StateDirInUseError(
    `another agent process is using the state directory ${dir}: give each agent process of ` +
      'an endpoint its own agent.state_dir',
  );
}

/**
 * Lock `dir` (created if missing) for this process until `release`. Fails with
 * StateDirInUseError while another process, or another agent of this one, holds it.
 */
export async function lockStateDir(dir: string): Promise<DirLock> {
  mkdirSync(dir, { recursive: true });
  const address = lockAddress(dir);
  const server = createServer((socket) => socket.destroy());
  try {
    await listen(server, address);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EADDRINUSE') throw err;
    if (await answers(address)) throw inUse(dir);
    // left by a process that is gone: take it over (an abstract name is never left behind)
    await unlink(address).catch((unlinkErr: unknown) => {
      if ((unlinkErr as { code?: unknown }).code !== 'ENOENT') throw unlinkErr;
    });
    try {
      await listen(server, address);
    } catch (again) {
      // another agent starting at the same moment took it first
      if ((again as { code?: unknown }).code === 'EADDRINUSE') throw inUse(dir);
      throw again;
    }
  }
  // the lock alone must not keep the process running
  server.unref();
  return {
    release: () => new Promise<void>((done) => server.close(() => done())),
  };
}
