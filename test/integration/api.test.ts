/**
 * The HTTP API with supertest over the real database and broker: the original tasker's shape, and every
 * kind of bad input answered with the right status, a JSON error naming the problem, and
 * nothing written.
 */
import { createHook } from 'node:async_hooks';
import request from 'supertest';
import type { Express } from 'express';
import { createApp } from '../../src/api';
import type { AmqpBroker } from '../../src/broker';
import { loadConfig, type TaskerConfig } from '../../src/config';
import { ChangeFeed, Intake, outboxPublishers } from '../../src/server';
import { createTestStack, type TestStack } from '../support/stack';
import { newBroker, testLog } from '../support/in-process';

let stack: TestStack;
let broker: AmqpBroker;
let app: Express;

/** The API over the test stack with `config`, as the server assembles it. */
function apiFor(config: TaskerConfig): Express {
  const publish = outboxPublishers(broker, config.taskTypes);
  const intake = new Intake({ db: stack.db, broker, config, publish, log: testLog });
  return createApp({
    db: stack.db,
    broker,
    config,
    intake,
    changes: new ChangeFeed(broker, testLog),
    log: testLog,
  });
}

beforeAll(async () => {
  stack = await createTestStack({
    set: ['api.max_endpoints=5', 'api.max_payload_bytes=2kb', 'api.body_limit=4kb'],
  });
  broker = newBroker(stack.config, 'api-test');
  await broker.start();
  await broker.session.waitUntilConnected(5000);
  app = apiFor(stack.config);
});
afterAll(async () => {
  await broker.close();
  await stack.cleanup();
});

async function tableCounts(): Promise<number[]> {
  const counts = await Promise.all(
    ['tasks', 'task_responses', 'outbox'].map((t) => stack.db(t).count({ n: '*' })),
  );
  return counts.map((rows) => Number(rows[0]?.n));
}

const originalBody = {
  identifier: 'e7bd91d0-16ad-11e2-892e-0800200c9a66',
  payload: { foo: 'bar' },
  endpoints: ['console1', 'console2'],
};

