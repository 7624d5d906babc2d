/**
 * What a run printed, kept within a bound: each line with its time and stream, the first half
 * of the bound from the start and the second half from the end, with how much was left out in
 * between. A handler printing gigabytes costs the agent at most the bound.
 */

/** where a line came from: a command's stdout or stderr, a module's ctx.log */
export type OutputStream = 'stdout' | 'stderr' | 'log';

export interface CapturedOutput {
  /** the head and the tail, each line "<ISO time> <stream> <text>" */
  text: string;
  /** the bytes of all the lines, as written here, before any was left out */
  bytes: number;
}

// control characters but tab: shown as \xNN, so that what is kept is text a terminal shows
// as it is and a database stores as it is
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

const escapeControl = (line: string): string =>
  line.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

/** `text` cut to at most `bytes` bytes of UTF-8, on a character boundary. */
function cutUtf8(text: string, bytes: number): string {
  const cut = Buffer.from(text).subarray(0, bytes).toString('utf8');
  // a character cut in two decodes as U+FFFD at the end: drop it
  return cut.endsWith('\ufffd') && !text.startsWith(cut) ? cut.slice(0, -1) : cut;
}

export class OutputCapture {
  private readonly head: string[] = [];
  private headBytes = 0;
  private readonly tail: string[] = [];
  private tailBytes = 0;
  private total = 0;
  private readonly half: number;

  constructor(limitBytes: number) {
    this.half = Math.max(1, Math.floor(limitBytes / 2));
  }

  add(stream: OutputStream, line: string): void {
    let text = `${new Date().toISOString()} ${stream} ${escapeControl(line)}\n`;
    let bytes = Buffer.byteLength(text);
    this.total += bytes;
    if (this.tail.length === 0 && this.headBytes + bytes <= this.half) {
      this.head.push(text);
      this.headBytes += bytes;
      return;
    }
    if (bytes > this.half) {
      text = `${cutUtf8(text, Math.max(0, this.half - 4))}…\n`;
      bytes = Buffer.byteLength(text);
    }
    this.tail.push(text);
    this.tailBytes += bytes;
    while (this.tailBytes > this.half) {
      this.tailBytes -= Buffer.byteLength(this.tail.shift() as string);
    }
  }

  /** What was kept, or null when nothing was printed. */
  result(): CapturedOutput | null {
    if (this.total === 0) return null;
    const left = this.total - this.headBytes - this.tailBytes;
    const gap = left > 0 ? `… ${left} bytes left out …\n` : '';
    return { text: this.head.join('') + gap + this.tail.join(''), bytes: this.total };
  }
}
