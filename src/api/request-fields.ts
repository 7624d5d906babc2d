/**
 * Every field a request may carry, declared once: its JSON Schema (from the same patterns,
 * lists and limits the readers check), whether it is required, and what it means. The readers
 * in validate.ts (and the schedule reader in the domain, through SCHEDULE_KEYS) accept exactly
 * these fields; openapi.ts turns the tables into the request bodies and query parameters of
 * the OpenAPI document. A field added to a reader without a line here is refused by the reader
 * (or, for a schedule, fails to compile); test/unit/request-fields.test.ts checks that each
 * table's schema and its reader agree on what they accept.
 */
import type { TaskerConfig } from '../config';
import { DURATION_PATTERN } from '../config';
import {
  CATCH_UP_POLICIES,
  DEPENDENCY_POLICIES,
  MAX_PRIORITY,
  ENDPOINT_PATTERN,
  ENDPOINT_STATUSES,
  LABEL_KEY,
  MAX_BACKOFF_FACTOR,
  MAX_DEPENDENCIES,
  MAX_LABEL_VALUE,
  MAX_LABELS,
  SCHEDULE_NAME_PATTERN,
  TASK_TYPE_PATTERN,
  type ScheduleKey,
} from '../domain';

export type JsonSchema = Record<string, unknown>;

export interface FieldDoc {
  description: string;
  /** a request of its kind without it is refused */
  required?: boolean;
  schema(config: TaskerConfig): JsonSchema;
}

export type Fields = Readonly<Record<string, FieldDoc>>;

/** The fields a reader accepts: the table's keys. */
export const fieldNames = (fields: Fields): string[] => Object.keys(fields);

/** A JSON Schema pattern (which has no flags) that matches what `re` matches with its `i`. */
function caseless(source: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i += 1) {
    const char = source[i] as string;
    if (char === '\\') {
      out += char + (source[i + 1] ?? '');
      i += 1;
      continue;
    }
    if (char === '[') inClass = true;
    if (char === ']') inClass = false;
    const both = char.toLowerCase() + char.toUpperCase();
    out += both.length === 2 && both[0] !== both[1] ? (inClass ? both : `[${both}]`) : char;
  }
  return out;
}

const nullable = (schema: JsonSchema): JsonSchema => ({ anyOf: [schema, { type: 'null' }] });

/** a duration as parseDuration reads it: a number of seconds, or an amount with its unit */
const DURATION: JsonSchema = {
  anyOf: [
    { type: 'number', minimum: 0 },
    {
      type: 'string',
      // parseDuration trims the text first
      pattern: `^\\s*(?:${caseless(DURATION_PATTERN.source.slice(1, -1))})\\s*$`,
    },
  ],
  description: 'a number of seconds, or a string such as "250ms", "30s", "5m", "2h"',
};

/** a count from `min`, or a percentage such as "25%" (readShare) */
const share = (min: 0 | 1): JsonSchema => ({
  anyOf: [
    { type: 'integer', minimum: min },
    { type: 'string', pattern: '^\\s*(?:\\d+|\\d+(?:\\.\\d+)?%)\\s*$' },
  ],
  description: `a whole number of at least ${min}, or a percentage up to 100 such as "25%"`,
});

const ENDPOINT_NAME: JsonSchema = { type: 'string', pattern: ENDPOINT_PATTERN.source };

const endpointNames = (config: TaskerConfig): JsonSchema => ({
  type: 'array',
  items: ENDPOINT_NAME,
  minItems: 1,
  maxItems: config.api.maxEndpoints,
  uniqueItems: true,
});

const SELECTOR: JsonSchema = {
  anyOf: [
    { const: '*' },
    {
      type: 'object',
      properties: {
        labels: {
          type: 'object',
          propertyNames: { pattern: LABEL_KEY.source },
          additionalProperties: { type: 'string', minLength: 1, maxLength: MAX_LABEL_VALUE },
          maxProperties: MAX_LABELS,
        },
        status: nullable({ enum: [...ENDPOINT_STATUSES] }),
      },
      additionalProperties: false,
      minProperties: 1,
    },
  ],
};

