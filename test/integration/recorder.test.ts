/**
 * The recorder on the real MariaDB when writing a batch fails. The in-process broker feeds it so
 * that each test decides what one batch holds: the messages are published before the recorder
 * starts. The database's refusals are real: a narrowed column, a trigger, a missing table.
 */
import { MemoryBroker } from '../../src/broker';
import type { Heartbeat, ResultEvent } from '../../src/domain';
import { createLogger } from '../../src/log';
import { startRecorder } from '../../src/server/recorder';
import { createDb, createTask, type Db } from '../../src/store';
import { uniqueName } from '../support/services';
import { createTestStack, type TestStack } from '../support/stack';
import { waitFor } from '../support/waiting';
import { heartbeat, resultEvent } from '../support/messages';
import { startTcpProxy } from '../support/tcp-proxy';

let stack: TestStack;

beforeAll(async () => {
  stack = await createTestStack();
});
afterAll(async () => {
  await stack.cleanup();
});

async function newTask(endpoints: string[]): Promise<number> {
  const now = new Date();
  const { task } = await createTask(stack.db, {
    type: 'worker',
    identifier: uniqueName('rec'),
    payload: null,
    endpoints,
    deliverBy: new Date(now.getTime() + 600_000),
    executionTimeoutMs: 30_000,
    now,
    outboxDelayMs: 600_000,
  });
  return task.id;
}

async function statusOf(taskId: number, endpoint: string): Promise<string | undefined> {
  const row = (await stack
    .db('task_responses')
    .where({ task_id: taskId, endpoint })
    .first('status')) as { status: string } | undefined;
  return row?.status;
}

/**
 * Publish `messages` (result events, or a heartbeat), then run a recorder over them (one batch)
 * while `check` runs.
 */
async function recording(
  messages: Array<ResultEvent[] | Heartbeat>,
  check: (broker: MemoryBroker, lines: string[]) => Promise<void>,
  db: Db = stack.db,
): Promise<void> {
  const broker = new MemoryBroker({ prefix: uniqueName('r'), log: createLogger('error') });
  await broker.start();
  for (const message of messages) {
    if (Array.isArray(message)) await broker.publishResults(message);
    else await broker.publishHeartbeat(message);
  }
  const lines: string[] = [];
  const subscription = await startRecorder(
    db,
    broker,
    { batchSize: 100, prefetch: 100, lingerMs: 50 },
    createLogger('debug', {}, (line) => lines.push(line)),
  );
  try {
    await check(broker, lines);
  } finally {
    await subscription.close();
    await broker.close();
  }
}

const logged = (lines: string[], msg: string): Array<Record<string, unknown>> =>
  lines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((record) => record.msg === msg);

/** Wait until the recorder handed its batch back `times` times, looking into no message. */
async function handedBack(
  broker: MemoryBroker,
  lines: string[],
  times: number,
  timeoutMs: number,
): Promise<void> {
  await waitFor(
    () =>
      Promise.resolve(
        logged(lines, 'could not record what agents sent; returning it to the queue').length,
      ),
    (n) => n >= times,
    timeoutMs,
    `the batch handed back ${times} times`,
  );
  expect(logged(lines, 'a result message failed on its own; returning it to the queue')).toEqual(
    [],
  );
  expect(broker.deadLetters()).toEqual([]);
}

/** Wait until each (task, endpoint) is DONE. */
async function allRecorded(rows: ReadonlyArray<readonly [number, string]>): Promise<void> {
  for (const [id, endpoint] of rows) {
    await waitFor(
      () => statusOf(id, endpoint),
      (status) => status === 'DONE',
      20_000,
      `task ${id} recorded`,
    );
  }
}

