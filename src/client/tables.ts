/**
 * Lists as aligned columns, for `list` and `endpoints`.
 */
import { clean, displayWidth, pad } from './text';

/** Rows of cells as lines, each column as wide as its widest cell; the last is not padded. */
export function table(header: string[], rows: string[][]): string[] {
  const all = [header, ...rows.map((row) => row.map(clean))];
  const widths = header.map((_, column) =>
    Math.max(...all.map((row) => displayWidth(row[column] ?? ''))),
  );
  return all.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : pad(cell, widths[column] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** 2026-11-30T10:14:47.310Z → 2026-11-30 10:14:47 */
export function shortTime(iso: string | null): string {
  return iso === null ? '-' : iso.replace('T', ' ').replace(/\.\d+Z$/, '');
}
