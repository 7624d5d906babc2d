/**
 * Recurring schedules as stored, and their runs. Making, reading, changing, pausing, resuming
 * and deleting a schedule; and the scheduler's write, `fireDueSchedules`: in one transaction per
 * batch it claims the schedules due (FOR UPDATE SKIP LOCKED, so several servers share them and
 * none fires one twice), writes the tasks of their due times, each named `<name>@<due time>`,
 * with their rows and outbox rows (the batch's together, one statement per table), and moves
 * each schedule to its next due time. A crash before the
 * commit leaves the schedule due for the next pass; the task's identifier makes a second task
 * for one due time impossible however the passes interleave.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Knex } from 'knex';
import type { TaskTypeConfig } from '../config';
import {
  ConflictError,
  NotFoundError,
  isTerminalTask,
  nextDue,
  nextDueTimes,
  nextInterval,
  planRun,
  scheduledIdentifier,
  selectorText,
  type ScheduleSpec,
  type Selector,
} from '../domain';
import { asStoreError, forUpdate, isDuplicateKey, withTransaction, type Db } from './db';
import { selectEndpoints } from './endpoints';
import { parseJsonColumn, type TaskRow } from './rows';
import { writeNewTasks, type NewTask } from './task-writer';

export interface ScheduleRow {
  id: number;
  name: string;
  type: string;
  payload: string;
  endpoints: string | null;
  selector: string | null;
  every_ms: number | null;
  cron: string | null;
  timezone: string;
  start_at: Date | null;
  end_at: Date | null;
  catch_up: string;
  paused: boolean | number;
  next_run_at: Date | null;
  last_run_at: Date | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
  backoff_factor: number | null;
  backoff_max_ms: number | null;
  /** the interval now, with a backoff (every_ms when none has grown it) */
  interval_ms: number | null;
  backoff_applied_at: Date | null;
}

export function rowToSpec(row: ScheduleRow): ScheduleSpec {
  return {
    name: row.name,
    type: row.type,
    payload: parseJsonColumn(row.payload),
    endpoints: parseJsonColumn<string[]>(row.endpoints),
    selector: parseJsonColumn<Selector>(row.selector),
    everyMs: row.every_ms === null ? null : Number(row.every_ms),
    cron: row.cron,
    timezone: row.timezone,
    startAt: row.start_at,
    endAt: row.end_at,
    catchUp: row.catch_up === 'one' ? 'one' : 'skip',
    backoff:
      row.backoff_factor === null || row.backoff_max_ms === null
        ? null
        : { factor: Number(row.backoff_factor), maxMs: Number(row.backoff_max_ms) },
  };
}

function specColumns(spec: ScheduleSpec): Partial<ScheduleRow> {
  return {
    name: spec.name,
    type: spec.type,
    payload: JSON.stringify(spec.payload ?? null),
    endpoints: spec.endpoints === null ? null : JSON.stringify(spec.endpoints),
    selector: spec.selector === null ? null : selectorText(spec.selector),
    every_ms: spec.everyMs,
    cron: spec.cron,
    timezone: spec.timezone,
    start_at: spec.startAt,
    end_at: spec.endAt,
    catch_up: spec.catchUp,
    backoff_factor: spec.backoff?.factor ?? null,
    backoff_max_ms: spec.backoff?.maxMs ?? null,
    // a changed schedule starts from its every again
    interval_ms: spec.everyMs,
  };
}