describe('POST /<type>', () => {
  it("creates the task in the original tasker's shape, confirmed by the broker (SENT)", async () => {
    const res = await request(app).post('/worker').send(originalBody).expect(201);
    expect(res.body).toMatchObject({
      identifier: originalBody.identifier,
      type: 'worker',
      status: 'SENT',
      endpoints: ['console1', 'console2'],
      payload: { foo: 'bar' },
      counts: { expected: 2, pending: 2 },
    });
    expect(typeof res.body.id).toBe('number');
    expect(new Date(res.body.start_time).toISOString()).toBe(res.body.start_time);
    const outbox = await stack.db('outbox').where({ task_id: res.body.id });
    expect(outbox).toHaveLength(0);
  });

  it('answers a repeat of the same request with the existing task (200)', async () => {
    const again = await request(app).post('/worker').send(originalBody).expect(200);
    const first = await request(app).get(`/worker/${originalBody.identifier}`).expect(200);
    expect(again.body.id).toBe(first.body.task.id);
  });

  it('refuses the same identifier with a different body (409) and writes nothing', async () => {
    const before = await tableCounts();
    const res = await request(app)
      .post('/worker')
      .send({ ...originalBody, payload: { foo: 'baz' } })
      .expect(409);
    expect(res.body.error.code).toBe('identifier_conflict');
    expect(await tableCounts()).toEqual(before);
  });

  const bad: Array<[string, () => request.Test, number, string, RegExp]> = [
    [
      'no content type',
      () => request(app).post('/worker').send('identifier=x'),
      415,
      'unsupported_media_type',
      /Content-Type/,
    ],
    [
      'bad JSON',
      () =>
        request(app)
          .post('/worker')
          .set('content-type', 'application/json')
          .send('{"identifier": '),
      400,
      'invalid_json',
      /not valid JSON/,
    ],
    [
      'a JSON array',
      () => request(app).post('/worker').send([1, 2]),
      400,
      'bad_request',
      /JSON object/,
    ],
    [
      'missing identifier',
      () => request(app).post('/worker').send({ payload: {} }),
      400,
      'bad_request',
      /identifier is required/,
    ],
    [
      'numeric identifier',
      () => request(app).post('/worker').send({ identifier: 12 }),
      400,
      'bad_request',
      /identifier must be a string/,
    ],
    [
      'empty identifier',
      () => request(app).post('/worker').send({ identifier: '' }),
      400,
      'bad_request',
      /identifier must not be empty/,
    ],
    [
      'oversized identifier',
      () =>
        request(app)
          .post('/worker')
          .send({ identifier: 'x'.repeat(256) }),
      400,
      'bad_request',
      /at most 255/,
    ],
    [
      'unknown field',
      () =>
        request(app)
          .post('/worker')
          .send({ identifier: 'u1', endpoint: ['a'] }),
      400,
      'bad_request',
      /endpoint is not a known field/,
    ],
    [
      'endpoints not a list',
      () => request(app).post('/worker').send({ identifier: 'u2', endpoints: 'a,b' }),
      400,
      'bad_request',
      /endpoints must be a list of endpoint names, "\*", or a selector/,
    ],
    [
      'bad endpoint name',
      () =>
        request(app)
          .post('/worker')
          .send({ identifier: 'u3', endpoints: ['ok', 'no/slash'] }),
      400,
      'bad_request',
      /endpoints\[1\]/,
    ],
    [
      'repeated endpoint',
      () =>
        request(app)
          .post('/worker')
          .send({ identifier: 'u4', endpoints: ['a', 'a'] }),
      400,
      'bad_request',
      /endpoints\[1\] repeats endpoints\[0\]/,
    ],
    [
      'too many endpoints',
      () =>
        request(app)
          .post('/worker')
          .send({ identifier: 'u5', endpoints: ['a', 'b', 'c', 'd', 'e', 'f'] }),
      400,
      'bad_request',
      /limit is 5/,
    ],
    [
      'oversized payload',
      () =>
        request(app)
          .post('/worker')
          .send({ identifier: 'u6', payload: 'x'.repeat(3000) }),
      413,
      'payload_too_large',
      /payload is/,
    ],
    [
      'oversized body',
      () =>
        request(app)
          .post('/worker')
          .send({ identifier: 'u7', payload: 'y'.repeat(5000) }),
      413,
      'payload_too_large',
      /exceeds the limit/,
    ],
    [
      'a payload nested 1,900 levels',
      () =>
        request(app)
          .post('/worker')
          .set('content-type', 'application/json')
          .send(`{"identifier":"u9","payload":${'['.repeat(1900)}${']'.repeat(1900)}}`),
      400,
      'bad_request',
      /payload nests deeper than 100 levels/,
    ],
    [
      'Content-Encoding gzip on a plain body',
      () =>
        request(app)
          .post('/worker')
          .set('content-type', 'application/json')
          .set('content-encoding', 'gzip')
          .send('{"identifier":"u10"}'),
      400,
      'bad_request',
      /not valid gzip data, as its Content-Encoding says/,
    ],
    [
      'Content-Encoding br on a plain body',
      () =>
        request(app)
          .post('/worker')
          .set('content-type', 'application/json')
          .set('content-encoding', 'br')
          .send('{"identifier":"u11"}'),
      400,
      'bad_request',
      /not valid br data/,
    ],
    [
      'an empty endpoint list',
      () => request(app).post('/worker').send({ identifier: 'u12', endpoints: [] }),
      400,
      'bad_request',
      /endpoints must name at least one endpoint/,
    ],
    [
      'an identifier with a lone surrogate',
      () =>
        request(app)
          .post('/worker')
          .set('content-type', 'application/json')
          .send('{"identifier":"sur\\ud800"}'),
      400,
      'bad_request',
      /well-formed Unicode/,
    ],
    [
      'a selector with an unknown key',
      () =>
        request(app)
          .post('/worker')
          .send({ identifier: 'u13', endpoints: { labels: { role: 'web' }, zone: 'a' } }),
      400,
      'bad_request',
      /endpoints.zone is not a known field/,
    ],
    [
      'a selector label that is not a string',
      () =>
        request(app)
          .post('/worker')
          .send({ identifier: 'u14', endpoints: { labels: { rack: 3 } } }),
      400,
      'bad_request',
      /endpoints.labels.rack must be a string/,
    ],
    [
      '"*" for a type no registered endpoint serves',
      () => request(app).post('/worker').send({ identifier: 'u15', endpoints: '*' }),
      422,
      'selector_matched_nothing',
      /no registered endpoint serves worker/,
    ],
    [
      'a selector that matches nothing',
      () =>
        request(app)
          .post('/worker')
          .send({ identifier: 'u16', endpoints: { labels: { role: 'web' }, status: 'online' } }),
      422,
      'selector_matched_nothing',
      /the selector role=web \(online\) matches no registered endpoint that serves worker/,
    ],
    [
      'unknown task type',
      () => request(app).post('/deploy').send({ identifier: 'u8' }),
      404,
      'unknown_task_type',
      /unknown task type "deploy"/,
    ],
  ];
  it.each(bad)(
    'rejects %s with a JSON error and writes nothing',
    async (_name, send, status, code, message) => {
      const before = await tableCounts();
      const res = await send().expect(status);
      expect(res.headers['content-type']).toMatch(/application\/json/);
      expect(res.body.error.code).toBe(code);
      expect(res.body.error.message).toMatch(message);
      expect(JSON.stringify(res.body)).not.toMatch(/at .*\.ts:\d+/);
      expect(await tableCounts()).toEqual(before);
    },
  );

  it('keeps SQL and shell metacharacters and emoji exactly as sent', async () => {
    const identifier = "💥'; DROP TABLE tasks; -- $(touch /tmp/pwned)";
    const payload = { cmd: '`rm -rf /`; echo "$HOME" | sh', text: 'Grüße 👩‍💻 \\ \' "' };
    await request(app)
      .post('/backup')
      .send({ identifier, payload, endpoints: ['n1'] })
      .expect(201);
    const res = await request(app)
      .get(`/backup/${encodeURIComponent(identifier)}`)
      .expect(200);
    expect(res.body.task.identifier).toBe(identifier);
    expect(res.body.task.payload).toEqual(payload);
    expect(await stack.db('tasks').count({ n: '*' })).toEqual([{ n: expect.any(Number) }]);
  });

  it('keeps no timer for a POST once it is answered', async () => {
    // every timer made meanwhile, until it fired or was cleared
    const pending = new Set<number>();
    const hook = createHook({
      init: (id, type) => {
        if (type === 'Timeout') pending.add(id);
      },
      destroy: (id) => {
        pending.delete(id);
      },
    }).enable();
    try {
      for (let i = 0; i < 20; i += 1) {
        const res = await request(app)
          .post('/worker')
          .send({ identifier: `timer-${i}`, endpoints: ['console1'] })
          .expect(201);
        expect(res.body.status).toBe('SENT');
      }
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      hook.disable();
    }
    // publish_wait is seconds long: a timer left per POST would still be pending
    expect(pending.size).toBeLessThan(5);
  });

  it('accepts a broadcast without endpoints', async () => {
    const res = await request(app).post('/worker').send({ identifier: 'broadcast-1' }).expect(201);
    expect(res.body).toMatchObject({ endpoints: [], payload: null, counts: { expected: 0 } });
  });
});