it('records the rest of the batch, and the other events of a grouped message, when the database refuses a value', async () => {
  const t1 = await newTask(['a']);
  const t2 = await newTask(['a']);
  const t3 = await newTask(['a']);
  const t4 = await newTask(['b']);
  // narrower than an errmsg the recorder takes (4,000 characters)
  await stack.db.raw('ALTER TABLE task_responses MODIFY errmsg VARCHAR(3000) NULL');
  try {
    const grouped = [
      resultEvent(t1, 'a'),
      resultEvent(t2, 'a', { status: 'FAILED', errnr: 2, errmsg: 'x'.repeat(3500) }),
      resultEvent(t3, 'a'),
    ];
    await recording([grouped, [resultEvent(t4, 'b')]], async (broker, lines) => {
      await waitFor(
        () => Promise.resolve(broker.deadLetters().length),
        (n) => n === 1,
        10_000,
        'the grouped message dead-lettered',
      );
      expect(JSON.parse(broker.deadLetters()[0]?.content.toString() ?? '')).toHaveLength(3);
      // the next message is written after the grouped one is settled
      await waitFor(
        () => statusOf(t4, 'b'),
        (status) => status === 'DONE',
        5000,
        't4 recorded',
      );
      expect(await statusOf(t1, 'a')).toBe('DONE');
      expect(await statusOf(t2, 'a')).toBe('PENDING');
      expect(await statusOf(t3, 'a')).toBe('DONE');
      const [refused] = logged(lines, 'dead-lettering a result message the database does not take');
      expect(refused).toMatchObject({
        level: 'error',
        failures: 1,
        recorded_events: 2,
        task_ids: [t1, t2, t3],
        err: { code: 'ER_DATA_TOO_LONG', message: expect.stringMatching(/Data too long/) },
      });
      // the statement is named with its placeholders, without the values
      expect(JSON.stringify(refused)).not.toContain('x'.repeat(100));
    });
  } finally {
    await stack.db.raw('ALTER TABLE task_responses MODIFY errmsg TEXT NULL');
  }
});

it('gives up on a message that keeps failing on its own after three tries, and records the rest', async () => {
  const cursedTask = await newTask(['cursed']);
  const other = await newTask(['fine']);
  await stack.db.raw(
    `CREATE TRIGGER refuse_cursed BEFORE INSERT ON task_responses FOR EACH ROW
     IF NEW.endpoint = 'cursed' AND NEW.status <> 'PENDING' THEN
       SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'cursed endpoint';
     END IF`,
  );
  try {
    await recording(
      [[resultEvent(cursedTask, 'cursed')], [resultEvent(other, 'fine')]],
      async (broker, lines) => {
        await waitFor(
          () => statusOf(other, 'fine'),
          (status) => status === 'DONE',
          5000,
          'the other message recorded',
        );
        await waitFor(
          () => Promise.resolve(broker.deadLetters().length),
          (n) => n === 1,
          15_000,
          'the failing message dead-lettered',
        );
        expect(await statusOf(cursedTask, 'cursed')).toBe('PENDING');
        const retried = logged(
          lines,
          'a result message failed on its own; returning it to the queue',
        );
        expect(retried.map((r) => r.failures)).toEqual([1, 2]);
        const [gaveUp] = logged(
          lines,
          'dead-lettering a result message the database does not take',
        );
        expect(gaveUp).toMatchObject({
          failures: 3,
          err: { message: expect.stringMatching(/cursed endpoint/) },
        });
      },
    );
  } finally {
    await stack.db.raw('DROP TRIGGER IF EXISTS refuse_cursed');
  }
});

it('hands every message back while the table is missing, and records them all once it is back', async () => {
  const first = await newTask(['m1']);
  const second = await newTask(['m1']);
  const third = await newTask(['m2']);
  await stack.db.raw('RENAME TABLE task_responses TO task_responses_away');
  let renamed = true;
  try {
    await recording(
      [[resultEvent(first, 'm1'), resultEvent(second, 'm1')], [resultEvent(third, 'm2')]],
      async (broker, lines) => {
        // no message looked into one by one, none dead-lettered: the table is the matter
        await handedBack(broker, lines, 2, 10_000);
        await stack.db.raw('RENAME TABLE task_responses_away TO task_responses');
        renamed = false;
        await allRecorded([
          [first, 'm1'],
          [second, 'm1'],
          [third, 'm2'],
        ]);
        expect(broker.deadLetters()).toEqual([]);
      },
    );
  } finally {
    if (renamed) await stack.db.raw('RENAME TABLE task_responses_away TO task_responses');
  }
});

