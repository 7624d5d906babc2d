/**
 * The routes of the API as the OpenAPI document describes them: for each path and method, what
 * it does, its parameters (query fields from request-fields.ts), its body's fields and its
 * answers by status. openapi.ts turns this into the document; a route added to the app without
 * a line here fails the test that compares the two.
 */
import {
  CANCEL_BODY,
  ENDPOINT_QUERY,
  EVENTS_QUERY,
  LIST_QUERY,
  type Fields,
} from './request-fields';
import {
  RETRY_BODY,
  SCHEDULE_BODY,
  TASK_BODY,
  WAIT_QUERY,
  type JsonSchema,
} from './request-fields';
import { ref } from './response-schemas';

export const OPENAPI_PATH = '/openapi.json';

export interface Operation {
  summary: string;
  /** the path's parameters, by name, with their description */
  path?: Record<string, string>;
  query?: Fields;
  body?: { fields: Fields; required: boolean; requireFields: boolean };
  /** status: what it means, and the schema of its JSON (none for an empty answer) */
  answers: Record<number, [string, JsonSchema?]>;
  /** answers that are not JSON: status -> media type and description */
  other?: Record<number, [string, string]>;
  headers?: JsonSchema[];
  /** open without a token */
  open?: boolean;
}

const ERROR = ref('Error');
const BAD_REQUEST: [string, JsonSchema] = ['a refused parameter or body, named in field', ERROR];
const UNSUPPORTED: [string, JsonSchema] = ['the body is not sent as JSON', ERROR];
const NOT_FOUND: [string, JsonSchema] = ['no such task type, task, endpoint or schedule', ERROR];
const TASK_PATH = {
  type: 'a configured task type',
  identifier: "the task's identifier",
};

