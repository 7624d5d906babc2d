/**
 * What a database url names, read without opening anything: config resolves a `sqlite:` url to
 * an absolute one at start, and the store opens the file it names.
 */
import path from 'node:path';

const SQLITE_FORMS = 'sqlite:PATH (from the working directory) or sqlite:///ABSOLUTE/PATH';

/**
 * The file a `sqlite:` url names, made absolute against `cwd`. `sqlite:///ABSOLUTE` is a URL, so
 * percent-escapes in it are decoded; `sqlite:PATH` is taken as written.
 */
export function sqliteFile(url: string, cwd = process.cwd()): string {
  let file = url.slice('sqlite:'.length);
  if (url.startsWith('sqlite://')) {
    const parsed = new URL(url);
    // sqlite://var/x.db would silently mean /x.db on host "var"
    if (parsed.host !== '') {
      throw new Error(`the sqlite: url names a host (${parsed.host}); write ${SQLITE_FORMS}`);
    }
    try {
      file = decodeURIComponent(parsed.pathname);
    } catch {
      throw new Error(`the sqlite: url has a malformed %-escape; write ${SQLITE_FORMS}`);
    }
  }
  if (file === '' || file === '/')
    throw new Error(`the sqlite: url names no file; write ${SQLITE_FORMS}`);
  return path.resolve(cwd, file);
}

/** The url as every part of tasker (and `tasker up`'s agents) should see it: sqlite: made absolute. */
export function absoluteDatabaseUrl(url: string, cwd: string): string {
  if (!url.startsWith('sqlite:')) return url;
  return `sqlite://${sqliteFile(url, cwd).split('/').map(encodeURIComponent).join('/')}`;
}

/**
 * A listen address, `HOST:PORT` (an IPv6 host in brackets, `[::1]:9464`); port 0 takes any free
 * port. Null when the text is not one.
 */
export function listenAddress(text: string): { host: string; port: number } | null {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (match === null) return null;
  const port = Number(match[3]);
  if (port > 65535) return null;
  return { host: (match[1] ?? match[2]) as string, port };
}
