/**
 * A region of the terminal redrawn in place: each draw moves the cursor back to the region's
 * first line, erases to the end of the screen and writes the new lines. Line wrapping is off
 * while it is drawn, so a line wider than the terminal (a miscounted wide character, a resize)
 * is clipped by the terminal instead of pushing the region down; the view it draws is at most
 * the screen's height less one line, so its first line never scrolls out of reach. Four escape
 * sequences, every terminal emulator since the VT100 knows them.
 */
const CSI = '\u001b[';
const HIDE_CURSOR = `${CSI}?25l`;
const SHOW_CURSOR = `${CSI}?25h`;
const NO_WRAP = `${CSI}?7l`;
const WRAP = `${CSI}?7h`;
const ERASE_DOWN = `${CSI}J`;

export interface TerminalOutput {
  write(text: string): boolean;
  columns?: number;
  rows?: number;
}

export class LiveRegion {
  private drawnLines = 0;
  private started = false;

  constructor(private readonly out: TerminalOutput) {}

  get screen(): { width: number; height: number } {
    return { width: this.out.columns ?? 80, height: this.out.rows ?? 24 };
  }

  draw(lines: string[]): void {
    let text = '';
    if (!this.started) {
      this.started = true;
      text += HIDE_CURSOR + NO_WRAP;
    }
    // to the first column of the region's first line, then clear it and what is below
    if (this.drawnLines > 0) text += `${CSI}${this.drawnLines}F`;
    else text += '\r';
    text += ERASE_DOWN + lines.map((line) => `${line}\n`).join('');
    this.drawnLines = lines.length;
    this.out.write(text);
  }

  /** Leave the last drawing where it is and give the terminal back as it was. */
  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.out.write(WRAP + SHOW_CURSOR);
  }
}
