/**
 * What the API answers, as the JSON Schemas of the OpenAPI document's components: the task and
 * its responses (the original tasker's keys and ours, as src/store/views.ts writes them), the
 * lists, the fleet, schedules, task types, health and errors. The test of the document
 * validates real answers against these, so a key added to a view and not here fails it.
 */
import {
  CATCH_UP_POLICIES,
  ENDPOINT_STATUSES,
  MAX_PRIORITY,
  RESPONSE_STATUSES,
  TASK_STATUSES,
} from '../domain';
import type { JsonSchema } from './request-fields';

export const ref = (name: string): JsonSchema => ({ $ref: `#/components/schemas/${name}` });

/** An object whose properties are all required but the `optional` ones. */
function object(properties: Record<string, JsonSchema>, optional: string[] = []): JsonSchema {
  return {
    type: 'object',
    properties,
    required: Object.keys(properties).filter((key) => !optional.includes(key)),
  };
}

const orNull = (schema: JsonSchema): JsonSchema => ({ anyOf: [schema, { type: 'null' }] });
const STRING: JsonSchema = { type: 'string' };
const INTEGER: JsonSchema = { type: 'integer' };
const NUMBER: JsonSchema = { type: 'number' };
const TIME: JsonSchema = { type: 'string', format: 'date-time' };
const ANY: JsonSchema = {};
const counts = (keys: readonly string[]): JsonSchema =>
  object(Object.fromEntries(keys.map((key) => [key, { type: 'integer', minimum: 0 }])));
const tally: JsonSchema = { type: 'object', additionalProperties: { type: 'integer' } };

const TASK_STATUS: JsonSchema = { enum: [...TASK_STATUSES] };
const RESPONSE_STATUS: JsonSchema = { enum: [...RESPONSE_STATUSES] };
const ENDPOINT_STATUS: JsonSchema = { enum: [...ENDPOINT_STATUSES] };
const LABELS: JsonSchema = { type: 'object', additionalProperties: STRING };

const SELECTOR: JsonSchema = {
  anyOf: [{ const: '*' }, object({ labels: LABELS, status: orNull(ENDPOINT_STATUS) })],
};
const PROGRESS = orNull(
  object({ current: { type: 'number' }, total: orNull({ type: 'number' }), line: orNull(STRING) }),
);
const AGENT = orNull(object({ hostname: STRING, pid: INTEGER, version: STRING }));
const ROLLOUT_PROPERTIES = { batch: STRING, max_errors: STRING, pause_ms: INTEGER };

/** the fields of one run of an endpoint, in a response and in its history */
const RUN = {
  status: RESPONSE_STATUS,
  errnr: orNull(INTEGER),
  errmsg: orNull(STRING),
  payload: ANY,
  progress: PROGRESS,
  attempt: INTEGER,
  agent: AGENT,
  start_time: orNull(TIME),
  finished_at: orNull(TIME),
  round: INTEGER,
  output_bytes: orNull(INTEGER),
};

const RESPONSE_PROPERTIES = {
  id: INTEGER,
  task_id: INTEGER,
  endpoint: STRING,
  expected: { type: 'boolean' },
  ...RUN,
  last_modified_time: TIME,
  wave: INTEGER,
  deliver_by: orNull(TIME),
  cancel_requested_at: orNull(TIME),
  next_attempt_at: { description: 'RETRYING: when the next run starts', ...orNull(TIME) },
  registry: {
    description: 'on GET of one task, for a PENDING row: its endpoint as the registry knows it',
    anyOf: [
      object({ status: ENDPOINT_STATUS, since: TIME, last_seen_at: TIME }),
      object({ status: { const: 'never_seen' } }),
    ],
  },
};