describe('GET', () => {
  it('returns the task with one PENDING response per addressed endpoint', async () => {
    await request(app)
      .post('/worker')
      .send({ identifier: 'get-1', endpoints: ['x1', 'x2'] })
      .expect(201);
    const res = await request(app).get('/worker/get-1').expect(200);
    expect(res.body.task.identifier).toBe('get-1');
    expect(res.body.taskResponseList).toHaveLength(2);
    expect(res.body.taskResponseList[0]).toMatchObject({
      endpoint: 'x1',
      status: 'PENDING',
      task_id: res.body.task.id,
      errnr: null,
      errmsg: null,
      payload: null,
      start_time: null,
    });
  });

  it('404s an unknown task or type, and an unknown route, as JSON', async () => {
    expect((await request(app).get('/worker/nope').expect(404)).body.error.code).toBe(
      'task_not_found',
    );
    expect((await request(app).get('/deploy/x').expect(404)).body.error.code).toBe(
      'unknown_task_type',
    );
    expect((await request(app).get('/a/b/c').expect(404)).body.error.code).toBe('not_found');
  });

  it('400s a path with a malformed percent-escape, naming it', async () => {
    const res = await request(app).get('/worker/%E0%A4%A').expect(400);
    expect(res.body.error).toEqual({
      code: 'bad_request',
      message: "the path has a malformed percent-escape: Failed to decode param '%E0%A4%A'",
      request_id: res.headers['x-request-id'],
    });
  });

  it('keeps two identifiers that differ only in a lone surrogate from becoming one task', async () => {
    const before = await tableCounts();
    for (const identifier of ['sur\\ud800', 'sur\\udfff']) {
      await request(app)
        .post('/worker')
        .set('content-type', 'application/json')
        .send(`{"identifier":"${identifier}"}`)
        .expect(400);
    }
    expect(await tableCounts()).toEqual(before);
  });

  it('keeps health checks open', async () => {
    await request(app).get('/healthz').expect(200, { status: 'ok' });
    const ready = await request(app).get('/readyz').expect(200);
    expect(ready.body).toEqual({ status: 'ready', database: 'up', broker: 'up' });
  });
});

