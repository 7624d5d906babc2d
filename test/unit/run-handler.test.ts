/**
 * runHandler turns whatever a handler does into an outcome and never throws. Real timers with
 * short execution timeouts; nothing here waits longer than about a second.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type {
  HandleTask,
  HandlerContext,
  HandlerResponse,
  HandlerTask,
} from '../../src/agent/contract';
import { inlineRunner } from '../../src/agent/runner';
import {
  TIMEOUT_ERRNR,
  checkResponse,
  progressReport,
  runHandler,
  type Outcome,
} from '../../src/agent/run';
import { ReportSender } from '../../src/agent/reports';
import type { TaskBroker } from '../../src/broker';
import {
  encodeResultEvents,
  parseResultMessage,
  RESULT_LIMITS,
  type ResultEvent,
} from '../../src/domain';
import { silentLogger, type Logger } from '../../src/log';
import { resultEvent } from '../support/messages';
import { sleep } from '../support/waiting';

// the leak test below needs gc(); exposed here so the suite runs with plain `jest`
setFlagsFromString('--expose-gc');

const TASK: HandlerTask = {
  id: 12,
  identifier: 'e7bd91d0-16ad-11e2-892e-0800200c9a66',
  type: 'demo',
  payload: { foo: 'bar' },
  endpoints: ['console1', 'console2'],
  created_at: '2026-01-01T10:00:00.000Z',
  deliver_by: '2026-01-01T10:05:00.000Z',
};

const CTX: Omit<HandlerContext, 'signal'> = {
  endpoint: 'console1',
  attempt: 2,
  log: silentLogger,
  progress: () => undefined,
};

/** Long enough that a test never reaches it unless it means to. */
const NO_TIMEOUT = 10_000;

function run(
  handler: HandleTask,
  timeoutMs = NO_TIMEOUT,
  shutdown: AbortSignal = new AbortController().signal,
): Promise<Outcome> {
  return runHandler(handler, TASK, CTX, timeoutMs, shutdown);
}

