/**
 * The recorder's parts on their own, with fake deliveries and a fake write: what a message is
 * taken for (accept, trust, settle), and how the bad message of a refused batch is found
 * without holding back the others. The whole recorder on MariaDB is in
 * test/integration/recorder.test.ts.
 */
import type { Delivery } from '../../src/broker';
import type { ResultEvent } from '../../src/domain';
import { silentLogger } from '../../src/log';
import {
  FailureCounts,
  MAX_FAILURES_ALONE,
  isolateBadMessages,
  type WriteResult,
} from '../../src/server/recorder/isolate';
import { acceptMessage, settleMessage, type Accepted } from '../../src/server/recorder/messages';
import { outagePauseMs } from '../../src/server/recorder';
import { heartbeat, resultEvent } from '../support/messages';

interface FakeDelivery extends Delivery {
  settled: 'ack' | 'requeue' | 'deadLetter' | null;
}

let ids = 0;
function delivery(content: unknown, userId: string | null = null): FakeDelivery {
  ids += 1;
  const fake: FakeDelivery = {
    content: Buffer.from(typeof content === 'string' ? content : JSON.stringify(content)),
    redelivered: false,
    messageId: `m${ids}`,
    userId,
    settled: null,
    ack: () => (fake.settled = 'ack'),
    requeue: () => (fake.settled = 'requeue'),
    deadLetter: () => (fake.settled = 'deadLetter'),
  };
  return fake;
}

const refused = (code: string): Error => Object.assign(new Error(code), { code });

describe('acceptMessage and settleMessage', () => {
  it('takes a valid message, and acks it once every event is recorded', () => {
    const d = delivery([resultEvent(1, 'e1'), resultEvent(2, 'e1')]);
    const accepted = acceptMessage(d, null, silentLogger) as Accepted;
    expect(accepted.events.map((e) => e.task_id)).toEqual([1, 2]);
    expect(accepted.keep).toBe(false);
    settleMessage(accepted as Accepted, new Set(), silentLogger);
    expect(d.settled).toBe('ack');
  });

  it('dead-letters what is not a result message, and keeps nothing of it', () => {
    for (const content of ['not json', '[]', { v: 2 }]) {
      const d = delivery(content);
      expect(acceptMessage(d, null, silentLogger)).toBeNull();
      expect(d.settled).toBe('deadLetter');
    }
  });

  it('records the valid events of a partly invalid message, then dead-letters it', () => {
    const d = delivery([resultEvent(1, 'e1'), { ...resultEvent(2, 'e1'), status: 'BOGUS' }]);
    const accepted = acceptMessage(d, null, silentLogger) as Accepted;
    expect(accepted.events.map((e) => e.task_id)).toEqual([1]);
    expect(accepted.keep).toBe(true);
    settleMessage(accepted, new Set(), silentLogger);
    expect(d.settled).toBe('deadLetter');
  });

  it('trusts an event only from the broker user of its endpoint when told to', () => {
    const event = resultEvent(1, 'web1');
    expect(
      acceptMessage(delivery(event, 'tasker-agent-web1'), 'tasker-agent-', silentLogger),
    ).not.toBeNull();
    const forged = delivery(event, 'tasker-agent-web2');
    expect(acceptMessage(forged, 'tasker-agent-', silentLogger)).toBeNull();
    expect(forged.settled).toBe('deadLetter');
  });

  it('takes a heartbeat apart from results, and only from its own broker user when told to', () => {
    const own = acceptMessage(
      delivery(heartbeat('web1'), 'tasker-agent-web1'),
      'tasker-agent-',
      silentLogger,
    );
    expect(own).toMatchObject({ heartbeat: { endpoint: 'web1', labels: { role: 'web' } } });
    const forged = delivery(heartbeat('web1'), 'tasker-agent-web2');
    expect(acceptMessage(forged, 'tasker-agent-', silentLogger)).toBeNull();
    expect(forged.settled).toBe('deadLetter');
  });

  it.each([
    ['a phase it does not know', { phase: 'hi' }],
    ['a label that is not a string', { labels: { rack: 3 } }],
    ['an interval under 100 ms', { interval_ms: 5 }],
    ['an endpoint that is no name', { endpoint: '../etc' }],
  ])('dead-letters a heartbeat with %s', (_what, extra) => {
    const d = delivery({ ...heartbeat('web1'), ...extra });
    expect(acceptMessage(d, null, silentLogger)).toBeNull();
    expect(d.settled).toBe('deadLetter');
  });

  it('dead-letters a message with an event for a task that does not exist', () => {
    const d = delivery(resultEvent(99, 'e1'));
    const accepted = acceptMessage(d, null, silentLogger) as Accepted;
    settleMessage(accepted, new Set(accepted.events), silentLogger);
    expect(d.settled).toBe('deadLetter');
  });
});