/** names, a selector, or none (a broadcast) */
const targets = (config: TaskerConfig): JsonSchema => ({
  anyOf: [endpointNames(config), SELECTOR, { type: 'null' }],
});

const ROLLOUT: JsonSchema = {
  type: 'object',
  properties: { batch: share(1), max_errors: share(0), pause: DURATION },
  required: ['batch'],
  additionalProperties: false,
};

const PAYLOAD: FieldDoc = {
  description: 'any JSON, handed to the handler as it is (at most api.max_payload_bytes)',
  schema: () => ({}),
};

const ENDPOINTS: FieldDoc = {
  description:
    'the endpoints to run on: a list of names, "*" or a selector {labels, status} of the ' +
    'fleet; left out, a broadcast to every agent of the type',
  schema: targets,
};

/** POST /<type> */
export const TASK_BODY = {
  identifier: {
    description: "the task's name, unique within its type",
    required: true,
    schema: (config) => ({
      type: 'string',
      minLength: 1,
      maxLength: config.api.maxIdentifierLength,
    }),
  },
  payload: PAYLOAD,
  endpoints: ENDPOINTS,
  rollout: {
    description: "send in waves {batch, max_errors, pause}; null: none, not even the type's",
    schema: () => nullable(ROLLOUT),
  },
  success_threshold: {
    description: 'endpoints that must be DONE for the task to be DONE (a count or "90%")',
    schema: () => nullable(share(1)),
  },
  not_before: {
    description:
      'hold the task until then: an ISO 8601 time with its offset, or a duration from now',
    schema: () => ({ anyOf: [{ type: 'string', minLength: 1 }, DURATION, { type: 'null' }] }),
  },
  after: {
    description: 'hold the task until these tasks, "<type>/<identifier>", are final',
    schema: (config) =>
      nullable({
        type: 'array',
        items: {
          type: 'string',
          pattern: `^${TASK_TYPE_PATTERN.source.slice(1, -1)}/.`,
          maxLength: 64 + config.api.maxIdentifierLength,
        },
        minItems: 1,
        maxItems: MAX_DEPENDENCIES,
        uniqueItems: true,
      }),
  },
  on_dependency_failure: {
    description: 'with after: what to do when a task of it did not end DONE',
    schema: () => nullable({ enum: [...DEPENDENCY_POLICIES] }),
  },
  priority: {
    description: "0 (routine) to 9 (most urgent); left out or null: the type's",
    schema: () => nullable({ type: 'integer', minimum: 0, maximum: MAX_PRIORITY }),
  },
} satisfies Fields;

const NAMED_ENDPOINTS: FieldDoc = {
  description: 'the endpoints it applies to; left out, all',
  schema: (config) => nullable(endpointNames(config)),
};

/** POST /<type>/<identifier>/cancel */
export const CANCEL_BODY = {
  endpoints: NAMED_ENDPOINTS,
  reason: {
    description: 'why, shown with the task and sent to the agents',
    schema: () => nullable({ type: 'string', minLength: 1, maxLength: 1000 }),
  },
} satisfies Fields;

/** POST /<type>/<identifier>/retry */
export const RETRY_BODY = {
  endpoints: NAMED_ENDPOINTS,
  round: {
    description: 'the round to retry; left out, the latest',
    schema: () => nullable({ type: 'integer', minimum: 1 }),
  },
} satisfies Fields;

const ISO_TIME_WITH_OFFSET: JsonSchema = {
  type: 'string',
  pattern: '(?:[Zz]|[+-]\\d{2}:?\\d{2})$',
  description: 'an ISO 8601 time with its offset from UTC, such as "2026-12-03T03:00:00Z"',
};