describe('bearer tokens', () => {
  const token = 'a-long-enough-secret-token';
  let secured: Express;
  beforeAll(() => {
    const config = loadConfig({
      mode: 'test',
      env: {},
      flags: {
        'database-url': `mysql://root@127.0.0.1:3306/${stack.dbName}`,
        prefix: stack.prefix,
        set: `api.tokens=${token}`,
      },
    });
    secured = apiFor(config);
  });

  it('401s a missing or wrong token and writes nothing', async () => {
    const before = await tableCounts();
    const missing = await request(secured)
      .post('/worker')
      .send({ identifier: 'auth-1' })
      .expect(401);
    expect(missing.body.error.code).toBe('unauthorized');
    expect(missing.headers['www-authenticate']).toMatch(/Bearer/);
    await request(secured)
      .post('/worker')
      .set('authorization', 'Bearer wrong')
      .send({ identifier: 'auth-1' })
      .expect(401);
    await request(secured).get('/worker/get-1').expect(401);
    expect(await tableCounts()).toEqual(before);
  });

  it('accepts the right token, and leaves health checks open', async () => {
    await request(secured)
      .post('/worker')
      .set('authorization', `Bearer ${token}`)
      .send({ identifier: 'auth-2' })
      .expect(201);
    await request(secured).get('/healthz').expect(200);
  });
});

