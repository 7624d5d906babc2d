/**
 * Tasks that run after others: a POST's `after` names the tasks (`<type>/<identifier>`) that
 * must be final first, and `on_dependency_failure` whether the task still runs when one of them
 * did not end DONE. What the handler then receives of them, `task.dependencies`, is bounded
 * here. Pure: the API reads the fields, the store carries out the verdict.
 */
import { checkString, type Fail } from './fields';
import { checkTaskType } from './names';
import type { ResponseStatus, TaskStatus } from './states';

export const DEPENDENCY_POLICIES = ['cancel', 'run'] as const;
export type DependencyPolicy = (typeof DEPENDENCY_POLICIES)[number];

/** the most tasks one task may come after */
export const MAX_DEPENDENCIES = 100;
/**
 * The most bytes of result payloads (as JSON) a task receives of its dependencies, all together.
 * Past it, a payload is left out (`payload: null, payload_omitted: true`), in the order of
 * `after` and of each dependency's endpoints: the handler can GET the rest.
 */
export const DEPENDENCY_PAYLOAD_BYTES = 256 * 1024;
/** the most endpoint responses listed per dependency (a broadcast may have many) */
export const DEPENDENCY_RESPONSES = 1000;

export interface TaskRef {
  type: string;
  identifier: string;
}

export const refText = (ref: TaskRef): string => `${ref.type}/${ref.identifier}`;

/** `after`: 1 to MAX_DEPENDENCIES distinct `<type>/<identifier>` (the identifier may hold "/"). */
export function readAfter(
  value: unknown,
  path: string,
  fail: Fail,
  maxIdentifierLength: number,
): TaskRef[] {
  if (!Array.isArray(value)) {
    throw fail(path, 'must be an array of "<type>/<identifier>" of the tasks to wait for');
  }
  if (value.length === 0) throw fail(path, 'must name at least one task (or be left out)');
  if (value.length > MAX_DEPENDENCIES) {
    throw fail(path, `names ${value.length} tasks; the limit is ${MAX_DEPENDENCIES}`);
  }
  const seen = new Map<string, number>();
  return value.map((item, i) => {
    const at = `${path}[${i}]`;
    const text = checkString(item, at, fail, { maxLength: 64 + maxIdentifierLength });
    const slash = text.indexOf('/');
    if (slash <= 0 || slash === text.length - 1) {
      throw fail(at, `must be "<type>/<identifier>", got ${JSON.stringify(text)}`);
    }
    const ref = {
      type: checkTaskType(text.slice(0, slash), at, fail),
      identifier: checkString(text.slice(slash + 1), at, fail, { maxLength: maxIdentifierLength }),
    };
    const first = seen.get(text);
    if (first !== undefined) throw fail(at, `repeats ${path}[${first}]`);
    seen.set(text, i);
    return ref;
  });
}

export function readPolicy(value: unknown, path: string, fail: Fail): DependencyPolicy {
  const found = DEPENDENCY_POLICIES.find((policy) => policy === value);
  if (found === undefined) {
    throw fail(path, `must be "cancel" or "run", got ${JSON.stringify(value)}`);
  }
  return found;
}

/** One endpoint's outcome of a dependency, as the handler receives it. */
export interface DependencyResponse {
  endpoint: string;
  status: ResponseStatus;
  errnr: number | null;
  errmsg: string | null;
  payload: unknown;
  /** set when the payload was left out, past DEPENDENCY_PAYLOAD_BYTES */
  payload_omitted?: true;
}

/** A dependency as the handler receives it in `task.dependencies`. */
export interface DependencyResult {
  type: string;
  identifier: string;
  status: TaskStatus;
  responses: DependencyResponse[];
  /** responses past DEPENDENCY_RESPONSES, not listed */
  responses_omitted?: number;
}

/**
 * The results within the bounds: payloads in order until their JSON reaches
 * DEPENDENCY_PAYLOAD_BYTES (a payload that would pass it, and every later one, is left out),
 * and at most DEPENDENCY_RESPONSES responses per dependency.
 */
export function boundDependencyResults(results: readonly DependencyResult[]): DependencyResult[] {
  let budget = DEPENDENCY_PAYLOAD_BYTES;
  return results.map((result) => {
    const listed = result.responses.slice(0, DEPENDENCY_RESPONSES);
    const bounded: DependencyResult = {
      ...result,
      responses: listed.map((response) => {
        const bytes =
          response.payload === null ? 0 : Buffer.byteLength(JSON.stringify(response.payload));
        if (bytes <= budget && budget > 0) {
          budget -= bytes;
          return response;
        }
        budget = 0;
        return { ...response, payload: null, payload_omitted: true };
      }),
    };
    const omitted = result.responses.length - listed.length;
    if (omitted > 0) bounded.responses_omitted = omitted;
    return bounded;
  });
}

export type DependencyVerdict = { kind: 'release' } | { kind: 'cancel'; reason: string };

/**
 * What a task whose dependencies are all final does: run when they all ended DONE or its policy
 * is "run"; else it is cancelled, naming the first that did not end DONE.
 */
export function dependencyVerdict(
  dependencies: ReadonlyArray<TaskRef & { status: TaskStatus }>,
  policy: DependencyPolicy,
): DependencyVerdict {
  const failed = dependencies.find((dependency) => dependency.status !== 'DONE');
  if (failed === undefined || policy === 'run') return { kind: 'release' };
  return {
    kind: 'cancel',
    reason: `dependency ${refText(failed)} ended ${failed.status}`,
  };
}
