/**
 * The API over fetch, for tests that start the server themselves.
 */
import { isTerminalTask } from '../../src/domain';
import type { TaskWithResponses } from '../../src/store';
import { waitFor } from './waiting';

export async function getTask(
  baseUrl: string,
  type: string,
  identifier: string,
): Promise<TaskWithResponses> {
  const res = await fetch(`${baseUrl}/${type}/${encodeURIComponent(identifier)}`);
  if (res.status !== 200)
    throw new Error(`GET ${type}/${identifier}: ${res.status} ${await res.text()}`);
  return (await res.json()) as TaskWithResponses;
}

export async function postTask(
  baseUrl: string,
  type: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${baseUrl}/${type}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** GET until the task is DONE, FAILED or INCOMPLETE. */
export function waitForTerminal(
  baseUrl: string,
  type: string,
  identifier: string,
  timeoutMs = 20_000,
): Promise<TaskWithResponses> {
  return waitFor(
    () => getTask(baseUrl, type, identifier),
    (found) => isTerminalTask(found.task.status),
    timeoutMs,
    `${type}/${identifier} to finish`,
  );
}

export interface Answer<T = unknown> {
  status: number;
  /** the JSON body, or null when there is none */
  body: T;
  headers: Headers;
}

/** Any request with an optional JSON body, answered with its status, JSON body and headers. */
export async function callJson<T = unknown>(
  url: string,
  method: 'GET' | 'POST' | 'DELETE',
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer<T>> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: (text === '' ? null : JSON.parse(text)) as T,
    headers: res.headers,
  };
}
