/**
 * The routes of tasks: create (POST /<type>, the original tasker's), get with an optional wait
 * (GET /<type>/<identifier>), watch (…/events), one endpoint's response with its history
 * (…/responses/<endpoint>), cancel and retry (POST …/cancel, …/retry), and lists of one type
 * (GET /<type>) or of all (GET /tasks), with the stream of every change (GET /events).
 */
import express, { type Request, type RequestHandler, type Router } from 'express';
import type { TaskerConfig, TaskTypeConfig } from '../config';
import {
  NotFoundError,
  TaskerError,
  TASK_STATUSES,
  ValidationError,
  rejectUnknownKeys,
  type Fail,
} from '../domain';
import type { ChangeFeed, Intake } from '../server';
import {
  cancelTask,
  findResponse,
  findTask,
  listTasks,
  registryOf,
  retryTask,
  toTaskView,
  type ActionOutcome,
  type Db,
  type TaskWithResponses,
} from '../store';
import {
  parseCancelBody,
  parseCreateTaskBody,
  parseListQuery,
  parseRetryBody,
  parseWaitQuery,
  taskEtag,
  writeCursor,
} from './validate';
import { jsonParser, requireJson } from './json-body';
import { EVENTS_QUERY, fieldNames } from './request-fields';
import { streamChanges, streamTask, waitForTask } from './watch';

export interface TaskRouteDeps {
  db: Db;
  config: TaskerConfig;
  intake: Intake;
  changes: ChangeFeed;
  /** the outbox has something to publish now (a cancel, a round): the relay should look */
  onOutbox?: () => void;
}

const refused: Fail = (path, problem) => new ValidationError(`${path} ${problem}`, path);

function taskTypeOf(req: Request, config: TaskerConfig): TaskTypeConfig {
  const name = String(req.params.type);
  const type = Object.hasOwn(config.taskTypes, name) ? config.taskTypes[name] : undefined;
  if (type === undefined) {
    throw new NotFoundError(
      'unknown_task_type',
      `unknown task type ${JSON.stringify(name)}; configured: ${Object.keys(config.taskTypes).join(', ')}`,
    );
  }
  return type;
}

/** The list of `?type=a,b` or `?status=X,Y` of the change stream, or null for all. */
function words(value: unknown, known: readonly string[], key: string): string[] | null {
  if (value === undefined) return null;
  const list = String(value)
    .split(',')
    .map((word) => word.trim())
    .filter((word) => word !== '');
  for (const word of list) {
    if (!known.includes(word)) {
      throw new TaskerError(
        'bad_request',
        `${key} ${JSON.stringify(word)} is not one of ${known.join(', ')}`,
        {
          details: { field: key },
        },
      );
    }
  }
  return list;
}

/**
 * The task with what the registry knows of each PENDING row's endpoint (online, offline since
 * when, never seen): whether it waits for a busy agent or for one that is down.
 */
async function withRegistry(db: Db, task: TaskWithResponses): Promise<TaskWithResponses> {
  const pending = task.taskResponseList.filter((response) => response.status === 'PENDING');
  if (pending.length === 0) return task;
  const registry = await registryOf(
    db,
    pending.map((response) => response.endpoint),
  );
  return {
    ...task,
    taskResponseList: task.taskResponseList.map((response) => {
      const known = registry.get(response.endpoint);
      return response.status === 'PENDING' && known !== undefined
        ? { ...response, registry: known }
        : response;
    }),
  };
}

