/**
 * What a run printed, within a bound: head and tail, what was left out said, each line with its
 * time and stream, control characters shown, UTF-8 never cut inside a character.
 */
import { OutputCapture } from '../../src/agent/output';
import { readResultEvent } from '../../src/domain';
import { resultEvent } from '../support/messages';

const strip = (text: string): string[] =>
  text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z /, ''));

it('keeps everything within the bound, each line with its stream', () => {
  const capture = new OutputCapture(1000);
  capture.add('stdout', 'hello');
  capture.add('stderr', 'warning: disk');
  capture.add('log', 'info step {"n":1}');
  const result = capture.result();
  expect(strip(result?.text ?? '')).toEqual([
    'stdout hello',
    'stderr warning: disk',
    'log info step {"n":1}',
  ]);
  expect(result?.bytes).toBe(Buffer.byteLength(result?.text ?? ''));
});

it('nothing printed: null', () => {
  expect(new OutputCapture(1000).result()).toBeNull();
});

it('keeps the head and the tail of a long output, saying how much was left out', () => {
  const capture = new OutputCapture(400);
  for (let i = 1; i <= 1000; i += 1) capture.add('stdout', `line ${i}`);
  const result = capture.result();
  const lines = strip(result?.text ?? '');
  expect(lines[0]).toBe('stdout line 1');
  expect(lines[lines.length - 1]).toBe('stdout line 1000');
  expect(lines.find((line) => line.includes('left out'))).toMatch(/^… \d+ bytes left out …$/);
  expect(Buffer.byteLength(result?.text ?? '')).toBeLessThanOrEqual(400 + 40);
  expect(result?.bytes).toBeGreaterThan(30_000);
});

it('two hundred thousand lines cost no more than the bound', () => {
  const capture = new OutputCapture(64 * 1024);
  for (let i = 0; i < 200_000; i += 1) capture.add('stdout', 'x'.repeat(50));
  expect(Buffer.byteLength(capture.result()?.text ?? '')).toBeLessThanOrEqual(64 * 1024 + 40);
});

it('shows control characters as \\xNN and keeps tabs', () => {
  const capture = new OutputCapture(1000);
  capture.add('stdout', 'a\u0000b\u001b[31mred\tc\u007f');
  expect(strip(capture.result()?.text ?? '')).toEqual(['stdout a\\x00b\\x1b[31mred\tc\\x7f']);
});

it('cuts a line longer than half the bound on a character boundary', () => {
  const capture = new OutputCapture(200);
  capture.add('stdout', 'first');
  capture.add('stdout', 'é'.repeat(500));
  const text = capture.result()?.text ?? '';
  expect(text).not.toContain('\ufffd');
  expect(text).toContain('é…\n');
});

describe('a finished event carrying output', () => {
  it('is read with its output and size', () => {
    const event = readResultEvent({ ...resultEvent(1, 'e1'), output: 'x\n', output_bytes: 2000 });
    expect(event).toMatchObject({ output: 'x\n', output_bytes: 2000 });
  });

  it('without output, has none', () => {
    expect(readResultEvent(resultEvent(1, 'e1'))).not.toHaveProperty('output');
  });

  it('refuses an output over the limit, naming it', () => {
    expect(() =>
      readResultEvent({ ...resultEvent(1, 'e1'), output: 'x'.repeat(1024 * 1024 + 1) }),
    ).toThrow(/output/);
  });
});