describe('isolateBadMessages', () => {
  /** A write that refuses any event of the tasks in `bad` with `error`. */
  function writer(bad: ReadonlySet<number>, error: unknown) {
    const writes: number[][] = [];
    return {
      writes,
      write: (events: ResultEvent[]): Promise<WriteResult> => {
        writes.push(events.map((e) => e.task_id));
        return Promise.resolve(
          events.some((e) => bad.has(e.task_id)) ? { error } : { orphaned: [] },
        );
      },
    };
  }

  function messages(...taskIds: number[][]): Array<Accepted & { delivery: FakeDelivery }> {
    return taskIds.map((tasks) => {
      const d = delivery(tasks.map((t) => resultEvent(t, 'e1')));
      return acceptMessage(d, null, silentLogger) as Accepted & { delivery: FakeDelivery };
    });
  }

  const settle = (message: Accepted, orphaned: ReadonlySet<ResultEvent>): void =>
    settleMessage(message, orphaned, silentLogger);

  it('writes the good messages, records the good events of the bad one, dead-letters it', async () => {
    const batch = messages([1], [2, 3], [4]);
    const { write, writes } = writer(new Set([3]), refused('ER_DATA_TOO_LONG'));
    const failures = new FailureCounts();
    const retry = await isolateBadMessages(batch, refused('ER_DATA_TOO_LONG'), {
      write,
      settle,
      failures,
      log: silentLogger,
    });
    expect(retry).toEqual([]);
    expect(batch.map((m) => m.delivery.settled)).toEqual(['ack', 'deadLetter', 'ack']);
    // the bad message's events were tried one by one, so event 2 is recorded
    expect(writes).toContainEqual([2]);
  });

  it('hands back a message that failed on its own, and dead-letters it after a few times', async () => {
    const { write } = writer(new Set([7]), new Error('something odd'));
    const failures = new FailureCounts();
    const deps = { write, settle, failures, log: silentLogger };
    const [message] = messages([7]);
    for (let i = 1; i < MAX_FAILURES_ALONE; i += 1) {
      const retry = await isolateBadMessages([message as Accepted], new Error('odd'), deps);
      expect(retry).toEqual([message]);
      expect(message?.delivery.settled).toBeNull();
    }
    expect(await isolateBadMessages([message as Accepted], new Error('odd'), deps)).toEqual([]);
    expect(message?.delivery.settled).toBe('deadLetter');
  });

  it('stops looking and hands everything back when the database is away', async () => {
    const away = refused('ECONNREFUSED');
    const batch = messages([1], [2]);
    const { write, writes } = writer(new Set([1, 2]), away);
    const retry = await isolateBadMessages(batch, away, {
      write,
      settle,
      failures: new FailureCounts(),
      log: silentLogger,
    });
    expect(retry).toEqual(batch);
    expect(writes).toEqual([[1]]);
    expect(batch.every((m) => m.delivery.settled === null)).toBe(true);
  });
});

describe('outagePauseMs', () => {
  it('grows with the failures in a row up to 10 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(outagePauseMs)).toEqual([
      500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000,
    ]);
  });
});