it('hands every message back while the database is unreachable, counting nothing against them', async () => {
  const proxy = await startTcpProxy(3306);
  const db = createDb({
    ...stack.config.database,
    url: stack.config.database.url.replace(':3306', `:${proxy.port}`),
  });
  try {
    const first = await newTask(['u1']);
    const second = await newTask(['u1']);
    const third = await newTask(['u2']);
    proxy.cut();
    await recording(
      [[resultEvent(first, 'u1'), resultEvent(second, 'u1')], [resultEvent(third, 'u2')]],
      async (broker, lines) => {
        // past the handbacks after which the recorder looks into the batch anyway
        await handedBack(broker, lines, 4, 40_000);
        proxy.restore();
        await allRecorded([
          [first, 'u1'],
          [second, 'u1'],
          [third, 'u2'],
        ]);
        expect(broker.deadLetters()).toEqual([]);
      },
      db,
    );
  } finally {
    await db.destroy();
    await proxy.close();
  }
}, 90_000);

describe('heartbeats', () => {
  const registered = async (names: string[]) =>
    (await stack.db('endpoints').whereIn('name', names).orderBy('name')) as Array<{
      name: string;
      labels: string;
      stopped_at: Date | null;
      hostname: string;
    }>;

  it('records the heartbeats of a batch in one upsert beside its results, the latest of each endpoint winning', async () => {
    const t1 = await newTask(['hb1']);
    const inserts: string[] = [];
    const count = (query: { sql: string }) => {
      if (/^insert into `endpoints`/.test(query.sql)) inserts.push(query.sql);
    };
    stack.db.on('query', count);
    const earlier = new Date(Date.now() - 1000).toISOString();
    try {
      await recording(
        [
          heartbeat('hb1', { labels: { role: 'db' }, at: new Date().toISOString() }),
          [resultEvent(t1, 'hb1')],
          heartbeat('hb1', { labels: { role: 'old' }, at: earlier }),
          heartbeat('hb2'),
          heartbeat('hb3', { phase: 'goodbye' }),
        ],
        async (broker) => {
          await allRecorded([[t1, 'hb1']]);
          await waitFor(
            () => registered(['hb1', 'hb2', 'hb3']),
            (rows) => rows.length === 3,
            10_000,
            'three endpoints registered',
          );
          expect(broker.deadLetters()).toEqual([]);
        },
      );
    } finally {
      stack.db.off('query', count);
    }
    const [hb1, hb2, hb3] = await registered(['hb1', 'hb2', 'hb3']);
    expect(JSON.parse(hb1?.labels ?? '')).toEqual({ role: 'db' });
    expect(hb2?.stopped_at).toBeNull();
    expect(hb3?.stopped_at).toBeInstanceOf(Date);
    expect(inserts).toHaveLength(1);
  });

  it('hands heartbeats back while their table is missing, and records them once it is back', async () => {
    await stack.db.raw('RENAME TABLE endpoints TO endpoints_away');
    let renamed = true;
    try {
      await recording([heartbeat('hb4'), heartbeat('hb5')], async (broker, lines) => {
        await waitFor(
          () =>
            Promise.resolve(
              logged(lines, 'could not record what agents sent; returning it to the queue').length,
            ),
          (n) => n >= 2,
          10_000,
          'the heartbeats handed back twice',
        );
        await stack.db.raw('RENAME TABLE endpoints_away TO endpoints');
        renamed = false;
        await waitFor(
          () => registered(['hb4', 'hb5']),
          (rows) => rows.length === 2,
          20_000,
          'both endpoints registered',
        );
        expect(broker.deadLetters()).toEqual([]);
      });
    } finally {
      if (renamed) await stack.db.raw('RENAME TABLE endpoints_away TO endpoints');
    }
  });

  it('dead-letters the heartbeat the database refuses, and records the others of its batch', async () => {
    await stack.db.raw('ALTER TABLE endpoints MODIFY hostname VARCHAR(10) NOT NULL');
    try {
      await recording(
        [heartbeat('hb6'), heartbeat('hb7', { hostname: 'h'.repeat(40) }), heartbeat('hb8')],
        async (broker) => {
          await waitFor(
            () => Promise.resolve(broker.deadLetters().length),
            (n) => n === 1,
            10_000,
            'the long hostname dead-lettered',
          );
          expect((await registered(['hb6', 'hb7', 'hb8'])).map((row) => row.name)).toEqual([
            'hb6',
            'hb8',
          ]);
        },
      );
    } finally {
      await stack.db.raw('ALTER TABLE endpoints MODIFY hostname VARCHAR(255) NOT NULL');
    }
  });
});
