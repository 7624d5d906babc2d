/**
 * A real terminal for a test: a tmux session of a given size on a server of its own (a unique
 * socket, so nobody else's tmux is touched), running one shell command; its screen read as a
 * person would see it (`capture-pane`), and the server killed afterwards.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { uniqueName } from './services';
import { sleep } from './waiting';

/** `text` as one word for sh */
export function shellWord(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export class TmuxSession {
  private readonly socket = uniqueName('tasker-test-');

  private constructor(private readonly name: string) {}

  /** Start `command` (run by sh) in a `width` x `height` terminal. */
  static start(command: string, width: number, height: number): TmuxSession {
    const session = new TmuxSession('t');
    session.tmux([
      'new-session',
      '-d',
      '-s',
      session.name,
      '-x',
      String(width),
      '-y',
      String(height),
      command,
    ]);
    return session;
  }

  private tmux(args: string[]): string {
    try {
      return execFileSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8' });
    } catch (thrown) {
      if ((thrown as { code?: string }).code === 'ENOENT') {
        throw new Error(
          'tmux is not on the PATH: the terminal tests need it (apt-get install tmux)',
        );
      }
      throw thrown;
    }
  }

  /** The screen's lines, trailing blanks and blank lines at the bottom dropped. */
  screen(): string[] {
    const lines = this.tmux(['capture-pane', '-p', '-t', this.name])
      .split('\n')
      .map((line) => line.trimEnd());
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return lines;
  }

  /** The screen once `done` holds for it; fails with the last screen after `timeoutMs`. */
  async waitForScreen(
    done: (lines: string[]) => boolean,
    what: string,
    timeoutMs = 20_000,
  ): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.screen();
      if (done(lines)) return lines;
      if (Date.now() > deadline) {
        throw new Error(
          `the terminal did not show ${what} within ${timeoutMs} ms:\n${lines.join('\n')}`,
        );
      }
      await sleep(100);
    }
  }

  /** Type `keys` as tmux names them (`C-c` is Ctrl-C). */
  keys(...keys: string[]): void {
    this.tmux(['send-keys', '-t', this.name, ...keys]);
  }

  /** Stop its tmux server, and remove the socket file that tmux leaves behind. */
  kill(): void {
    let socketPath: string | null = null;
    try {
      socketPath = this.tmux(['display-message', '-p', '#{socket_path}']).trim();
      this.tmux(['kill-server']);
    } catch {
      // gone already
    }
    if (socketPath !== null && socketPath !== '') rmSync(socketPath, { force: true });
  }
}