/** POST /schedules (name and type required) and PATCH /schedules/<name> (none) */
export const SCHEDULE_BODY: { readonly [K in ScheduleKey]: FieldDoc } = {
  name: {
    description: 'unique; it cannot change',
    required: true,
    schema: () => ({ type: 'string', pattern: SCHEDULE_NAME_PATTERN.source }),
  },
  type: {
    description: 'a configured task type',
    required: true,
    schema: (config) => ({ enum: Object.keys(config.taskTypes) }),
  },
  payload: PAYLOAD,
  endpoints: {
    ...ENDPOINTS,
    description: `${ENDPOINTS.description}; a selector picks at each run`,
  },
  every: {
    description: 'the interval, from 1 s to 366 days (or cron)',
    schema: () => nullable(DURATION),
  },
  cron: {
    description: 'five fields: minute hour day-of-month month day-of-week (or every)',
    schema: () => nullable({ type: 'string', minLength: 1, maxLength: 200 }),
  },
  timezone: {
    description: 'the IANA time zone cron is read in; UTC by default',
    schema: () => ({ type: 'string', minLength: 1, maxLength: 64 }),
  },
  start_at: {
    description: 'no due time before it',
    schema: () => nullable(ISO_TIME_WITH_OFFSET),
  },
  end_at: {
    description: 'no due time after it',
    schema: () => nullable(ISO_TIME_WITH_OFFSET),
  },
  catch_up: {
    description: 'what due times missed while no scheduler ran make: nothing, or one task',
    schema: () => ({ enum: [...CATCH_UP_POLICIES] }),
  },
  backoff: {
    description: 'with every: after a FAILED run the interval grows by factor, up to max',
    schema: () =>
      nullable({
        type: 'object',
        properties: {
          factor: { type: 'number', exclusiveMinimum: 1, maximum: MAX_BACKOFF_FACTOR },
          max: DURATION,
        },
        required: ['factor', 'max'],
        additionalProperties: false,
      }),
  },
};

const STRING: JsonSchema = { type: 'string' };
const limit = (fallback: (config: TaskerConfig) => number): FieldDoc => ({
  description: 'the most items on one page',
  schema: (config) => ({
    type: 'integer',
    minimum: 1,
    maximum: config.api.maxList,
    default: fallback(config),
  }),
});

/** GET /tasks and GET /<type> */
export const LIST_QUERY = {
  status: {
    description: 'task statuses, comma-separated (any matches)',
    schema: () => STRING,
  },
  endpoint: { description: 'tasks that address this endpoint', schema: () => ENDPOINT_NAME },
  since: { description: 'created at or after this ISO 8601 time', schema: () => STRING },
  until: { description: 'created before this ISO 8601 time', schema: () => STRING },
  identifier: { description: 'identifiers that start with this', schema: () => STRING },
  limit: limit((config) => Math.min(100, config.api.maxList)),
  cursor: { description: 'the `next` of the page before', schema: () => STRING },
  type: {
    description: 'GET /tasks: tasks of this type only',
    schema: (config) => ({ enum: Object.keys(config.taskTypes) }),
  },
} satisfies Fields;

/** GET /endpoints */
export const ENDPOINT_QUERY = {
  type: { description: 'endpoints that serve this task type', schema: () => STRING },
  label: {
    description: 'key=value, repeated or comma-separated: every one must match',
    schema: () => STRING,
  },
  status: {
    description: `${ENDPOINT_STATUSES.join(', ')}: repeated or comma-separated, any matches`,
    schema: () => STRING,
  },
  version: { description: 'agents running this tasker version', schema: () => STRING },
  handler_version: {
    description: "with a handler of this version (of type's handler, when given)",
    schema: () => STRING,
  },
  limit: limit((config) => config.api.maxList),
  after: { description: 'the `next` of the page before', schema: () => ENDPOINT_NAME },
} satisfies Fields;

/** GET /<type>/<identifier> */
export const WAIT_QUERY = {
  wait: {
    description: 'wait up to this long for the task to be final or pass version (api.max_wait)',
    schema: () => DURATION,
  },
  version: {
    description: 'answer once the task is past this version (or final); with wait',
    schema: () => ({ type: 'integer', minimum: 0 }),
  },
} satisfies Fields;

/** GET /events */
export const EVENTS_QUERY = {
  type: { description: 'task types, comma-separated', schema: () => STRING },
  status: { description: 'task statuses, comma-separated', schema: () => STRING },
} satisfies Fields;
