/**
 * The client's commands: each asks the server one thing and prints the answer, as text for a
 * person or, with --json, as the API's JSON.
 */
import { exitCodeOf, ClientError, EXIT } from './exit-codes';
import { ApiError, taskPath, type Api } from './http';
import { renderSummary, summarize } from './summary';
import { shortTime, table } from './tables';
import { renderView } from './view';
import { stateOf } from './watch-state';
import { watchToEnd, type WatchOptions } from './watch-command';
import type { ClientRequest } from './args';
import type { EndpointList, TaskDocument, TaskJson, TaskList } from './wire';

export interface CommandContext extends WatchOptions {
  api: Api;
}

export async function runRequest(request: ClientRequest, context: CommandContext): Promise<number> {
  const { api, json } = context;
  const print = (lines: string[]): void => {
    context.out.write(lines.map((line) => `${line}\n`).join(''));
  };
  const printJson = (value: unknown): void => print([JSON.stringify(value, null, 2)]);
  switch (request.command) {
    case 'send': {
      const { type, body } = request;
      const { status, body: task } = await api.post<TaskJson>(`/${encodeURIComponent(type)}`, body);
      // with --json and --wait, the one document comes at the end
      if (!json) print([sentLine(task, status)]);
      else if (!request.wait) printJson(task);
      if (!request.wait) return EXIT.DONE;
      return watchToEnd(api, type, body.identifier, context);
    }
    case 'watch':
      return watchToEnd(api, request.type, request.identifier, context);
    case 'get': {
      const found = await api.get<TaskDocument>(taskPath(request.type, request.identifier));
      const summary = summarize(found);
      if (json) {
        printJson({ ...found, summary });
      } else {
        const screen = { width: Number.MAX_SAFE_INTEGER, height: Number.MAX_SAFE_INTEGER };
        print(renderView(stateOf(found), screen, Date.now()));
        if (found.task.finished_at !== null) print(['', ...renderSummary(summary)]);
      }
      return exitCodeOf(found.task.status);
    }
    case 'list': {
      const path = request.type === null ? '/tasks' : `/${encodeURIComponent(request.type)}`;
      const list = await api.get<TaskList>(path, request.query);
      if (json) {
        printJson(list);
        return EXIT.DONE;
      }
      print(
        table(
          ['ID', 'TYPE', 'IDENTIFIER', 'STATUS', 'DONE', 'FAILED', 'EXPECTED', 'STARTED'],
          list.tasks.map((task) => [
            String(task.id),
            task.type,
            task.identifier,
            task.status,
            String(task.counts.done),
            String(task.counts.failed),
            String(task.counts.expected),
            shortTime(task.start_time),
          ]),
        ),
      );
      if (list.tasks.length === 0) print(['(no tasks)']);
      if (list.next !== null) print([`more: --cursor ${list.next}`]);
      return EXIT.DONE;
    }
    case 'cancel':
    case 'retry': {
      const { type, identifier, command } = request;
      const { body: task } = await api.post<TaskJson>(
        taskPath(type, identifier, command),
        request.body,
      );
      if (json && !(request.command === 'retry' && request.wait)) printJson(task);
      else if (!json) {
        print([
          command === 'cancel'
            ? `cancel asked: ${type} ${identifier} is ${task.status}`
            : `retrying: ${type} ${identifier} round ${task.round}, ${task.status}`,
        ]);
      }
      if (request.command === 'retry' && request.wait) {
        return watchToEnd(api, type, identifier, context);
      }
      return EXIT.DONE;
    }
    case 'endpoints':
      return endpoints(api, request.name, request.query, json, print);
    case 'schedules':
      return schedules(api, json, print);
  }
}

function sentLine(task: TaskJson, status: number): string {
  const count =
    task.endpoints.length === 0
      ? 'every agent (broadcast)'
      : `${task.endpoints.length} endpoint(s)`;
  const again = status === 200 ? ' (sent before with the same body: the stored task)' : '';
  return `sent ${task.type} ${task.identifier} to ${count}: ${task.status}${again}`;
}

