/**
 * An agent's finished events, grouped while a message waits for its confirm. The broker here is
 * a stand-in that records what it was asked to publish and confirms when the test says so.
 */
import type { TaskBroker } from '../../src/broker';
import type { ResultEvent } from '../../src/domain';
import { ReportSender } from '../../src/agent/reports';

function event(taskId: number, payload: unknown = null): ResultEvent {
  return {
    v: 1,
    task_id: taskId,
    type: 'worker',
    endpoint: 'web1',
    event: 'finished',
    status: 'DONE',
    errnr: 0,
    errmsg: null,
    payload,
    progress: null,
    at: '2026-11-23T10:00:00.000Z',
    attempt: 1,
    agent: null,
    round: 1,
  };
}

/** Publishes nothing; each call waits until `confirm(i)` or `refuse(i)`. */
function heldBroker() {
  const calls: Array<{
    ids: number[];
    confirm: () => void;
    refuse: (err: Error) => void;
  }> = [];
  const broker = {
    publishResults: (events: readonly ResultEvent[]) =>
      new Promise<void>((confirm, refuse) => {
        calls.push({ ids: events.map((e) => e.task_id), confirm, refuse });
      }),
  } as unknown as TaskBroker;
  return { broker, calls };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('ReportSender', () => {
  it('sends the first event at once and gathers the rest while it waits for the confirm', async () => {
    const { broker, calls } = heldBroker();
    const sender = new ReportSender(broker);
    const sent: number[] = [];
    const track = (id: number) => sender.send(event(id)).then(() => sent.push(id));
    const all = [1, 2, 3, 4].map(track);
    await tick();
    expect(calls.map((c) => c.ids)).toEqual([[1]]);
    calls[0]?.confirm();
    await tick();
    expect(sent).toEqual([1]);
    expect(calls.map((c) => c.ids)).toEqual([[1], [2, 3, 4]]);
    calls[1]?.confirm();
    await Promise.all(all);
    expect(sent).toEqual([1, 2, 3, 4]);
  });

  it('keeps a message within its event and size limits', async () => {
    const { broker, calls } = heldBroker();
    const sender = new ReportSender(broker, { maxEvents: 2, maxBytes: 5000 });
    const big = 'x'.repeat(3000);
    const all = [
      sender.send(event(1)),
      sender.send(event(2)),
      sender.send(event(3)),
      sender.send(event(4, big)),
      sender.send(event(5, big)),
    ];
    for (let i = 0; i < 4; i += 1) {
      await tick();
      calls[i]?.confirm();
    }
    await Promise.all(all);
    // one alone, two by the count, then the large payloads one to a message
    expect(calls.map((c) => c.ids)).toEqual([[1], [2, 3], [4], [5]]);
  });

  it('fails every event of a refused message, and sends the next group regardless', async () => {
    const { broker, calls } = heldBroker();
    const sender = new ReportSender(broker);
    const first = sender.send(event(1));
    const second = [sender.send(event(2)), sender.send(event(3))];
    await tick();
    calls[0]?.refuse(new Error('no confirm'));
    await expect(first).rejects.toThrow('no confirm');
    await tick();
    calls[1]?.refuse(new Error('channel closed'));
    for (const pending of second) await expect(pending).rejects.toThrow('channel closed');
    const third = sender.send(event(4));
    await tick();
    expect(calls.map((c) => c.ids)).toEqual([[1], [2, 3], [4]]);
    calls[2]?.confirm();
    await expect(third).resolves.toBeUndefined();
  });
});