describe('GET /types', () => {
  it('lists the configured types with their effective settings', async () => {
    const res = await request(app).get('/types').expect(200);
    expect(res.body.types.map((type: { name: string }) => type.name)).toEqual(['worker', 'backup']);
    expect(res.body.types[0]).toEqual({
      name: 'worker',
      route: '/worker',
      exchange: `${stack.prefix}.worker`,
      wait_for_endpoints_timeout_ms: 10_000,
      execution_timeout_ms: 30_000,
      max_deliveries: 5,
      rollout: null,
      success_threshold: null,
      retry: null,
      priority: 0,
    });
    // backup sets no execution timeout: the default applies
    expect(res.body.types[1]).toMatchObject({ name: 'backup', execution_timeout_ms: 1_500_000 });
  });

  it("shows a type's rollout and threshold, and one type alone; 404 for an unknown one", async () => {
    const config = loadConfig({
      mode: 'test',
      env: {},
      flags: {
        'database-url': `mysql://root@127.0.0.1:3306/${stack.dbName}`,
        prefix: stack.prefix,
        set: [
          'api.rollout=batch=25%,max_errors=1,pause=30s',
          'api.success_threshold=90%',
          'api.tokens=a-long-enough-secret-token',
        ].join('\n'),
      },
    });
    const typed = apiFor(config);
    const auth = { authorization: 'Bearer a-long-enough-secret-token' };
    const one = await request(typed).get('/types/backup').set(auth).expect(200);
    expect(one.body).toMatchObject({
      name: 'backup',
      rollout: { batch: '25%', max_errors: '1', pause_ms: 30_000 },
      success_threshold: '90%',
    });
    const all = await request(typed).get('/types').set(auth).expect(200);
    // the configuration's secrets are never shown
    expect(JSON.stringify(all.body)).not.toContain('a-long-enough-secret-token');
    await request(typed).get('/types').expect(401);
    const unknown = await request(typed).get('/types/deploy').set(auth).expect(404);
    expect(unknown.body.error.code).toBe('unknown_task_type');
  });
});

describe('delayed tasks (not_before)', () => {
  it('answers 201 SCHEDULED with its not_before, lists it by status and cancels it', async () => {
    const before = Date.now();
    const res = await request(app)
      .post('/worker')
      .send({ identifier: 'later-1', endpoints: ['x1'], not_before: '1h' })
      .expect(201);
    expect(res.body).toMatchObject({ status: 'SCHEDULED', sent_at: null });
    const due = Date.parse(res.body.not_before);
    expect(due).toBeGreaterThanOrEqual(before + 3_600_000);
    expect(due).toBeLessThan(Date.now() + 3_600_000 + 1000);
    // a repeat answers the stored task, whatever time its duration means now
    const again = await request(app)
      .post('/worker')
      .send({ identifier: 'later-1', endpoints: ['x1'], not_before: '1h' })
      .expect(200);
    expect(again.body.not_before).toBe(res.body.not_before);
    expect(await stack.db('outbox').where({ task_id: res.body.id })).toHaveLength(0);

    const got = await request(app).get('/worker/later-1').expect(200);
    expect(got.body.task.status).toBe('SCHEDULED');
    expect(got.body.taskResponseList[0]).toMatchObject({ status: 'PENDING', deliver_by: null });
    const listed = await request(app).get('/worker?status=scheduled').expect(200);
    expect(listed.body.tasks.map((task: { identifier: string }) => task.identifier)).toContain(
      'later-1',
    );

    const cancelled = await request(app)
      .post('/worker/later-1/cancel')
      .send({ reason: 'changed my mind' })
      .expect(200);
    expect(cancelled.body).toMatchObject({ status: 'CANCELLED', cancel_reason: 'changed my mind' });
    expect(await stack.db('outbox').where({ task_id: res.body.id })).toHaveLength(0);
  });

  it('publishes at once a not_before that has come', async () => {
    const res = await request(app)
      .post('/worker')
      .send({ identifier: 'later-2', not_before: new Date(Date.now() - 5000).toISOString() })
      .expect(201);
    expect(res.body).toMatchObject({ status: 'SENT', not_before: null });
  });

  it('refuses a retry of a task not yet released', async () => {
    await request(app)
      .post('/worker')
      .send({ identifier: 'later-3', endpoints: ['x1'], not_before: '10m' })
      .expect(201);
    const res = await request(app).post('/worker/later-3/retry').expect(409);
    expect(res.body.error.code).toBe('task_not_final');
  });

  it.each([
    ['tomorrow', /not_before must be an ISO 8601 time/],
    ['2026-12-03T03:00:00', /with its offset from UTC/],
    [new Date(Date.now() - 3_600_000).toISOString(), /s in the past; at most 60 s/],
    ['721h', /the limit is api.max_delay/],
  ])('400s not_before %j, naming it, and writes nothing', async (notBefore, message) => {
    const counts = await tableCounts();
    const res = await request(app)
      .post('/worker')
      .send({ identifier: 'later-bad', not_before: notBefore })
      .expect(400);
    expect(res.body.error).toMatchObject({ code: 'bad_request', field: 'not_before' });
    expect(res.body.error.message).toMatch(message);
    expect(await tableCounts()).toEqual(counts);
  });
});