async function endpoints(
  api: Api,
  name: string | null,
  query: Array<[string, string]>,
  json: boolean,
  print: (lines: string[]) => void,
): Promise<number> {
  if (name !== null) {
    const one = await api.get<{
      name: string;
      registration: EndpointList['endpoints'][number] | null;
      recent_tasks: Array<Record<string, string | number | null>>;
    }>(`/endpoints/${encodeURIComponent(name)}`);
    if (json) {
      print([JSON.stringify(one, null, 2)]);
      return EXIT.DONE;
    }
    const reg = one.registration;
    print([
      reg === null
        ? `${one.name}: never seen (no agent of that name said hello)`
        : `${one.name}: ${reg.status} since ${shortTime(reg.since)}, tasker ${reg.version}, ` +
          `types ${reg.types.join(',')}, running ${reg.running}/${reg.capacity}`,
      '',
      ...table(
        ['TYPE', 'IDENTIFIER', 'TASK', 'HERE', 'ERRNR', 'CHANGED'],
        one.recent_tasks.map((task) => [
          String(task.type),
          String(task.identifier),
          String(task.task_status),
          String(task.status),
          task.errnr === null ? '-' : String(task.errnr),
          shortTime(task.last_modified_time as string | null),
        ]),
      ),
    ]);
    return EXIT.DONE;
  }
  const list = await api.get<EndpointList>('/endpoints', query);
  if (json) {
    print([JSON.stringify(list, null, 2)]);
    return EXIT.DONE;
  }
  print(
    table(
      ['NAME', 'STATUS', 'SINCE', 'VERSION', 'TYPES', 'LABELS', 'RUNNING'],
      list.endpoints.map((e) => [
        e.name,
        e.status,
        shortTime(e.since),
        e.version,
        e.types.join(','),
        Object.entries(e.labels)
          .map(([key, value]) => `${key}=${value}`)
          .join(',') || '-',
        `${e.running}/${e.capacity}`,
      ]),
    ),
  );
  const statuses = Object.entries(list.summary.statuses)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  print([`${list.summary.total} endpoint(s)${statuses === '' ? '' : `: ${statuses}`}`]);
  if (list.next !== null) print([`more: --after ${list.next}`]);
  return EXIT.DONE;
}

async function schedules(
  api: Api,
  json: boolean,
  print: (lines: string[]) => void,
): Promise<number> {
  let answer: unknown;
  try {
    answer = await api.get<unknown>('/schedules');
  } catch (thrown) {
    if (thrown instanceof ApiError && thrown.status === 404) {
      throw new ClientError(
        `this server has no schedules API (GET /schedules answered 404 at ${api.url})`,
      );
    }
    throw thrown;
  }
  const list = (answer as { schedules?: unknown }).schedules;
  if (json || !Array.isArray(list)) print([JSON.stringify(answer, null, 2)]);
  else if (list.length === 0) print(['(no schedules)']);
  else print((list as ScheduleSummary[]).map(scheduleLine));
  return EXIT.DONE;
}

/** What a schedule listing shows of each (the rest with --json). */
interface ScheduleSummary {
  name: string;
  type: string;
  every_ms: number | null;
  cron: string | null;
  timezone: string;
  paused: boolean;
  next_run_at: string | null;
  last_error: string | null;
}

/** "nightly-backup  backup  cron 0 3 * * * (Europe/Berlin)  next 2026-12-03T02:00:00.000Z" */
export function scheduleLine(schedule: ScheduleSummary): string {
  const when =
    schedule.cron !== null
      ? `cron ${schedule.cron} (${schedule.timezone})`
      : `every ${(schedule.every_ms ?? 0) / 1000} s`;
  const next = schedule.paused
    ? 'paused'
    : schedule.next_run_at === null
      ? 'ended'
      : `next ${schedule.next_run_at}`;
  const error = schedule.last_error === null ? '' : `  last error: ${schedule.last_error}`;
  return `${schedule.name}  ${schedule.type}  ${when}  ${next}${error}`;
}
