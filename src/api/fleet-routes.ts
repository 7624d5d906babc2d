/**
 * The fleet: the endpoint registry the agents' heartbeats keep. GET /endpoints lists it with
 * filters and a summary of versions, GET /endpoints/<name> shows one endpoint and its latest
 * tasks, DELETE /endpoints/<name> forgets a decommissioned one.
 */
import express, { type Router } from 'express';
import type { TaskerConfig } from '../config';
import { ConflictError, NotFoundError, checkEndpoint, ValidationError } from '../domain';
import {
  endpointStatus,
  findEndpointRow,
  forgetEndpoint,
  listEndpoints,
  recentTasksOf,
  toEndpointView,
  type Db,
} from '../store';
import { parseEndpointQuery } from './validate';

export interface FleetRouteDeps {
  db: Db;
  config: TaskerConfig;
}

/** the tasks GET /endpoints/<name> shows */
const RECENT_TASKS = 20;

const endpointName = (value: unknown): string =>
  checkEndpoint(
    value,
    'endpoint',
    (path, problem) => new ValidationError(`${path} ${problem}`, path),
  );

export function fleetRoutes({ db, config }: FleetRouteDeps): Router {
  const router = express.Router();

  router.get('/endpoints', async (req, res) => {
    const { limit, after, ...filter } = parseEndpointQuery(req.query, config.api.maxList);
    res.json(await listEndpoints(db, filter, { limit, after }));
  });

  router.get('/endpoints/:name', async (req, res) => {
    const name = endpointName(req.params.name);
    const [row, tasks] = await Promise.all([
      findEndpointRow(db, name),
      recentTasksOf(db, name, RECENT_TASKS),
    ]);
    if (row === null && tasks.length === 0) {
      throw new NotFoundError(
        'endpoint_not_found',
        `no endpoint ${JSON.stringify(name)}: no agent of that name has said hello, and no task addresses it`,
      );
    }
    res.json({
      name,
      registration: row === null ? null : toEndpointView(row, new Date()),
      recent_tasks: tasks,
    });
  });

  router.delete('/endpoints/:name', async (req, res) => {
    const name = endpointName(req.params.name);
    const row = await findEndpointRow(db, name);
    if (row === null) {
      throw new NotFoundError(
        'endpoint_not_found',
        `no endpoint ${JSON.stringify(name)} is registered`,
      );
    }
    if (endpointStatus(row, new Date()) === 'online') {
      throw new ConflictError(
        `endpoint ${JSON.stringify(name)} is online: its next heartbeat would register it again; ` +
          'stop its agent first',
        'endpoint_online',
      );
    }
    await forgetEndpoint(db, name);
    res.status(204).end();
  });

  return router;
}