export interface ScheduleView {
  name: string;
  type: string;
  payload: unknown;
  endpoints: string[] | Selector | null;
  every_ms: number | null;
  cron: string | null;
  timezone: string;
  start_at: string | null;
  end_at: string | null;
  catch_up: string;
  /** with `every`: {factor, max_ms} */
  backoff: { factor: number; max_ms: number } | null;
  /** with a backoff, the interval now */
  interval_ms: number | null;
  paused: boolean;
  /** null once it ended (past end_at) */
  next_run_at: string | null;
  last_run_at: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

const iso = (date: Date | null): string | null => (date === null ? null : date.toISOString());

export function toScheduleView(row: ScheduleRow): ScheduleView {
  const spec = rowToSpec(row);
  return {
    name: row.name,
    type: row.type,
    payload: spec.payload,
    endpoints: spec.selector ?? spec.endpoints,
    every_ms: spec.everyMs,
    cron: row.cron,
    timezone: row.timezone,
    start_at: iso(row.start_at),
    end_at: iso(row.end_at),
    catch_up: row.catch_up,
    backoff:
      spec.backoff === null ? null : { factor: spec.backoff.factor, max_ms: spec.backoff.maxMs },
    interval_ms: row.interval_ms === null ? null : Number(row.interval_ms),
    paused: Boolean(row.paused),
    next_run_at: iso(row.next_run_at),
    last_run_at: iso(row.last_run_at),
    last_error: row.last_error,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export async function findScheduleRow(db: Db, name: string): Promise<ScheduleRow | null> {
  try {
    return ((await db('schedules').where({ name }).first()) as ScheduleRow | undefined) ?? null;
  } catch (err) {
    throw asStoreError(err);
  }
}

async function existingSchedule(db: Db, name: string): Promise<ScheduleRow> {
  const row = await findScheduleRow(db, name);
  if (row === null) {
    throw new NotFoundError('not_found', `no schedule ${JSON.stringify(name)}`);
  }
  return row;
}

/** Make a schedule; the same one again answers the stored one (created false), another is 409. */
export async function createSchedule(
  db: Db,
  spec: ScheduleSpec,
  now = new Date(),
): Promise<{ row: ScheduleRow; created: boolean }> {
  try {
    await db('schedules').insert({
      ...specColumns(spec),
      paused: false,
      next_run_at: nextDue(spec, now, now),
      last_run_at: null,
      last_error: null,
      created_at: now,
      updated_at: now,
    });
    return { row: await existingSchedule(db, spec.name), created: true };
  } catch (err) {
    if (!isDuplicateKey(err)) throw asStoreError(err);
  }
  const row = await existingSchedule(db, spec.name);
  if (!isDeepStrictEqual(rowToSpec(row), spec)) {
    throw new ConflictError(
      `a schedule named ${JSON.stringify(spec.name)} exists with other settings: change it with PATCH`,
      'schedule_exists',
    );
  }
  return { row, created: false };
}

export async function listSchedules(db: Db): Promise<ScheduleRow[]> {
  try {
    return (await db('schedules').orderBy('name')) as ScheduleRow[];
  } catch (err) {
    throw asStoreError(err);
  }
}

/** A schedule with its next due times and its latest tasks, newest first. */
export async function describeSchedule(
  db: Db,
  name: string,
  counts: { nextRuns: number; recentTasks: number },
): Promise<{
  schedule: ScheduleView;
  next_runs: string[];
  recent_tasks: Array<Pick<TaskRow, 'identifier' | 'status' | 'created_at' | 'finished_at'>>;
}> {
  const row = await existingSchedule(db, name);
  const stored = rowToSpec(row);
  // with a backoff, the runs follow one another at the interval it has now
  const spec =
    stored.backoff === null || row.interval_ms === null || row.next_run_at === null
      ? stored
      : { ...stored, everyMs: Number(row.interval_ms), startAt: row.next_run_at };
  const next =
    row.next_run_at === null || Boolean(row.paused)
      ? []
      : [
          row.next_run_at,
          ...nextDueTimes(spec, row.next_run_at, row.created_at, counts.nextRuns - 1),
        ];
  const tasks = (await db('tasks')
    .select('identifier', 'status', 'created_at', 'finished_at')
    .where({ type: row.type })
    // "<name>@…": every identifier from "<name>@" up to "<name>A", byte for byte
    .where('identifier', '>=', `${name}@`)
    .where('identifier', '<', `${name}A`)
    .orderBy('id', 'desc')
    .limit(counts.recentTasks)) as Array<
    Pick<TaskRow, 'identifier' | 'status' | 'created_at' | 'finished_at'>
  >;
  return {
    schedule: toScheduleView(row),
    next_runs: next.map((date) => date.toISOString()),
    recent_tasks: tasks,
  };
}

/** Change a schedule: its next due time is computed again from now. */
export async function updateSchedule(
  db: Db,
  spec: ScheduleSpec,
  now = new Date(),
): Promise<ScheduleRow> {
  const row = await existingSchedule(db, spec.name);
  await db('schedules')
    .where({ id: row.id })
    .update({
      ...specColumns(spec),
      next_run_at: nextDue(spec, now, row.created_at),
      updated_at: now,
    });
  return existingSchedule(db, spec.name);
}

/**
 * Pause or resume. A resumed schedule runs next at its first due time from now: the runs due
 * while it was paused are not made up.
 */
export async function setSchedulePaused(
  db: Db,
  name: string,
  paused: boolean,
  now = new Date(),
): Promise<ScheduleRow> {
  const row = await existingSchedule(db, name);
  if (Boolean(row.paused) !== paused) {
    const next = paused ? row.next_run_at : nextDue(rowToSpec(row), now, row.created_at);
    await db('schedules')
      .where({ id: row.id })
      .update({ paused, next_run_at: next, updated_at: now });
  }
  return existingSchedule(db, name);
}

export async function deleteSchedule(db: Db, name: string): Promise<void> {
  const row = await existingSchedule(db, name);
  await db('schedules').where({ id: row.id }).delete();
}

/**
 * A backoff schedule's interval now, from the outcome of its latest run if it is final and not
 * counted yet: `wait` when that outcome pushes its due time past `now`. Null without a backoff.
 */
async function backoffOf(
  trx: Knex.Transaction,
  row: ScheduleRow,
  spec: ScheduleSpec,
  now: Date,
): Promise<{ intervalMs: number; due: Date; appliedAt: Date | null; wait: boolean } | null> {
  if (spec.backoff === null || spec.everyMs === null) return null;
  const intervalMs = Number(row.interval_ms ?? spec.everyMs);
  const result = { intervalMs, due: row.next_run_at as Date, appliedAt: row.backoff_applied_at };
  const last = row.last_run_at;
  if (last === null || row.backoff_applied_at?.getTime() === last.getTime()) {
    return { ...result, wait: false };
  }
  const task = (await trx('tasks')
    .where({ type: spec.type, identifier: scheduledIdentifier(spec.name, last) })
    .first('status')) as Pick<TaskRow, 'status'> | undefined;
  // a run still going (or never made) changes nothing yet
  if (task === undefined || !isTerminalTask(task.status)) return { ...result, wait: false };
  const grown = nextInterval(spec.backoff, spec.everyMs, intervalMs, task.status);
  // a grown interval pushes the next run later; a reset one does not bring it forward
  const due = new Date(Math.max(last.getTime() + grown, (row.next_run_at as Date).getTime()));
  return { intervalMs: grown, due, appliedAt: last, wait: due.getTime() > now.getTime() };
}

export interface FireOutcome {
  /** schedules looked at */
  schedules: number;
  /** tasks made */
  fired: number;
  /** due times not made up under catch_up "skip" */
  skipped: number;
  /** tasks made, as stored (CREATED), for the relay and the change feed */
  tasks: TaskRow[];
}

/**
 * Make the tasks of the schedules due. `types` are the configured task types: a schedule whose
 * type is gone makes nothing and says so in `last_error`.
 */
export async function fireDueSchedules(
  db: Db,
  types: Record<string, TaskTypeConfig>,
  options: { now?: Date; limit?: number } = {},
): Promise<FireOutcome> {
  const now = options.now ?? new Date();
  return withTransaction(db, async (trx) => {
    const due = (await forUpdate(
      trx,
      trx('schedules')
        .where({ paused: false })
        .where('next_run_at', '<=', now)
        .orderBy('next_run_at')
        .limit(options.limit ?? 100),
      { skipLocked: true },
    )) as ScheduleRow[];
    const outcome: FireOutcome = { schedules: due.length, fired: 0, skipped: 0, tasks: [] };
    /** what each schedule does: its update, and the due time to make a task for */
    const runs: Array<{ row: ScheduleRow; update: Record<string, unknown>; fire: string | null }> =
      [];
    for (const row of due) {
      const spec = rowToSpec(row);
      const backoff = await backoffOf(trx, row, spec, now);
      if (backoff !== null && backoff.wait) {
        runs.push({
          row,
          fire: null,
          update: {
            next_run_at: backoff.due,
            interval_ms: backoff.intervalMs,
            backoff_applied_at: backoff.appliedAt,
            updated_at: now,
          },
        });
        continue;
      }
      // with a backoff, due times follow one another at the interval it has now
      const timing =
        backoff === null ? spec : { ...spec, everyMs: backoff.intervalMs, startAt: backoff.due };
      const anchor = backoff === null ? row.created_at : backoff.due;
      const plan = planRun(timing, backoff?.due ?? (row.next_run_at as Date), now, anchor);
      outcome.skipped += plan.fire === null ? plan.missed + 1 : plan.missed;
      runs.push({
        row,
        fire: plan.fire === null ? null : scheduledIdentifier(spec.name, plan.fire),
        update: {
          next_run_at: plan.next,
          last_run_at: plan.fire ?? row.last_run_at,
          last_error: null,
          updated_at: now,
          ...(backoff === null
            ? {}
            : { interval_ms: backoff.intervalMs, backoff_applied_at: backoff.appliedAt }),
        },
      });
    }
    // a task made for a due time before (a client may even have posted one of that name)
    const made = new Set<string>();
    for (const type of new Set(runs.filter((run) => run.fire !== null).map((r) => r.row.type))) {
      const identifiers = runs
        .filter((run) => run.fire !== null && run.row.type === type)
        .map((run) => run.fire as string);
      const found = (await trx('tasks')
        .select('identifier')
        .where({ type })
        .whereIn('identifier', identifiers)) as Array<Pick<TaskRow, 'identifier'>>;
      for (const task of found) made.add(`${type}\u0000${task.identifier}`);
    }
    const inputs: NewTask[] = [];
    for (const run of runs) {
      const { row, fire } = run;
      if (fire === null || made.has(`${row.type}\u0000${fire}`)) continue;
      const spec = rowToSpec(row);
      const type = Object.hasOwn(types, spec.type) ? types[spec.type] : undefined;
      if (type === undefined) {
        run.update.last_error = `task type ${JSON.stringify(spec.type)} is not configured`;
        continue;
      }
      const endpoints =
        spec.selector === null
          ? spec.endpoints
          : await selectEndpoints(trx, spec.type, spec.selector, now);
      if (endpoints !== null && endpoints.length === 0) {
        run.update.last_error = 'the selector matched no endpoint: no task made';
        continue;
      }
      inputs.push({
        type: spec.type,
        identifier: fire,
        payload: spec.payload,
        endpoints,
        selector: spec.selector,
        deliverBy: new Date(now.getTime() + type.waitForEndpointsTimeoutMs),
        executionTimeoutMs: type.executionTimeoutMs,
        rollout: endpoints === null ? null : type.rollout,
        successThreshold: type.successThreshold,
        now,
        // the relay publishes it at once
        outboxDelayMs: 0,
      });
    }
    // the batch's tasks together, one statement per table
    if (inputs.length > 0) {
      const created = await writeNewTasks(trx, inputs);
      outcome.tasks.push(...created.map((result) => result.task));
      outcome.fired += created.length;
    }
    for (const { row, update } of runs) {
      await trx('schedules').where({ id: row.id }).update(update);
    }
    return outcome;
  });
}
