/**
 * The HTTP API, in the original tasker's shape: POST /<type> creates a task, GET /<type>/<identifier>
 * returns it with every endpoint's response. Health checks stay open; everything else needs a
 * bearer token when tokens are configured.
 */
import express, { type Request, type RequestHandler } from 'express';
import type { TaskBroker } from '../broker';
import type { TaskerConfig, TaskTypeConfig } from '../config/types';
import { NotFoundError, TaskerError } from '../domain';
import type { Logger } from '../log';
import type { Intake } from '../server';
import { findTask, pingDatabase, toTaskView, type Db } from '../store';
import { requireBearerToken } from './auth';
import { errorHandler, notFound } from './errors';
import { parseCreateTaskBody } from './validate';

export interface ApiDeps {
  db: Db;
  broker: TaskBroker;
  config: TaskerConfig;
  /** what accepting a task does once the request is checked */
  intake: Intake;
  log: Logger;
}

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

/** how long /readyz waits for the database and the broker to answer */
const READY_PROBE_MS = 1000;

const requireJson: RequestHandler = (req, _res, next) => {
  if (!req.is('application/json')) {
    throw new TaskerError(
      'unsupported_media_type',
      'send the task as JSON with the header Content-Type: application/json',
    );
  }
  next();
};

export function createApp(deps: ApiDeps): express.Express {
  const { config, db, intake, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    // both probed at once, each within a second: a frozen broker or database is not ready
    const [database, broker] = await Promise.all([
      pingDatabase(db, READY_PROBE_MS),
      deps.broker.ping(READY_PROBE_MS),
    ]);
    res.status(database && broker ? 200 : 503).json({
      status: database && broker ? 'ready' : 'unavailable',
      database: database ? 'up' : 'down',
      broker: broker ? 'up' : 'down',
    });
  });

  app.use(requireBearerToken(config.api.tokens));
  const json = express.json({
    limit: config.api.bodyLimitBytes,
    strict: false,
    type: 'application/json',
  });

  app.post('/:type', requireJson, json, async (req, res) => {
    const type = taskTypeOf(req, config);
    const { task, created } = await intake.accept(type, parseCreateTaskBody(req.body, config.api));
    res.status(created ? 201 : 200).json(toTaskView(task));
  });

  app.get('/:type/:identifier', async (req, res) => {
    const type = taskTypeOf(req, config);
    const identifier = String(req.params.identifier);
    const found = await findTask(db, type.name, identifier);
    if (found === null) {
      throw new NotFoundError(
        'task_not_found',
        `no ${type.name} task with identifier ${JSON.stringify(identifier)}`,
      );
    }
    res.json(found);
  });

  app.use(notFound);
  app.use(errorHandler(log));
  return app;
}