describe('dependencies (after)', () => {
  it('answers 201 WAITING with its after and policy, and shows them on GET', async () => {
    await request(app)
      .post('/worker')
      .send({ identifier: 'dep-a', endpoints: ['x1'] })
      .expect(201);
    const res = await request(app)
      .post('/backup')
      .send({
        identifier: 'dep-b',
        endpoints: ['x1'],
        after: ['worker/dep-a'],
        on_dependency_failure: 'run',
      })
      .expect(201);
    expect(res.body).toMatchObject({
      status: 'WAITING',
      after: ['worker/dep-a'],
      on_dependency_failure: 'run',
      sent_at: null,
    });
    const got = await request(app).get('/backup/dep-b').expect(200);
    expect(got.body.task).toMatchObject({ status: 'WAITING', after: ['worker/dep-a'] });
    const listed = await request(app).get('/tasks?status=WAITING').expect(200);
    expect(listed.body.tasks.map((task: { identifier: string }) => task.identifier)).toEqual([
      'dep-b',
    ]);
    // a repeat answers the stored task; a different after is a conflict
    await request(app)
      .post('/backup')
      .send({
        identifier: 'dep-b',
        endpoints: ['x1'],
        after: ['worker/dep-a'],
        on_dependency_failure: 'run',
      })
      .expect(200);
    await request(app)
      .post('/worker')
      .send({ identifier: 'dep-c', endpoints: ['x1'] })
      .expect(201);
    const other = await request(app)
      .post('/backup')
      .send({ identifier: 'dep-b', endpoints: ['x1'], after: ['worker/dep-c'] })
      .expect(409);
    expect(other.body.error.code).toBe('identifier_conflict');
  });

  const refused: Array<[string, Record<string, unknown>, number, string, string, RegExp]> = [
    [
      'a missing task',
      { identifier: 'dep-x', after: ['worker/dep-a', 'worker/nope'] },
      422,
      'unknown_dependency',
      'after[1]',
      /after\[1\] names worker\/nope, which does not exist/,
    ],
    [
      'the task itself',
      { identifier: 'dep-self', after: ['worker/dep-self'] },
      422,
      'dependency_cycle',
      'after[0]',
      /names this task itself/,
    ],
    [
      'a task that comes after this one (a repost closing a cycle)',
      { identifier: 'dep-a', endpoints: ['x1'], after: ['backup/dep-b'] },
      422,
      'dependency_cycle',
      'after',
      /worker\/dep-a exists, and a task in after comes after it/,
    ],
    [
      'an item that is no task reference',
      { identifier: 'dep-x', after: ['dep-a'] },
      400,
      'bad_request',
      'after[0]',
      /must be "<type>\/<identifier>"/,
    ],
    [
      'a policy without after',
      { identifier: 'dep-x', on_dependency_failure: 'run' },
      400,
      'bad_request',
      'on_dependency_failure',
      /needs after/,
    ],
    [
      'an unknown policy',
      { identifier: 'dep-x', after: ['worker/dep-a'], on_dependency_failure: 'skip' },
      400,
      'bad_request',
      'on_dependency_failure',
      /must be "cancel" or "run"/,
    ],
  ];
  it.each(refused)('refuses %s, naming the field, and writes nothing', async (...args) => {
    const [, body, status, code, field, message] = args;
    const before = await tableCounts();
    const res = await request(app).post('/worker').send(body).expect(status);
    expect(res.body.error).toMatchObject({ code, field });
    expect(res.body.error.message).toMatch(message);
    expect(await tableCounts()).toEqual(before);
  });
});

