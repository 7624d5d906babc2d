/**
 * The state directory lock: one agent process per directory, a lock left by a dead process
 * taken over. Real Unix sockets, and real child processes for "another process".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateDirInUseError, lockAddress, lockStateDir } from '../../src/agent/lock';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tasker-lock-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A node process listening on `address`, as an agent holding the lock does. */
async function holder(address: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require('node:net').createServer((s) => s.destroy()).listen(process.argv[1], () => console.log('listening'))`,
      address,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`holder exited with ${code}`)));
  });
  return child;
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

describe('lockStateDir', () => {
  it('refuses a second lock in this process until the first is released', async () => {
    const first = await lockStateDir(dir);
    await expect(lockStateDir(dir)).rejects.toThrow(StateDirInUseError);
    await expect(lockStateDir(dir)).rejects.toThrow(/give each agent process .* agent.state_dir/);
    await first.release();
    const again = await lockStateDir(dir);
    await again.release();
  });

  it('refuses while another live process holds the directory', async () => {
    const other = await holder(lockAddress(dir));
    try {
      await expect(lockStateDir(dir)).rejects.toThrow(StateDirInUseError);
    } finally {
      await killed(other);
    }
  });

  it('takes over a lock whose process was killed', async () => {
    const address = lockAddress(dir);
    await killed(await holder(address));
    // kill -9 left the socket file behind, with nobody listening
    expect(existsSync(address)).toBe(true);
    const lock = await lockStateDir(dir);
    await expect(lockStateDir(dir)).rejects.toThrow(StateDirInUseError);
    await lock.release();
    expect(existsSync(address)).toBe(false);
  });

  it('uses an abstract socket name when the directory path is too long for a socket file', async () => {
    const deep = join(dir, 'x'.repeat(60), 'y'.repeat(60));
    expect(lockAddress(deep).startsWith('\0')).toBe(true);
    const lock = await lockStateDir(deep);
    await expect(lockStateDir(deep)).rejects.toThrow(StateDirInUseError);
    await lock.release();
    const again = await lockStateDir(deep);
    await again.release();
  });
});
