/**
 * Dependencies, the pure part: reading `after` and `on_dependency_failure`, the verdict once
 * every dependency is final, and the bound on what a handler receives of them.
 */
import {
  DEPENDENCY_PAYLOAD_BYTES,
  DEPENDENCY_RESPONSES,
  MAX_DEPENDENCIES,
  boundDependencyResults,
  dependencyVerdict,
  readAfter,
  readPolicy,
  type DependencyResult,
} from '../../src/domain';

const fail = (path: string, problem: string): Error => new Error(`${path} ${problem}`);
const read = (value: unknown) => readAfter(value, 'after', fail, 255);

describe('readAfter', () => {
  it('reads <type>/<identifier>, the identifier keeping any further "/"', () => {
    expect(read(['worker/a', 'backup/db/2026-12-03'])).toEqual([
      { type: 'worker', identifier: 'a' },
      { type: 'backup', identifier: 'db/2026-12-03' },
    ]);
  });

  it.each([
    ['worker/a', /must be an array/],
    [[], /at least one task/],
    [['worker'], /after\[0\] must be "<type>\/<identifier>"/],
    [['/a'], /after\[0\] must be/],
    [['worker/'], /after\[0\] must be/],
    [['Worker/a'], /after\[0\] must be lower-case/],
    [[7], /after\[0\] must be a string/],
    [['worker/a', 'worker/a'], /after\[1\] repeats after\[0\]/],
    [Array.from({ length: MAX_DEPENDENCIES + 1 }, (_, i) => `worker/${i}`), /the limit is 100/],
  ])('refuses %j, naming the item', (value, message) => {
    expect(() => read(value)).toThrow(message);
  });

  it('reads the policy, cancel or run', () => {
    expect(readPolicy('run', 'p', fail)).toBe('run');
    expect(() => readPolicy('skip', 'p', fail)).toThrow('p must be "cancel" or "run", got "skip"');
  });
});

describe('dependencyVerdict', () => {
  const done = { type: 'worker', identifier: 'a', status: 'DONE' as const };
  const failed = { type: 'backup', identifier: 'b', status: 'FAILED' as const };

  it('releases when every dependency ended DONE, whatever the policy', () => {
    expect(dependencyVerdict([done, done], 'cancel')).toEqual({ kind: 'release' });
  });

  it('cancels, naming the first that did not end DONE, under "cancel"; runs under "run"', () => {
    expect(dependencyVerdict([done, failed], 'cancel')).toEqual({
      kind: 'cancel',
      reason: 'dependency backup/b ended FAILED',
    });
    expect(dependencyVerdict([done, failed], 'run')).toEqual({ kind: 'release' });
  });
});

describe('boundDependencyResults', () => {
  const result = (payloads: unknown[]): DependencyResult => ({
    type: 'worker',
    identifier: 'a',
    status: 'DONE',
    responses: payloads.map((payload, i) => ({
      endpoint: `e${i}`,
      status: 'DONE',
      errnr: 0,
      errmsg: null,
      payload,
    })),
  });

  it('passes small results unchanged', () => {
    const results = [result([{ a: 1 }, null]), result(['x'])];
    expect(boundDependencyResults(results)).toEqual(results);
  });

  it('leaves out the payloads past the byte bound, in order, and says so', () => {
    const half = 'x'.repeat(DEPENDENCY_PAYLOAD_BYTES / 2);
    const bounded = boundDependencyResults([result([half]), result([half, 'small'])]);
    expect(bounded[0]?.responses[0]?.payload).toBe(half);
    // the second half-sized one (with its quotes) passes the bound, and so does all after it
    expect(bounded[1]?.responses.map((r) => [r.payload, r.payload_omitted])).toEqual([
      [null, true],
      [null, true],
    ]);
    expect(bounded[1]?.responses[1]).toMatchObject({ endpoint: 'e1', status: 'DONE', errnr: 0 });
  });

  it('lists at most so many responses per dependency, and counts the rest', () => {
    const many = result(Array.from({ length: DEPENDENCY_RESPONSES + 5 }, () => null));
    const [bounded] = boundDependencyResults([many]);
    expect(bounded?.responses).toHaveLength(DEPENDENCY_RESPONSES);
    expect(bounded?.responses_omitted).toBe(5);
  });
});