describe('schedules', () => {
  const nightly = {
    name: 'nightly-backup',
    type: 'backup',
    payload: { full: true },
    endpoints: ['x1'],
    cron: '0 3 * * *',
    timezone: 'Europe/Berlin',
    catch_up: 'one',
  };

  it('makes, lists, shows, changes, pauses, resumes and deletes a schedule', async () => {
    const made = await request(app).post('/schedules').send(nightly).expect(201);
    expect(made.body).toMatchObject({
      name: 'nightly-backup',
      type: 'backup',
      payload: { full: true },
      endpoints: ['x1'],
      every_ms: null,
      cron: '0 3 * * *',
      timezone: 'Europe/Berlin',
      catch_up: 'one',
      paused: false,
    });
    // 03:00 in Berlin is 02:00Z in winter, 01:00Z in summer
    expect(made.body.next_run_at).toMatch(/T0[12]:00:00\.000Z$/);
    await request(app).post('/schedules').send(nightly).expect(200);
    const conflict = await request(app)
      .post('/schedules')
      .send({ ...nightly, cron: '0 4 * * *' })
      .expect(409);
    expect(conflict.body.error.code).toBe('schedule_exists');

    const list = await request(app).get('/schedules').expect(200);
    expect(list.body.schedules.map((s: { name: string }) => s.name)).toEqual(['nightly-backup']);
    const one = await request(app).get('/schedules/nightly-backup').expect(200);
    expect(one.body.schedule.name).toBe('nightly-backup');
    expect(one.body.next_runs).toHaveLength(5);
    expect(one.body.recent_tasks).toEqual([]);

    const changed = await request(app)
      .patch('/schedules/nightly-backup')
      .send({ cron: null, every: '2h' })
      .expect(200);
    expect(changed.body).toMatchObject({
      cron: null,
      every_ms: 7_200_000,
      payload: { full: true },
    });
    const backoff = await request(app)
      .patch('/schedules/nightly-backup')
      .send({ backoff: { factor: 1.5, max: '6h' } })
      .expect(200);
    expect(backoff.body).toMatchObject({
      backoff: { factor: 1.5, max_ms: 21_600_000 },
      interval_ms: 7_200_000,
    });
    const paused = await request(app).post('/schedules/nightly-backup/pause').expect(200);
    expect(paused.body.paused).toBe(true);
    expect((await request(app).get('/schedules/nightly-backup')).body.next_runs).toEqual([]);
    const resumed = await request(app).post('/schedules/nightly-backup/resume').expect(200);
    expect(resumed.body.paused).toBe(false);
    await request(app).delete('/schedules/nightly-backup').expect(204);
    const gone = await request(app).get('/schedules/nightly-backup').expect(404);
    expect(gone.body.error.code).toBe('not_found');
    await request(app).patch('/schedules/nightly-backup').send({ every: '1h' }).expect(404);
  });

  it.each([
    [{ cron: '0 25 * * *' }, 'cron', /cron is not a valid cron expression/],
    [{ cron: null, every: '0s' }, 'every', /every must be from 1s to 366 days/],
    [
      { start_at: '2026-12-05T00:00:00Z', end_at: '2026-12-04T00:00:00Z' },
      'end_at',
      /end_at must be after start_at/,
    ],
    [{ timezone: 'Europe/Atlantis' }, 'timezone', /timezone is not a time zone this server knows/],
    [{ type: 'deploy' }, 'type', /not a configured task type/],
    [{ name: 'no spaces' }, 'name', /name must be 1-64 letters/],
    [{ backoff: { factor: 2, max: '1h' } }, 'backoff', /backoff needs every/],
  ])('400s %j naming the field, and writes nothing', async (change, field, message) => {
    const before = await stack.db('schedules').count({ n: '*' });
    const res = await request(app)
      .post('/schedules')
      .send({ ...nightly, name: 'bad', ...change })
      .expect(400);
    expect(res.body.error).toMatchObject({ code: 'bad_request', field });
    expect(res.body.error.message).toMatch(message);
    expect(await stack.db('schedules').count({ n: '*' })).toEqual(before);
  });
});
