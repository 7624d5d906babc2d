/**
 * The HTTP API, in the original tasker's shape: POST /<type> creates a task, GET /<type>/<identifier>
 * returns it with every endpoint's response (the routes of tasks are in task-routes.ts, of the
 * endpoint registry in fleet-routes.ts, of the configured task types in type-routes.ts, of
 * recurring schedules in schedule-routes.ts, of the web dashboard's files in ui.ts; the OpenAPI
 * document of them all in openapi.ts). Health checks and the dashboard's files stay open;
 * everything else needs a bearer token when tokens are configured, /metrics too when it is
 * served here (metrics.ts).
 */
import express from 'express';
import type { TaskBroker } from '../broker';
import type { TaskerConfig } from '../config/types';
import type { Logger } from '../log';
import type { ServerMetrics } from '../metrics';
import type { ChangeFeed, Intake } from '../server';
import { pingDatabase, type Db } from '../store';
import { requireBearerToken } from './auth';
import { errorHandler, notFound } from './errors';
import { fleetRoutes } from './fleet-routes';
import { metricsRoute, requestDurations } from './metrics';
import { openApiRoute } from './openapi';
import { requestIds } from './request-id';
import { scheduleRoutes } from './schedule-routes';
import { taskRoutes } from './task-routes';
import { typeRoutes } from './type-routes';
import { uiRoutes } from './ui';

export interface ApiDeps {
  db: Db;
  broker: TaskBroker;
  config: TaskerConfig;
  /** what accepting a task does once the request is checked */
  intake: Intake;
  /** news of tasks, for clients that wait or watch */
  changes: ChangeFeed;
  log: Logger;
  /** the outbox has something to publish now: the relay should look */
  onOutbox?: () => void;
  /** times every request, by route */
  metrics?: ServerMetrics;
  /** serve GET /metrics (behind the tokens) with what this gives; absent: not here */
  scrapeMetrics?: () => Promise<string>;
}

/** how long /readyz waits for the database and the broker to answer */
const READY_PROBE_MS = 1000;

export function createApp(deps: ApiDeps): express.Express {
  const { config, db, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(requestIds(log));
  if (deps.metrics !== undefined) app.use(requestDurations(deps.metrics));

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

  // the dashboard's files hold no data: the page sends the token with each API request
  app.use(uiRoutes());
  app.use(requireBearerToken(config.api.tokens));
  const metrics =
    deps.metrics !== undefined && deps.scrapeMetrics !== undefined
      ? metricsRoute(deps.metrics, deps.scrapeMetrics)
      : null;
  if (metrics !== null) app.use(metrics);
  app.use(openApiRoute(config, { metrics: metrics !== null }));
  // before the task routes: "endpoints", "types" and "schedules" are no task types
  app.use(fleetRoutes({ db, config }));
  app.use(typeRoutes(config));
  app.use(scheduleRoutes({ db, config }));
  app.use(
    taskRoutes({
      db,
      config,
      intake: deps.intake,
      changes: deps.changes,
      ...(deps.onOutbox === undefined ? {} : { onOutbox: deps.onOutbox }),
    }),
  );
  app.use(notFound);
  app.use(errorHandler(log));
  return app;
}