export const RESPONSE_SCHEMAS: Record<string, JsonSchema> = {
  Task: object({
    id: INTEGER,
    identifier: STRING,
    type: STRING,
    status: TASK_STATUS,
    start_time: TIME,
    endpoints: { type: 'array', items: STRING },
    payload: ANY,
    sent_at: orNull(TIME),
    deliver_by: TIME,
    finished_at: orNull(TIME),
    updated_at: TIME,
    counts: counts([
      'expected',
      'received',
      'done',
      'failed',
      'undelivered',
      'cancelled',
      'pending',
      'unexpected',
    ]),
    version: INTEGER,
    round: INTEGER,
    rollout: orNull(object({ ...ROLLOUT_PROPERTIES, waves_sent: INTEGER })),
    stopped_reason: orNull(STRING),
    success_threshold: orNull(STRING),
    cancel_reason: orNull(STRING),
    selector: orNull(SELECTOR),
    not_before: orNull(TIME),
    after: orNull({ type: 'array', items: STRING }),
    on_dependency_failure: orNull(STRING),
    priority: { type: 'integer', minimum: 0, maximum: MAX_PRIORITY },
  }),
  Response: object(RESPONSE_PROPERTIES, ['registry']),
  TaskWithResponses: object({
    task: ref('Task'),
    taskResponseList: { type: 'array', items: ref('Response') },
  }),
  ResponseDetail: object(
    {
      ...RESPONSE_PROPERTIES,
      output: orNull(STRING),
      history: {
        type: 'array',
        items: object({ ...RUN, output: orNull(STRING) }),
      },
    },
    ['registry'],
  ),
  TaskList: object({ tasks: { type: 'array', items: ref('Task') }, next: orNull(STRING) }),
  Endpoint: object({
    name: STRING,
    status: ENDPOINT_STATUS,
    since: TIME,
    types: { type: 'array', items: STRING },
    labels: LABELS,
    version: STRING,
    handlers: LABELS,
    hostname: STRING,
    pid: INTEGER,
    started_at: TIME,
    first_seen_at: TIME,
    last_seen_at: TIME,
    heartbeat_ms: INTEGER,
    running: INTEGER,
    capacity: INTEGER,
  }),
  EndpointList: object({
    endpoints: { type: 'array', items: ref('Endpoint') },
    next: orNull(STRING),
    summary: object({
      total: INTEGER,
      statuses: counts(ENDPOINT_STATUSES),
      versions: tally,
      handlers: { type: 'object', additionalProperties: tally },
    }),
  }),
  EndpointDetail: object({
    name: STRING,
    registration: orNull(ref('Endpoint')),
    recent_tasks: {
      type: 'array',
      items: object({
        type: STRING,
        identifier: STRING,
        task_status: TASK_STATUS,
        status: RESPONSE_STATUS,
        round: INTEGER,
        errnr: orNull(INTEGER),
        errmsg: orNull(STRING),
        last_modified_time: TIME,
        finished_at: orNull(TIME),
      }),
    },
  }),
  Schedule: object({
    name: STRING,
    type: STRING,
    payload: ANY,
    endpoints: { anyOf: [{ type: 'array', items: STRING }, SELECTOR, { type: 'null' }] },
    every_ms: orNull(INTEGER),
    cron: orNull(STRING),
    timezone: STRING,
    start_at: orNull(TIME),
    end_at: orNull(TIME),
    catch_up: { enum: [...CATCH_UP_POLICIES] },
    backoff: orNull(object({ factor: { type: 'number' }, max_ms: INTEGER })),
    interval_ms: orNull(INTEGER),
    paused: { type: 'boolean' },
    next_run_at: orNull(TIME),
    last_run_at: orNull(TIME),
    last_error: orNull(STRING),
    created_at: TIME,
    updated_at: TIME,
  }),
  ScheduleList: object({ schedules: { type: 'array', items: ref('Schedule') } }),
  ScheduleDetail: object({
    schedule: ref('Schedule'),
    next_runs: { type: 'array', items: TIME },
    recent_tasks: {
      type: 'array',
      items: object({
        identifier: STRING,
        status: TASK_STATUS,
        created_at: TIME,
        finished_at: orNull(TIME),
      }),
    },
  }),
  TaskType: object({
    name: STRING,
    route: STRING,
    exchange: STRING,
    wait_for_endpoints_timeout_ms: INTEGER,
    execution_timeout_ms: INTEGER,
    max_deliveries: INTEGER,
    rollout: orNull(object(ROLLOUT_PROPERTIES)),
    success_threshold: orNull(STRING),
    retry: orNull(
      object({ max_attempts: INTEGER, delay_ms: INTEGER, backoff: NUMBER, max_delay_ms: INTEGER }),
    ),
    priority: INTEGER,
  }),
  TaskTypeList: object({ types: { type: 'array', items: ref('TaskType') } }),
  Health: object({ status: { const: 'ok' } }),
  Readiness: object({
    status: { enum: ['ready', 'unavailable'] },
    database: { enum: ['up', 'down'] },
    broker: { enum: ['up', 'down'] },
  }),
};

/** `{error: {code, message, request_id, field?, selector?}}`, with the codes the API answers */
export function errorSchema(codes: readonly string[]): JsonSchema {
  return object({
    error: object(
      {
        code: { enum: [...codes] },
        message: STRING,
        request_id: STRING,
        field: { type: 'string', description: 'the refused field, for a bad request' },
        selector: { description: 'the selector that matched nothing or too many' },
      },
      ['field', 'selector'],
    ),
  });
}
