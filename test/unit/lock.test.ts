/**
 * The state directory lock: one agent process per directory, whatever path names it; a lock
 * whose process died is free again. Real Unix sockets, and real child processes for "another
 * process". Linux uses abstract names; the socket-file variant (other systems) runs here too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
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
  // hex: an abstract name starts with a NUL byte, which a command line cannot carry
  const script =
    "const address = Buffer.from(process.argv[1], 'hex').toString();" +
    "require('node:net').createServer((s) => s.destroy()).listen(address, () => console.log('listening'))";
  const child = spawn(process.execPath, ['-e', script, Buffer.from(address).toString('hex')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
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

describe.each<NodeJS.Platform>(['linux', 'darwin'])('lockStateDir, %s addressing', (platform) => {
  it('refuses a second lock in this process until the first is released', async () => {
    const first = await lockStateDir(dir, platform);
    await expect(lockStateDir(dir, platform)).rejects.toThrow(StateDirInUseError);
    await expect(lockStateDir(dir, platform)).rejects.toThrow(
      /give each agent process .* agent.state_dir/,
    );
    await first.release();
    const again = await lockStateDir(dir, platform);
    await again.release();
  });

  it('refuses while another live process holds the directory', async () => {
    const other = await holder(lockAddress(dir, platform));
    try {
      await expect(lockStateDir(dir, platform)).rejects.toThrow(StateDirInUseError);
    } finally {
      await killed(other);
    }
  });

  it('is free again once the process holding it was killed', async () => {
    await killed(await holder(lockAddress(dir, platform)));
    const lock = await lockStateDir(dir, platform);
    await expect(lockStateDir(dir, platform)).rejects.toThrow(StateDirInUseError);
    await lock.release();
  });

  it('is one lock for one directory, whatever path names it', async () => {
    const real = join(dir, 'state');
    mkdirSync(real);
    const link = join(dir, 'link');
    symlinkSync(real, link);
    const lock = await lockStateDir(real, platform);
    await expect(lockStateDir(link, platform)).rejects.toThrow(StateDirInUseError);
    const elsewhere = await lockStateDir(join(dir, 'other'), platform);
    await elsewhere.release();
    await lock.release();
  });
});

describe('lockStateDir on Linux', () => {
  it('leaves no file behind, even when its process is killed', async () => {
    const address = lockAddress(dir, 'linux');
    expect(address.startsWith('\0')).toBe(true);
    await killed(await holder(address));
    expect(existsSync(join(dir, 'agent.lock'))).toBe(false);
  });

  it('gives directories with long paths names of their own', async () => {
    const a = join(dir, 'x'.repeat(100), 'a');
    const b = join(dir, 'x'.repeat(100), 'b');
    const lockA = await lockStateDir(a, 'linux');
    const lockB = await lockStateDir(b, 'linux');
    await expect(lockStateDir(a, 'linux')).rejects.toThrow(StateDirInUseError);
    await lockA.release();
    await lockB.release();
  });
});

describe('lockStateDir with socket files', () => {
  it('takes over the file a killed process left behind, and removes it on release', async () => {
    const address = lockAddress(dir, 'darwin');
    await killed(await holder(address));
    // kill -9 left the socket file, with nobody listening
    expect(existsSync(address)).toBe(true);
    const lock = await lockStateDir(dir, 'darwin');
    await lock.release();
    expect(existsSync(address)).toBe(false);
  });
});
