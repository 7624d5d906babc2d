/**
 * The fleet's pure parts: selectors as stored and shown, labels, and the heartbeats an agent
 * sends (hello, a beat per interval, goodbye) through a broker that may be away.
 */
import type { TaskBroker } from '../../src/broker';
import {
  MAX_LABELS,
  ValidationError,
  describeSelector,
  readHeartbeat,
  readLabels,
  selectorText,
  selects,
  type Fail,
  type Heartbeat,
} from '../../src/domain';
import { HeartbeatSender } from '../../src/agent/heartbeat';
import { createLogger } from '../../src/log';
import { heartbeat } from '../support/messages';

const fail: Fail = (path, problem) => new ValidationError(`${path} ${problem}`, path);

describe('selectors', () => {
  it('are stored with their labels in name order, so one selector is one text', () => {
    const a = selectorText({ labels: { role: 'web', dc: 'fra1' }, status: 'online' });
    const b = selectorText({ labels: { dc: 'fra1', role: 'web' }, status: 'online' });
    expect(a).toBe(b);
    expect(JSON.parse(a)).toEqual({ labels: { dc: 'fra1', role: 'web' }, status: 'online' });
    expect(selectorText('*')).toBe('"*"');
  });

  it('are shown as people write them', () => {
    expect(describeSelector({ labels: { role: 'web', dc: 'fra1' }, status: 'online' })).toBe(
      'role=web,dc=fra1 (online)',
    );
    expect(describeSelector({ labels: {}, status: 'offline' })).toBe('(offline)');
    expect(describeSelector('*')).toBe('*');
  });

  it('match every label and the status', () => {
    const web = { status: 'online' as const, labels: { role: 'web', dc: 'fra1' } };
    expect(selects({ labels: { role: 'web' }, status: null }, web)).toBe(true);
    expect(selects({ labels: { role: 'web', dc: 'ams1' }, status: null }, web)).toBe(false);
    expect(selects({ labels: {}, status: 'offline' }, web)).toBe(false);
    expect(selects('*', { ...web, status: 'stopped' })).toBe(true);
  });
});

describe('labels', () => {
  it(`take at most ${MAX_LABELS}, named like a DNS label`, () => {
    const many = Object.fromEntries(
      Array.from({ length: MAX_LABELS + 1 }, (_, i) => [`k${i}`, 'v']),
    );
    expect(() => readLabels(many, 'labels', fail)).toThrow(/has 33 labels; at most 32/);
    expect(() => readLabels({ '-x': 'v' }, 'labels', fail)).toThrow(/labels.-x is not a label/);
    expect(readLabels({ 'app.kubernetes.io/name': 'api' }, 'labels', fail)).toEqual({
      'app.kubernetes.io/name': 'api',
    });
  });
});

describe('readHeartbeat', () => {
  it('takes a valid heartbeat as it is', () => {
    const beat = heartbeat('web1');
    expect(readHeartbeat({ ...beat })).toEqual(beat);
  });

  it.each([
    ['handlers that are a list', { handlers: ['1'] }, /heartbeat handlers must be an object/],
    ['a pid that is negative', { pid: -1 }, /heartbeat pid/],
    ['types that are not a list', { types: 'worker' }, /heartbeat types must be an array/],
    ['another schema version', { v: 2 }, /unsupported schema version 2/],
  ])('refuses %s', (_what, extra, message) => {
    expect(() => readHeartbeat({ ...heartbeat('web1'), ...extra })).toThrow(message);
  });
});

describe('HeartbeatSender', () => {
  /** A broker that keeps what it is given, and fails while `away`. */
  function fakeBroker() {
    const sent: Heartbeat[] = [];
    const state = { away: false, hold: null as Promise<void> | null };
    const broker = {
      publishHeartbeat: async (beat: Heartbeat) => {
        if (state.hold !== null) await state.hold;
        if (state.away) throw new Error('not connected');
        sent.push(beat);
      },
    } as unknown as TaskBroker;
    return { broker, sent, state };
  }
  const lines: string[] = [];
  const log = createLogger('debug', {}, (line) => lines.push(line));
  const sender = (broker: TaskBroker, running = 0) =>
    new HeartbeatSender({
      endpoint: 'web1',
      types: ['worker'],
      labels: { role: 'web' },
      intervalMs: 1000,
      broker,
      log,
      handlers: () => new Map([['worker', '1']]),
      load: () => ({ running, capacity: 4 }),
    });

  beforeEach(() => {
    lines.length = 0;
    jest.useFakeTimers();
  });
  afterEach(() => jest.useRealTimers());

  it('says hello, beats within each interval, and says goodbye once stopped', async () => {
    const { broker, sent } = fakeBroker();
    const heartbeats = sender(broker, 2);
    heartbeats.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(sent.map((beat) => beat.phase)).toEqual(['hello']);
    expect(sent[0]).toMatchObject({
      endpoint: 'web1',
      labels: { role: 'web' },
      handlers: { worker: '1' },
      running: 2,
      capacity: 4,
      interval_ms: 1000,
      pid: process.pid,
    });
    await jest.advanceTimersByTimeAsync(3000);
    expect(sent.filter((beat) => beat.phase === 'beat').length).toBeGreaterThanOrEqual(3);
    await heartbeats.stop();
    const count = sent.length;
    expect(sent[count - 1]?.phase).toBe('goodbye');
    await jest.advanceTimersByTimeAsync(5000);
    expect(sent).toHaveLength(count);
  });

  it('warns once while the broker is away, and says so when beats go through again', async () => {
    const { broker, sent, state } = fakeBroker();
    state.away = true;
    const heartbeats = sender(broker);
    heartbeats.start();
    await jest.advanceTimersByTimeAsync(5000);
    const warnings = lines.filter((line) => line.includes('could not send a heartbeat'));
    expect(warnings).toHaveLength(1);
    state.away = false;
    await jest.advanceTimersByTimeAsync(1000);
    expect(sent.length).toBeGreaterThan(0);
    expect(lines.filter((line) => line.includes('heartbeats go through again'))).toHaveLength(1);
    await heartbeats.stop();
  });

  it('does not pile beats up behind one the broker has not confirmed', async () => {
    const { broker, sent, state } = fakeBroker();
    let release: () => void = () => undefined;
    state.hold = new Promise((resolve) => (release = resolve));
    const heartbeats = sender(broker);
    heartbeats.start();
    await jest.advanceTimersByTimeAsync(10_000);
    state.hold = null;
    release();
    await jest.advanceTimersByTimeAsync(0);
    // the hello, and no beat queued behind it
    expect(sent.map((beat) => beat.phase)).toEqual(['hello']);
    await heartbeats.stop();
  });
});
