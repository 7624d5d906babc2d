/**
 * Recurring schedules: POST /schedules makes one, GET /schedules lists them, GET
 * /schedules/<name> shows one with its next due times and its latest tasks, PATCH changes it,
 * POST …/pause and …/resume stop and restart it, DELETE removes it (its tasks stay).
 */
import express, { type Router } from 'express';
import type { TaskerConfig } from '../config';
import { NotFoundError, ValidationError, readScheduleBody, type ScheduleSpec } from '../domain';
import {
  createSchedule,
  deleteSchedule,
  describeSchedule,
  findScheduleRow,
  listSchedules,
  rowToSpec,
  setSchedulePaused,
  toScheduleView,
  updateSchedule,
  type Db,
} from '../store';
import { jsonParser, requireJson } from './json-body';
import { readDuration } from './validate';

/** due times and tasks GET /schedules/<name> shows */
const NEXT_RUNS = 5;
const RECENT_TASKS = 20;

const fail = (path: string, problem: string): Error =>
  path === '' ? new ValidationError(problem) : new ValidationError(`${path} ${problem}`, path);

export function scheduleRoutes({ db, config }: { db: Db; config: TaskerConfig }): Router {
  const router = express.Router();
  const json = jsonParser(config.api.bodyLimitBytes);
  const read = (body: unknown, base?: ScheduleSpec): ScheduleSpec =>
    readScheduleBody(body, {
      fail,
      types: Object.keys(config.taskTypes),
      limits: config.api,
      readDuration,
      ...(base === undefined ? {} : { base }),
    });
  const name = (value: unknown): string => String(value);

  router.post('/schedules', requireJson(false), json, async (req, res) => {
    const { row, created } = await createSchedule(db, read(req.body));
    res.status(created ? 201 : 200).json(toScheduleView(row));
  });

  router.get('/schedules', async (_req, res) => {
    res.json({ schedules: (await listSchedules(db)).map(toScheduleView) });
  });

  router.get('/schedules/:name', async (req, res) => {
    res.json(
      await describeSchedule(db, name(req.params.name), {
        nextRuns: NEXT_RUNS,
        recentTasks: RECENT_TASKS,
      }),
    );
  });

  router.patch('/schedules/:name', requireJson(false), json, async (req, res) => {
    const row = await findScheduleRow(db, name(req.params.name));
    if (row === null) {
      throw new NotFoundError('not_found', `no schedule ${JSON.stringify(req.params.name)}`);
    }
    res.json(toScheduleView(await updateSchedule(db, read(req.body, rowToSpec(row)))));
  });

  router.post('/schedules/:name/pause', async (req, res) => {
    res.json(toScheduleView(await setSchedulePaused(db, name(req.params.name), true)));
  });

  router.post('/schedules/:name/resume', async (req, res) => {
    res.json(toScheduleView(await setSchedulePaused(db, name(req.params.name), false)));
  });

  router.delete('/schedules/:name', async (req, res) => {
    await deleteSchedule(db, name(req.params.name));
    res.status(204).end();
  });

  return router;
}
