/**
 * The request schemas of the OpenAPI document and the readers that check requests take their
 * fields from one table (src/api/request-fields.ts); here each body is given to both, and they
 * must agree on whether it is taken. (What a schema cannot say is left to the readers and not
 * sampled: a rollout needs endpoints, on_dependency_failure needs after, a schedule takes every
 * or cron, a real cron expression and time zone, end_at after start_at.)
 */
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { openApiDocument } from '../../src/api/openapi';
import {
  parseCancelBody,
  parseCreateTaskBody,
  parseRetryBody,
  readDuration,
} from '../../src/api/validate';
import { loadConfig } from '../../src/config';
import { ValidationError, readScheduleBody } from '../../src/domain';

const config = loadConfig({ mode: 'test', env: {}, flags: { set: 'api.max_endpoints=3' } });
const doc = openApiDocument(config, { metrics: false }) as {
  paths: Record<
    string,
    Record<string, { requestBody: { content: Record<string, { schema: object }> } }>
  >;
};
const ajv = addFormats(new Ajv2020({ strict: true }));

function schemaOf(path: string, method: string): (body: unknown) => boolean {
  const body = doc.paths[path]?.[method]?.requestBody;
  const schema = body?.content['application/json']?.schema;
  if (schema === undefined) throw new Error(`no request body for ${method} ${path}`);
  return ajv.compile(schema) as (body: unknown) => boolean;
}

function accepts(read: (body: unknown) => unknown): (body: unknown) => boolean {
  return (body) => {
    try {
      read(body);
      return true;
    } catch (err) {
      if (
        !(err instanceof ValidationError) &&
        (err as { code?: string }).code !== 'payload_too_large'
      ) {
        throw err;
      }
      return false;
    }
  };
}

/** Both must take `good` and refuse `bad`. */
function agree(
  schema: (body: unknown) => boolean,
  reader: (body: unknown) => boolean,
  good: unknown[],
  bad: unknown[],
): void {
  for (const body of good) {
    expect({ body, schema: schema(body), reader: reader(body) }).toEqual({
      body,
      schema: true,
      reader: true,
    });
  }
  for (const body of bad) {
    expect({ body, schema: schema(body), reader: reader(body) }).toEqual({
      body,
      schema: false,
      reader: false,
    });
  }
}

const task = (fields: Record<string, unknown>): Record<string, unknown> => ({
  identifier: 't',
  ...fields,
});

it('agrees with parseCreateTaskBody on the body of a task', () => {
  agree(
    schemaOf('/{type}', 'post'),
    accepts((body) => parseCreateTaskBody(body, config.api)),
    [
      { identifier: 'a' },
      { identifier: 'x'.repeat(config.api.maxIdentifierLength) },
      task({ endpoints: ['a', 'b', 'c'] }),
      task({ payload: { x: [1, 'two'] }, endpoints: ['e1', 'e.2_x-3'] }),
      task({ endpoints: '*' }),
      task({ endpoints: { labels: { role: 'web', 'app.io/name': 'x' } } }),
      task({ endpoints: { status: 'online' } }),
      task({ endpoints: null, rollout: null, success_threshold: null, not_before: null }),
      task({ endpoints: ['e1'], rollout: { batch: '25%', max_errors: 1, pause: '30s' } }),
      task({ endpoints: ['e1'], rollout: { batch: 2, pause: 1.5 } }),
      task({ success_threshold: '90%' }),
      task({ success_threshold: 2 }),
      task({ not_before: '10m' }),
      task({ not_before: 30 }),
      task({ after: ['worker/x', 'backup/a/b'], on_dependency_failure: 'run' }),
    ],
    [
      {},
      [],
      'identifier',
      { identifier: '' },
      { identifier: 5 },
      { identifier: 'x'.repeat(config.api.maxIdentifierLength + 1) },
      task({ colour: 'red' }),
      task({ endpoints: [] }),
      task({ endpoints: ['bad name'] }),
      task({ endpoints: ['a', 'a'] }),
      task({ endpoints: ['a', 'b', 'c', 'd'] }),
      task({ endpoints: {} }),
      task({ endpoints: 'all' }),
      task({ endpoints: { labels: { role: 5 } } }),
      task({ endpoints: { status: 'asleep' } }),
      task({ endpoints: { labels: { role: 'web' }, colour: 'red' } }),
      task({ endpoints: ['e1'], rollout: {} }),
      task({ endpoints: ['e1'], rollout: { batch: 0 } }),
      task({ endpoints: ['e1'], rollout: { batch: 1, pause: 'soon' } }),
      task({ endpoints: ['e1'], rollout: { batch: 1, max_errors: -1 } }),
      task({ endpoints: ['e1'], rollout: { batch: 1, speed: 2 } }),
      task({ success_threshold: 0 }),
      task({ success_threshold: 'most' }),
      task({ not_before: true }),
      task({ after: [] }),
      task({ after: ['worker'] }),
      task({ after: ['Worker/x'] }),
      task({ after: ['worker/x', 'worker/x'] }),
      task({ after: ['worker/x'], on_dependency_failure: 'maybe' }),
    ],
  );
});

it('agrees with parseCancelBody and parseRetryBody', () => {
  agree(
    schemaOf('/{type}/{identifier}/cancel', 'post'),
    accepts((body) => parseCancelBody(body, config.api)),
    [{}, { endpoints: ['e1'] }, { reason: 'x'.repeat(1000) }, { endpoints: null, reason: null }],
    [[], 'x', { reason: '' }, { reason: 'x'.repeat(1001) }, { endpoints: [] }, { round: 1 }],
  );
  agree(
    schemaOf('/{type}/{identifier}/retry', 'post'),
    accepts((body) => parseRetryBody(body, config.api)),
    [{}, { round: 1 }, { round: null, endpoints: ['e1', 'e2'] }],
    [{ round: 0 }, { round: 1.5 }, { round: '1' }, { reason: 'x' }, { endpoints: ['a', 'a'] }],
  );
});

it('agrees with readScheduleBody on a new schedule', () => {
  const read = (body: unknown): unknown =>
    readScheduleBody(body, {
      fail: (path, problem) => new ValidationError(`${path} ${problem}`, path),
      types: Object.keys(config.taskTypes),
      limits: config.api,
      readDuration,
    });
  const schedule = (fields: Record<string, unknown>): Record<string, unknown> => ({
    name: 's1',
    type: 'worker',
    every: '1h',
    ...fields,
  });
  agree(
    schemaOf('/schedules', 'post'),
    accepts(read),
    [
      schedule({}),
      schedule({ every: null, cron: '0 3 * * *', timezone: 'Europe/Berlin', catch_up: 'one' }),
      schedule({ start_at: '2026-12-01T00:00:00Z', end_at: '2026-12-02T00:00:00+01:00' }),
      schedule({ backoff: { factor: 2, max: '4h' }, endpoints: { labels: { role: 'web' } } }),
      schedule({ payload: { full: true }, endpoints: ['db1'], backoff: null }),
    ],
    [
      { type: 'worker', every: '1h' },
      { name: 's1', every: '1h' },
      schedule({ type: 'nope' }),
      schedule({ name: '-bad' }),
      schedule({ catch_up: 'all' }),
      schedule({ backoff: { factor: 1, max: '1h' } }),
      schedule({ backoff: { factor: 2 } }),
      schedule({ timezone: '' }),
      schedule({ every: 'soon' }),
      schedule({ start_at: '2026-12-01T00:00:00' }),
      schedule({ endpoints: [] }),
      schedule({ colour: 'red' }),
    ],
  );
});
