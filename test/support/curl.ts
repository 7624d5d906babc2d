/**
 * The API driven with curl from the repository directory, as the original tasker's README walk-through
 * does it, for the end-to-end tests.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isTerminalTask } from '../../src/domain';
import type { TaskWithResponses } from '../../src/store';
import { ROOT } from './child-processes';
import { waitFor } from './waiting';

const exec = promisify(execFile);

/** The identifier in the original tasker's testdata.json. */
export const ORIGINAL_IDENTIFIER = 'e7bd91d0-16ad-11e2-892e-0800200c9a66';

export interface CurlApi {
  /** POST testdata.json unchanged, as `curl -d@testdata.json` in the original README */
  postTestdata(type: string): Promise<Record<string, unknown>>;
  post(type: string, body: Record<string, unknown>): Promise<unknown>;
  get(type: string, identifier: string): Promise<TaskWithResponses>;
  /** GET until the task is final (20 s at most) */
  terminal(type: string, identifier: string): Promise<TaskWithResponses>;
  /** the URL of a path of this API, for requests curl's walk-through does not make */
  url(path: string): string;
}

async function curl(...args: string[]): Promise<unknown> {
  const { stdout } = await exec('curl', ['-s', ...args], { cwd: ROOT });
  return JSON.parse(stdout);
}

/** `port()` is read on every call: tests learn their port in beforeAll. */
export function curlApi(port: () => number): CurlApi {
  const url = (path: string): string => `http://localhost:${port()}/${path}`;
  const post = (type: string, args: string[]): Promise<unknown> =>
    curl('-X', 'POST', '-H', 'content-type: application/json', ...args, url(type));
  const get = (type: string, identifier: string): Promise<TaskWithResponses> =>
    curl(url(`${type}/${identifier}`)) as Promise<TaskWithResponses>;
  return {
    url,
    postTestdata: (type) => post(type, ['-d@testdata.json']) as Promise<Record<string, unknown>>,
    post: (type, body) => post(type, ['-d', JSON.stringify(body)]),
    get,
    terminal: (type, identifier) =>
      waitFor(
        () => get(type, identifier),
        (t) => isTerminalTask(t.task.status),
        20_000,
        `${type}/${identifier} to finish`,
      ),
  };
}