export function taskRoutes(deps: TaskRouteDeps): Router {
  const { config, db, intake, changes } = deps;
  const router = express.Router();
  const json = jsonParser(config.api.bodyLimitBytes);
  const watch = { db, changes };

  const found = async (type: TaskTypeConfig, identifier: string): Promise<TaskWithResponses> => {
    const task = await findTask(db, type.name, identifier);
    if (task === null) {
      throw new NotFoundError(
        'task_not_found',
        `no ${type.name} task with identifier ${JSON.stringify(identifier)}`,
      );
    }
    return task;
  };

  /** After a cancel or retry: tell the relay and the watchers, answer the task as it is now. */
  const acted = (outcome: ActionOutcome): ReturnType<typeof toTaskView> => {
    if (outcome.changed) {
      deps.onOutbox?.();
      changes.publish(outcome.changes);
    }
    return toTaskView(outcome.task);
  };

  const list: RequestHandler = async (req, res) => {
    const type = req.params.type === undefined ? undefined : taskTypeOf(req, config).name;
    const query = parseListQuery(req.query, config.api.maxList);
    const typeFilter = type ?? (req.query.type === undefined ? undefined : String(req.query.type));
    if (typeFilter !== undefined && !Object.hasOwn(config.taskTypes, typeFilter)) {
      throw new NotFoundError(
        'unknown_task_type',
        `unknown task type ${JSON.stringify(typeFilter)}`,
      );
    }
    const page = await listTasks(db, {
      ...query,
      ...(typeFilter === undefined ? {} : { type: typeFilter }),
    });
    res.json({
      tasks: page.tasks,
      next: page.nextBeforeId === null ? null : writeCursor(page.nextBeforeId),
    });
  };

  router.get('/tasks', list);
  router.get('/events', (req, res) => {
    rejectUnknownKeys(req.query, fieldNames(EVENTS_QUERY), '', refused);
    const types = words(req.query.type, Object.keys(config.taskTypes), 'type');
    const statuses = words(req.query.status, TASK_STATUSES, 'status');
    streamChanges(watch, { types, statuses }, req, res);
  });

  router.get('/:type', list);

  router.post('/:type', requireJson(false), json, async (req, res) => {
    const type = taskTypeOf(req, config);
    const { task, created } = await intake.accept(type, parseCreateTaskBody(req.body, config.api));
    res.status(created ? 201 : 200).json(toTaskView(task));
  });

  router.get('/:type/:identifier', async (req, res) => {
    const type = taskTypeOf(req, config);
    const wait = parseWaitQuery(req.query, req.get('if-none-match'), config.api.maxWaitMs);
    const first = await found(type, String(req.params.identifier));
    const task = await waitForTask(watch, first, wait, req, res);
    const etag = taskEtag(task.task.id, task.task.version);
    res.set('ETag', etag);
    if (wait.waitMs === 0 && req.get('if-none-match') === etag) {
      res.status(304).end();
      return;
    }
    res.json(await withRegistry(db, task));
  });

  router.get('/:type/:identifier/events', async (req, res) => {
    const type = taskTypeOf(req, config);
    await streamTask(watch, await found(type, String(req.params.identifier)), req, res);
  });

  router.get('/:type/:identifier/responses/:endpoint', async (req, res) => {
    const type = taskTypeOf(req, config);
    const { task } = await found(type, String(req.params.identifier));
    const endpoint = String(req.params.endpoint);
    const response = await findResponse(db, task.id, endpoint);
    if (response === null) {
      throw new NotFoundError(
        'not_found',
        `the ${type.name} task ${JSON.stringify(task.identifier)} has no response of endpoint ${JSON.stringify(endpoint)}`,
      );
    }
    res.json(response);
  });

  router.post('/:type/:identifier/cancel', requireJson(true), json, async (req, res) => {
    const type = taskTypeOf(req, config);
    const body = parseCancelBody(req.body, config.api);
    const { task } = await found(type, String(req.params.identifier));
    res.json(acted(await cancelTask(db, task.id, body)));
  });

  router.post('/:type/:identifier/retry', requireJson(true), json, async (req, res) => {
    const type = taskTypeOf(req, config);
    const body = parseRetryBody(req.body, config.api);
    const { task } = await found(type, String(req.params.identifier));
    res.json(acted(await retryTask(db, task.id, body)));
  });

  return router;
}
