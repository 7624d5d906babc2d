/**
 * The README and the manual in docs/ link to each other and into the repository: every relative
 * link must name a file or directory that exists, and a `#anchor` must name a heading of the
 * markdown file it points into (as GitHub makes anchors from headings).
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = join(__dirname, '..', '..');

/** The markdown files whose links are checked. */
function documents(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join(ROOT, 'docs', name));
  return [join(ROOT, 'README.md'), ...docs];
}

/** The lines of a markdown file outside fenced code blocks, with their 1-based numbers. */
function proseLines(text: string): Array<{ line: number; text: string }> {
  const lines: Array<{ line: number; text: string }> = [];
  let fence: string | null = null;
  text.split('\n').forEach((line, i) => {
    const marker = /^\s*(```+|~~~+)/.exec(line)?.[1];
    if (marker !== undefined) {
      if (fence === null) fence = marker[0] as string;
      else if (marker.startsWith(fence)) fence = null;
      return;
    }
    if (fence === null) lines.push({ line: i + 1, text: line });
  });
  return lines;
}

/** A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens. */
function headingAnchor(heading: string): string {
  const plain = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link keeps its text
    .replace(/[`*]/g, '');
  return plain
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a markdown file's headings give, repeated headings numbered as GitHub does. */
function anchorsOf(file: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text } of proseLines(readFileSync(file, 'utf8'))) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text)?.[1];
    if (heading === undefined) continue;
    const anchor = headingAnchor(heading);
    const count = seen.get(anchor) ?? 0;
    seen.set(anchor, count + 1);
    anchors.add(count === 0 ? anchor : `${anchor}-${count}`);
  }
  return anchors;
}

interface Link {
  file: string;
  line: number;
  target: string;
}

/** The inline links `[text](target)` of a file, outside code blocks and code spans. */
function linksOf(file: string): Link[] {
  const links: Link[] = [];
  for (const { line, text } of proseLines(readFileSync(file, 'utf8'))) {
    const prose = text.replace(/`[^`]*`/g, '');
    for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      links.push({ file, line, target: match[1] as string });
    }
  }
  return links;
}

/** Why a link does not resolve, or null when it does. */
function problemWith(link: Link): string | null {
  const { target } = link;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return null; // https:, mailto: …
  const hash = target.indexOf('#');
  const path = hash < 0 ? target : target.slice(0, hash);
  const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1));
  const file = path === '' ? link.file : resolve(dirname(link.file), decodeURIComponent(path));
  if (!existsSync(file)) return `${relative(ROOT, file)} does not exist`;
  if (anchor === null) return null;
  if (statSync(file).isDirectory() || !file.endsWith('.md')) {
    return `#${anchor} points into ${relative(ROOT, file)}, which has no headings`;
  }
  if (!anchorsOf(file).has(anchor)) return `${relative(ROOT, file)} has no heading #${anchor}`;
  return null;
}

it('makes anchors from headings as GitHub does', () => {
  expect(headingAnchor('Deploying a server with `scripts/provision.sh`')).toBe(
    'deploying-a-server-with-scriptsprovisionsh',
  );
  expect(headingAnchor('`POST /<taskType>` — create a task')).toBe('post-tasktype--create-a-task');
  expect(headingAnchor('Prefetch and long handlers')).toBe('prefetch-and-long-handlers');
});

it('every relative link in README.md and docs/*.md resolves', () => {
  const links = documents().flatMap(linksOf);
  expect(links.length).toBeGreaterThan(0);
  const broken = links.flatMap((link) => {
    const problem = problemWith(link);
    return problem === null
      ? []
      : [`${relative(ROOT, link.file)}:${link.line}: (${link.target}) ${problem}`];
  });
  if (broken.length > 0) throw new Error(`links that do not resolve:\n${broken.join('\n')}`);
});