/** Resolves with 'still running' if `promise` has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'still running'>((resolve) => {
    timer = setTimeout(() => resolve('still running'), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

const never = (): Promise<void> => new Promise<void>(() => undefined);

function failedWith(errnr: number, errmsg: string | RegExp): Record<string, unknown> {
  return {
    status: 'FAILED',
    errnr,
    errmsg: typeof errmsg === 'string' ? errmsg : expect.stringMatching(errmsg),
    payload: null,
    abandoned: false,
  };
}

describe('runHandler: handlers that finish', () => {
  it('passes the task, a fresh response and the context to the handler', async () => {
    const seen: unknown[] = [];
    await run((task, response, ctx) => {
      seen.push(task, { ...response }, ctx.endpoint, ctx.attempt, ctx.log, ctx.signal.aborted);
      return response;
    });
    expect(seen).toEqual([
      TASK,
      { payload: null, errnr: 0, errmsg: null },
      'console1',
      2,
      silentLogger,
      false,
    ]);
  });

  it('returns DONE with the payload when the handler returns the response', async () => {
    const outcome = await run((_task, response) => {
      response.payload = { answer: 42 };
      return response;
    });
    expect(outcome).toEqual({
      status: 'DONE',
      errnr: 0,
      errmsg: null,
      payload: { answer: 42 },
      abandoned: false,
    });
  });

  it('returns DONE for an async handler', async () => {
    const outcome = await run(async (_task, response) => {
      await sleep(5);
      response.payload = 'later';
      return response;
    });
    expect(outcome).toMatchObject({ status: 'DONE', errnr: 0, payload: 'later' });
  });

  it('uses the mutated response when the handler returns nothing', async () => {
    const outcome = await run((_task, response) => {
      response.payload = [1, 2, 3];
      response.errmsg = 'all good';
    });
    expect(outcome).toEqual({
      status: 'DONE',
      errnr: 0,
      errmsg: 'all good',
      payload: [1, 2, 3],
      abandoned: false,
    });
  });

  it('uses a new response object the handler returns', async () => {
    const outcome = await run(() => ({ payload: 'mine', errnr: 0, errmsg: null }));
    expect(outcome).toMatchObject({ status: 'DONE', payload: 'mine' });
  });

  it('returns FAILED with errnr and errmsg when the handler sets errnr 32', async () => {
    const outcome = await run((_task, response) => {
      response.errnr = 32;
      response.errmsg = 'disk full';
      response.payload = { partial: true };
      return response;
    });
    expect(outcome).toEqual({
      status: 'FAILED',
      errnr: 32,
      errmsg: 'disk full',
      payload: { partial: true },
      abandoned: false,
    });
  });

  it('returns FAILED for a negative errnr', async () => {
    const outcome = await run((_task, response) => {
      response.errnr = -7;
    });
    expect(outcome).toMatchObject({ status: 'FAILED', errnr: -7 });
  });

  it('clears its timer once the handler finished', async () => {
    let signal: AbortSignal | undefined;
    await run((_task, response, ctx) => {
      signal = ctx.signal;
      return response;
    }, 30);
    await sleep(80);
    expect(signal?.aborted).toBe(false);
  });
});

describe('runHandler: handlers that throw', () => {
  it('returns FAILED errnr 1 with the message of a thrown Error', async () => {
    const outcome = await run(() => {
      throw new Error('cannot reach the printer');
    });
    expect(outcome).toEqual(failedWith(1, 'cannot reach the printer'));
  });

  it('returns FAILED for a rejected promise', async () => {
    const outcome = await run(async () => {
      await sleep(1);
      throw new TypeError('bad input');
    });
    expect(outcome).toEqual(failedWith(1, 'bad input'));
  });

  it('uses a numeric errnr property of the thrown error', async () => {
    const outcome = await run(() => {
      throw Object.assign(new Error('quota exceeded'), { errnr: 28 });
    });
    expect(outcome).toEqual(failedWith(28, 'quota exceeded'));
  });

  it.each([
    ['0', 0],
    ['a string', '28'],
    ['a fraction', 2.5],
    ['NaN', Number.NaN],
    ['past 32 bits', 2 ** 31],
    ['an HRESULT as unsigned', 0x80070005],
  ])('falls back to errnr 1 when the thrown errnr is %s', async (_what, errnr) => {
    const outcome = await run(() => {
      throw Object.assign(new Error('boom'), { errnr });
    });
    expect(outcome).toEqual(failedWith(1, 'boom'));
  });

  it('uses the error name when the message is empty', async () => {
    const outcome = await run(() => {
      throw new RangeError('');
    });
    expect(outcome).toEqual(failedWith(1, 'RangeError'));
  });

  it('returns FAILED with the text of a thrown string', async () => {
    const outcome = await run(() => {
      throw 'plain string';
    });
    expect(outcome).toEqual(failedWith(1, 'plain string'));
  });

  it('returns FAILED describing a thrown object', async () => {
    const outcome = await run(() => {
      throw { reason: 'nope', code: 5 };
    });
    expect(outcome).toEqual(failedWith(1, 'non-error thrown: {"reason":"nope","code":5}'));
  });

  it('returns FAILED for a thrown undefined or null', async () => {
    const thrownUndefined = await run(() => {
      throw undefined;
    });
    expect(thrownUndefined).toEqual(failedWith(1, /^non-error thrown: undefined$/));
    const thrownNull = await run(() => {
      throw null;
    });
    expect(thrownNull).toEqual(failedWith(1, /^non-error thrown: null$/));
  });

  it('truncates a very long error message', async () => {
    const outcome = await run(() => {
      throw new Error('x'.repeat(10_000));
    });
    expect(outcome.status).toBe('FAILED');
    expect(outcome.errmsg).toBe(`${'x'.repeat(3999)}…`);
  });
});

describe('runHandler: handlers that return garbage', () => {
  it.each<[string, unknown, RegExp]>([
    ['a number', 42, /^handler returned 42, not a response$/],
    ['a string', 'ok', /^handler returned "ok", not a response$/],
    ['an array', [1, 2], /^handler returned \[1,2\], not a response$/],
    ['null', null, /^handler returned null, not a response$/],
    ['true', true, /^handler returned true, not a response$/],
    ['a function', () => 1, /^handler returned function, not a response$/],
  ])('returns FAILED saying the handler returned %s', async (_what, value, message) => {
    const outcome = await run(() => value as never);
    expect(outcome).toEqual(failedWith(1, message));
  });

  it('returns FAILED when the handler returns a circular array', async () => {
    const loop: unknown[] = [];
    loop.push(loop);
    const outcome = await run(() => loop as never);
    expect(outcome).toMatchObject({ status: 'FAILED', errnr: 1, payload: null, abandoned: false });
  });

  it('returns FAILED when errnr is not an integer', async () => {
    const outcome = await run(() => ({ payload: null, errnr: 'x', errmsg: null }) as never);
    expect(outcome).toEqual(
      failedWith(
        1,
        'handler set errnr to "x"; it must be an integer from -2147483648 to 2147483647',
      ),
    );
  });

  it('returns FAILED when the handler sets errnr to a fraction on the response', async () => {
    const outcome = await run((_task, response) => {
      response.errnr = 1.5;
    });
    expect(outcome).toEqual(failedWith(1, /errnr to 1\.5; it must be an integer/));
  });

  it('returns FAILED when errmsg is not a string', async () => {
    const outcome = await run((_task, response) => {
      (response as { errmsg: unknown }).errmsg = { text: 'x' };
    });
    expect(outcome).toEqual(failedWith(1, 'handler set errmsg to a non-string'));
  });

  it('returns FAILED when the payload cannot be sent as JSON (circular)', async () => {
    const outcome = await run((_task, response) => {
      const circular: Record<string, unknown> = { name: 'loop' };
      circular.self = circular;
      response.payload = circular;
      return response;
    });
    expect(outcome).toEqual(failedWith(1, /^handler payload cannot be sent as JSON: .*circular/i));
  });

  it('returns FAILED when the payload nests deeper than the recorder takes', async () => {
    const outcome = await run((_task, response) => {
      let deep: unknown = 'bottom';
      for (let i = 0; i < 150; i += 1) deep = { down: deep };
      response.payload = deep;
    });
    expect(outcome).toEqual(
      failedWith(1, 'handler payload nests deeper than 100 levels of arrays and objects'),
    );
  });

  it('returns FAILED when the payload holds a BigInt', async () => {
    const outcome = await run((_task, response) => {
      response.payload = { big: 10n };
    });
    expect(outcome).toEqual(failedWith(1, /^handler payload cannot be sent as JSON/));
  });

  it('truncates a very long errmsg the handler set', async () => {
    const outcome = await run((_task, response) => {
      response.errnr = 2;
      response.errmsg = 'y'.repeat(5000);
    });
    expect(outcome.errmsg).toHaveLength(4000);
    expect(outcome.errmsg?.endsWith('…')).toBe(true);
  });

  it('returns FAILED when errnr does not fit 32 bits, naming the range', async () => {
    const outcome = await run((_task, response) => {
      response.errnr = 2_147_942_405;
    });
    expect(outcome).toEqual(
      failedWith(1, /^handler set errnr to 2147942405; it must be an integer from -2147483648/),
    );
  });

  it('returns FAILED with the sizes when the payload is over the limit, keeping the errmsg', async () => {
    const outcome = await run((_task, response) => {
      response.payload = { log: 'z'.repeat(RESULT_LIMITS.payloadBytes) };
      response.errmsg = 'see the log';
    });
    expect(outcome).toEqual(
      failedWith(
        1,
        'handler payload is 1048586 bytes as JSON; the limit is 1048576; its errmsg: see the log',
      ),
    );
  });

  it('keeps a failing errnr when the payload is over the limit', async () => {
    const outcome = await run((_task, response) => {
      response.errnr = 7;
      response.payload = 'é'.repeat(RESULT_LIMITS.payloadBytes / 2);
    });
    expect(outcome).toMatchObject({ status: 'FAILED', errnr: 7, payload: null });
  });

  it('takes a payload of exactly the limit', async () => {
    const outcome = await run((_task, response) => {
      response.payload = 'x'.repeat(RESULT_LIMITS.payloadBytes - 2);
    });
    expect(outcome.status).toBe('DONE');
  });

  it('reports an empty errmsg as none', async () => {
    const set = await run((_task, response) => {
      response.errnr = 3;
      response.errmsg = '';
    });
    expect(set).toMatchObject({ status: 'FAILED', errnr: 3, errmsg: null });
    const thrown = await run(() => {
      throw '';
    });
    expect(thrown.errmsg === null || thrown.errmsg.length > 0).toBe(true);
  });
});

describe('what a handler does always makes an event the recorder takes', () => {
  const odd: unknown[] = [
    0,
    -0,
    1,
    -1,
    2 ** 31,
    -(2 ** 31) - 1,
    0x80070005,
    1.5,
    Number.NaN,
    Infinity,
    -Infinity,
    Number.MAX_SAFE_INTEGER,
    2 ** 60,
    '',
    'x',
    'x'.repeat(5000),
    '\u0000\n',
    null,
    undefined,
    true,
    {},
    [],
    [null],
    { toJSON: () => undefined },
    () => 1,
    Symbol('s'),
  ];

  it.each(
    odd.map((value) => [
      typeof value === 'symbol' || typeof value === 'function'
        ? `a ${typeof value}`
        : (JSON.stringify(value) ?? String(value)).slice(0, 24),
      value,
    ]),
  )(
    'for errnr, errmsg, payload, a thrown errnr and progress all set to %s',
    async (_what, value) => {
      const outcomes = [
        await run((_task, response) => {
          Object.assign(response, { errnr: value });
        }),
        await run((_task, response) => {
          Object.assign(response, { errmsg: value });
        }),
        await run((_task, response) => {
          Object.assign(response, { payload: value });
        }),
        await run(() => {
          throw Object.assign(new Error(typeof value === 'string' ? value : 'e'), { errnr: value });
        }),
      ];
      // sent as the agent sends them: finished events through its ReportSender, encoded
      const sent: Buffer[] = [];
      const broker = {
        publishResults: (events: readonly ResultEvent[]) => {
          sent.push(encodeResultEvents(events));
          return Promise.resolve();
        },
      } as unknown as TaskBroker;
      const reports = new ReportSender(broker);
      const event = (fields: Partial<ResultEvent>): ResultEvent =>
        resultEvent(1, 'console1', { type: 'demo', errnr: null, ...fields });
      for (const { status, errnr, errmsg, payload } of outcomes) {
        await reports.send(event({ status, errnr, errmsg, payload }));
      }
      for (const args of [
        [value, 10, 'line'],
        [3, value, 'line'],
        [3, 10, value],
      ]) {
        let progress;
        try {
          progress = progressReport(args[0], args[1], args[2]);
        } catch {
          continue; // String() of a value that cannot be a string: the handler's own call throws
        }
        if (progress === null) continue;
        sent.push(encodeResultEvents([event({ event: 'progress', status: 'RUNNING', progress })]));
      }
      expect(sent.length).toBeGreaterThanOrEqual(4);
      for (const message of sent) {
        expect(parseResultMessage(message).invalid).toEqual([]);
      }
    },
  );
});

describe('runHandler: execution timeout', () => {
  it('returns TIMED_OUT with TIMEOUT_ERRNR for a handler that hangs past the timeout', async () => {
    const started = Date.now();
    const outcome = await run(never, 50);
    expect(outcome).toEqual({
      status: 'TIMED_OUT',
      errnr: TIMEOUT_ERRNR,
      errmsg: 'handler did not finish within the execution timeout of 50 ms',
      payload: null,
      abandoned: false,
    });
    expect(TIMEOUT_ERRNR).toBe(-1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('times out a handler that ignores the abort signal and finishes late', async () => {
    const outcome = await run(async (_task, response) => {
      await sleep(300);
      response.payload = 'too late';
      return response;
    }, 50);
    expect(outcome).toMatchObject({ status: 'TIMED_OUT', errnr: TIMEOUT_ERRNR, payload: null });
  });

  it('aborts ctx.signal on timeout, with the reason', async () => {
    let signal: AbortSignal | undefined;
    const outcome = await run((_task, _response, ctx) => {
      signal = ctx.signal;
      return never();
    }, 40);
    expect(outcome.status).toBe('TIMED_OUT');
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBeInstanceOf(Error);
    expect((signal?.reason as Error).message).toBe('execution timeout');
  });

  it('reports TIMED_OUT, not FAILED, for a handler that rejects when aborted', async () => {
    const outcome = await run(
      (_task, _response, ctx) =>
        new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
        }),
      40,
    );
    expect(outcome).toMatchObject({ status: 'TIMED_OUT', errnr: TIMEOUT_ERRNR });
  });

  it('swallows a rejection that comes after the timeout', async () => {
    // Jest fails the test that is running when an unhandled rejection surfaces, so stay until
    // well after the late rejection.
    const outcome = await run(async () => {
      await sleep(60);
      throw new Error('late failure');
    }, 20);
    expect(outcome.status).toBe('TIMED_OUT');
    await sleep(120);
  });

  it('honours an execution timeout above the 32-bit timer limit', async () => {
    // 2^31 ms is about 24.9 days; config accepts durations like "30d" without a cap.
    const outcome = await run(async (_task, response) => {
      await sleep(50);
      response.payload = 'finished in time';
      return response;
    }, 2 ** 31);
    expect(outcome).toMatchObject({ status: 'DONE', payload: 'finished in time' });
  });
});

describe('runHandler: agent shutdown', () => {
  it('abandons a running handler when the shutdown signal is aborted', async () => {
    const shutdown = new AbortController();
    let signal: AbortSignal | undefined;
    const pending = run(
      (_task, _response, ctx) => {
        signal = ctx.signal;
        return never();
      },
      NO_TIMEOUT,
      shutdown.signal,
    );
    await sleep(20);
    shutdown.abort(new Error('agent shutting down'));
    const outcome = await within(pending, 1000);
    expect(outcome).toEqual({
      status: 'FAILED',
      errnr: 1,
      errmsg: 'agent shut down',
      payload: null,
      abandoned: true,
    });
    expect(signal?.aborted).toBe(true);
  });

  it('abandons a handler that rejects because of the shutdown', async () => {
    const shutdown = new AbortController();
    const pending = run(
      (_task, _response, ctx) =>
        new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
        }),
      NO_TIMEOUT,
      shutdown.signal,
    );
    await sleep(10);
    shutdown.abort();
    expect(await within(pending, 1000)).toMatchObject({ abandoned: true });
  });

  it('abandons a handler that throws on an already-aborted signal', async () => {
    const shutdown = new AbortController();
    shutdown.abort();
    const outcome = await run(
      (_task, _response, ctx) => {
        ctx.signal.throwIfAborted();
      },
      NO_TIMEOUT,
      shutdown.signal,
    );
    expect(outcome).toMatchObject({ status: 'FAILED', abandoned: true });
  });

  it("lets a finished run's signal be collected while the shutdown signal lives on", async () => {
    // An agent's shutdown signal lives as long as the agent; a run that stays reachable from it
    // is a leak of every task the agent ever ran (AbortSignal.any() with a listener did that).
    const gc = runInNewContext('gc') as () => void;
    const shutdown = new AbortController();
    const runs: Array<WeakRef<AbortSignal>> = [];
    for (let i = 0; i < 50; i += 1) {
      await run(
        (_task, response, ctx) => {
          ctx.signal.addEventListener('abort', () => undefined);
          runs.push(new WeakRef(ctx.signal));
          return response;
        },
        NO_TIMEOUT,
        shutdown.signal,
      );
    }
    // WeakRefs hold their target until the turn that made them is over
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(runs.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
  });

  it('returns promptly when the shutdown signal was aborted before the call', async () => {
    // The agent aborts its shutdown signal on close; a delivery still on its way to runHandler
    // (awaiting the delivery counter) then arrives with the signal already aborted.
    const shutdown = new AbortController();
    shutdown.abort();
    const outcome = await within(run(never, 50, shutdown.signal), 1000);
    expect(outcome).toMatchObject({ abandoned: true });
  });
});

describe('progressReport', () => {
  it('floors counts, keeps current at 0 or more and cuts the line to its limit', () => {
    expect(progressReport(2.7, 10.2, 'x'.repeat(1500))).toEqual({
      current: 2,
      total: 10,
      line: 'x'.repeat(RESULT_LIMITS.progressLineChars),
    });
    expect(progressReport(-5, null, null)).toEqual({ current: 0, total: null, line: null });
  });

  it('sends no report for a current that is no count', () => {
    for (const current of [Number.NaN, Infinity, 2 ** 60, '3', undefined]) {
      expect(progressReport(current, 10, 'x')).toBeNull();
    }
  });

  it('leaves out a total that is no count and an empty line', () => {
    expect(progressReport(1, Infinity, '')).toEqual({ current: 1, total: null, line: null });
  });
});

describe('checkResponse', () => {
  const fresh = () => ({ payload: null, errnr: 0, errmsg: null });

  it('falls back to the response when the value is undefined', () => {
    const response = { payload: 'p', errnr: 3, errmsg: 'm' };
    expect(checkResponse(undefined, response)).toEqual({
      status: 'FAILED',
      errnr: 3,
      errmsg: 'm',
      payload: 'p',
      abandoned: false,
    });
  });

  it('defaults missing errnr, errmsg and payload', () => {
    expect(checkResponse({}, fresh())).toEqual({
      status: 'DONE',
      errnr: 0,
      errmsg: null,
      payload: null,
      abandoned: false,
    });
  });

  it('describes a circular non-object value instead of throwing', () => {
    const loop: unknown[] = [];
    loop.push(loop);
    let outcome: Outcome | undefined;
    expect(() => {
      outcome = checkResponse(loop, fresh());
    }).not.toThrow();
    expect(outcome).toMatchObject({ status: 'FAILED', errnr: 1 });
    expect(outcome?.errmsg).toMatch(/not a response/);
  });
});

describe('the inline runner', () => {
  it("writes a module's ctx.log lines to the run's output as well as to the log", async () => {
    const logged: string[] = [];
    const output: Array<[string, string]> = [];
    const runner = inlineRunner(
      new Map([
        [
          'worker',
          (_task: HandlerTask, response: HandlerResponse, ctx: HandlerContext) => {
            ctx.log.info('copying', { files: 3 });
            ctx.log.child({ part: 'x' }).warn('slow disk');
            return response;
          },
        ],
      ]),
    );
    const log: Logger = {
      debug: (msg) => logged.push(msg),
      info: (msg) => logged.push(msg),
      warn: (msg) => logged.push(msg),
      error: (msg) => logged.push(msg),
      child: () => log,
    };
    const outcome = await runner.run({
      task: {
        id: 1,
        identifier: 't',
        type: 'worker',
        payload: null,
        endpoints: null,
        created_at: new Date().toISOString(),
        deliver_by: new Date().toISOString(),
      },
      endpoint: 'e1',
      attempt: 1,
      timeoutMs: 1000,
      signal: new AbortController().signal,
      log,
      progress: () => undefined,
      output: (stream, line) => output.push([stream, line]),
    });
    expect(outcome.status).toBe('DONE');
    expect(logged).toEqual(['copying', 'slow disk']);
    expect(output).toEqual([
      ['log', 'info copying {"files":3}'],
      ['log', 'warn slow disk'],
    ]);
  });
});