export function operations(metrics: boolean): Record<string, Record<string, Operation>> {
  const paths: Record<string, Record<string, Operation>> = {
    '/healthz': {
      get: { summary: 'the process runs', open: true, answers: { 200: ['ok', ref('Health')] } },
    },
    '/readyz': {
      get: {
        summary: 'the database and the broker answer within a second',
        open: true,
        answers: {
          200: ['ready', ref('Readiness')],
          503: ['the database or the broker is down', ref('Readiness')],
        },
      },
    },
    [OPENAPI_PATH]: {
      get: { summary: 'this document', answers: { 200: ['OpenAPI 3.1', { type: 'object' }] } },
    },
    '/endpoints': {
      get: {
        summary: 'the fleet: registered endpoints, filtered, with a summary',
        query: ENDPOINT_QUERY,
        answers: { 200: ['a page of endpoints', ref('EndpointList')], 400: BAD_REQUEST },
      },
    },
    '/endpoints/{name}': {
      get: {
        summary: 'one endpoint: its registration and its latest tasks',
        path: { name: 'the endpoint' },
        answers: {
          200: ['the endpoint', ref('EndpointDetail')],
          400: BAD_REQUEST,
          404: NOT_FOUND,
        },
      },
      delete: {
        summary: 'forget a decommissioned endpoint',
        path: { name: 'the endpoint' },
        answers: {
          204: ['forgotten'],
          400: BAD_REQUEST,
          404: NOT_FOUND,
          409: ['it is online: stop its agent first', ERROR],
        },
      },
    },
    '/types': {
      get: {
        summary: 'the task types this server accepts',
        answers: { 200: ['the types', ref('TaskTypeList')] },
      },
    },
    '/types/{name}': {
      get: {
        summary: 'one task type with its effective settings',
        path: { name: 'the task type' },
        answers: { 200: ['the type', ref('TaskType')], 404: NOT_FOUND },
      },
    },
    '/schedules': {
      get: {
        summary: 'every schedule, by name',
        answers: { 200: ['the schedules', ref('ScheduleList')] },
      },
      post: {
        summary: 'make a recurring schedule',
        body: { fields: SCHEDULE_BODY, required: true, requireFields: true },
        answers: {
          200: ['the same schedule existed already', ref('Schedule')],
          201: ['made', ref('Schedule')],
          400: BAD_REQUEST,
          409: ['a schedule of that name exists with other settings', ERROR],
          415: UNSUPPORTED,
        },
      },
    },
    '/schedules/{name}': {
      get: {
        summary: 'one schedule with its next due times and latest tasks',
        path: { name: 'the schedule' },
        answers: { 200: ['the schedule', ref('ScheduleDetail')], 404: NOT_FOUND },
      },
      patch: {
        summary: 'change a schedule (any field but name)',
        path: { name: 'the schedule' },
        body: { fields: SCHEDULE_BODY, required: true, requireFields: false },
        answers: {
          200: ['changed', ref('Schedule')],
          400: BAD_REQUEST,
          404: NOT_FOUND,
          415: UNSUPPORTED,
        },
      },
      delete: {
        summary: 'delete a schedule; its tasks stay',
        path: { name: 'the schedule' },
        answers: { 204: ['deleted'], 404: NOT_FOUND },
      },
    },
    '/tasks': {
      get: {
        summary: 'tasks of every type, newest first',
        query: LIST_QUERY,
        answers: { 200: ['a page of tasks', ref('TaskList')], 400: BAD_REQUEST, 404: NOT_FOUND },
      },
    },
    '/events': {
      get: {
        summary: 'a stream of every change of a task (`change` events)',
        query: EVENTS_QUERY,
        answers: { 400: BAD_REQUEST },
        other: { 200: ['text/event-stream', 'Server-Sent Events, until the client leaves'] },
      },
    },
    '/{type}': {
      get: {
        summary: 'tasks of one type, newest first',
        path: { type: TASK_PATH.type },
        query: Object.fromEntries(Object.entries(LIST_QUERY).filter(([key]) => key !== 'type')),
        answers: { 200: ['a page of tasks', ref('TaskList')], 400: BAD_REQUEST, 404: NOT_FOUND },
      },
      post: {
        summary: 'create a task',
        path: { type: TASK_PATH.type },
        body: { fields: TASK_BODY, required: true, requireFields: true },
        answers: {
          200: ['the same task existed already', ref('Task')],
          201: ['created', ref('Task')],
          400: BAD_REQUEST,
          404: NOT_FOUND,
          409: ['a task of that identifier exists with another body', ERROR],
          413: ['the body or its payload is too large', ERROR],
          415: UNSUPPORTED,
          422: ['a selector matched nothing or too many, or after names no task', ERROR],
          503: ['the database is unavailable', ERROR],
        },
      },
    },
    '/{type}/{identifier}': {
      get: {
        summary: 'a task and every endpoint’s response; waits with ?wait',
        path: TASK_PATH,
        query: WAIT_QUERY,
        headers: [
          {
            name: 'If-None-Match',
            in: 'header',
            description: 'an ETag of the task: 304 while it is unchanged, or wait past it',
            schema: { type: 'string' },
          },
        ],
        answers: {
          200: ['the task', ref('TaskWithResponses')],
          304: ['unchanged since the ETag sent'],
          400: BAD_REQUEST,
          404: NOT_FOUND,
        },
      },
    },
    '/{type}/{identifier}/events': {
      get: {
        summary: 'watch a task: snapshot, task and response events, end',
        path: TASK_PATH,
        answers: { 404: NOT_FOUND },
        other: { 200: ['text/event-stream', 'Server-Sent Events, until the task is final'] },
      },
    },
    '/{type}/{identifier}/responses/{endpoint}': {
      get: {
        summary: "one endpoint's response with its output and history",
        path: { ...TASK_PATH, endpoint: 'the endpoint' },
        answers: { 200: ['the response', ref('ResponseDetail')], 404: NOT_FOUND },
      },
    },
  };
  for (const [action, summary] of [
    ['pause', 'pause a schedule'],
    ['resume', 'resume a schedule at its next due time'],
  ] as const) {
    paths[`/schedules/{name}/${action}`] = {
      post: {
        summary,
        path: { name: 'the schedule' },
        answers: { 200: ['the schedule', ref('Schedule')], 404: NOT_FOUND },
      },
    };
  }
  for (const [action, fields, summary] of [
    ['cancel', CANCEL_BODY, 'cancel a task, or some of its endpoints'],
    ['retry', RETRY_BODY, 'run again the endpoints that did not succeed, in a new round'],
  ] as const) {
    paths[`/{type}/{identifier}/${action}`] = {
      post: {
        summary,
        path: TASK_PATH,
        body: { fields, required: false, requireFields: false },
        answers: {
          200: ['the task as it is now', ref('Task')],
          400: BAD_REQUEST,
          404: NOT_FOUND,
          409: ['the task or round does not allow it', ERROR],
          415: UNSUPPORTED,
        },
      },
    };
  }
  if (metrics) {
    paths['/metrics'] = {
      get: {
        summary: 'Prometheus metrics of this server',
        answers: {},
        other: { 200: ['text/plain', 'the text exposition format'] },
      },
    };
  }
  return paths;
}
