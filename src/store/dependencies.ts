/**
 * Reading the graph of dependencies: which stored tasks a POST's `after` names, and whether a
 * task already depends, directly or through others, on a given one (the cycle a repost would
 * make).
 */
import type { TaskRef } from '../domain';
import { asStoreError, type Db } from './db';
import type { TaskRow } from './rows';

/** The id of each named task, in order; null for one that is not stored. */
export async function findTaskIds(db: Db, refs: readonly TaskRef[]): Promise<Array<number | null>> {
  try {
    const found = new Map<string, number>();
    for (const type of new Set(refs.map((ref) => ref.type))) {
      const identifiers = refs.filter((ref) => ref.type === type).map((ref) => ref.identifier);
      const rows = (await db('tasks')
        .select('id', 'identifier')
        .where({ type })
        .whereIn('identifier', identifiers)) as Array<Pick<TaskRow, 'id' | 'identifier'>>;
      for (const row of rows) found.set(`${type}\u0000${row.identifier}`, Number(row.id));
    }
    return refs.map((ref) => found.get(`${ref.type}\u0000${ref.identifier}`) ?? null);
  } catch (err) {
    throw asStoreError(err);
  }
}

/** tasks looked at, at most, when searching the graph for a cycle */
const MAX_VISITED = 10_000;

/**
 * Whether any of `from` is `target` or comes after it, directly or through other tasks: then a
 * task `target` coming after `from` would close a cycle.
 */
export async function reachesTask(
  db: Db,
  from: readonly number[],
  target: number,
): Promise<boolean> {
  const seen = new Set<number>(from);
  let frontier = [...seen];
  try {
    while (frontier.length > 0 && seen.size <= MAX_VISITED) {
      if (frontier.includes(target)) return true;
      const next = (await db('task_dependencies')
        .whereIn('task_id', frontier)
        .select('depends_on_id')) as Array<{ depends_on_id: number }>;
      frontier = [];
      for (const { depends_on_id: id } of next) {
        if (!seen.has(Number(id))) {
          seen.add(Number(id));
          frontier.push(Number(id));
        }
      }
    }
    return false;
  } catch (err) {
    throw asStoreError(err);
  }
}
