/**
 * Schema install and rollback through knex's migrator, fed from migrations/index.ts.
 */
import type { Knex } from 'knex';
import { migrations, type Migration } from '../../migrations';
import type { Db } from './db';

const source: Knex.MigrationSource<Migration> = {
  getMigrations: () => Promise.resolve([...migrations]),
  getMigrationName: (migration) => migration.name,
  getMigration: (migration) => Promise.resolve(migration),
};

const migrationConfig: Knex.MigratorConfig = {
  migrationSource: source,
  tableName: 'tasker_migrations',
};

/** Apply all pending migrations; returns the names applied. */
export async function migrateLatest(db: Db): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(migrationConfig)) as [number, string[]];
  return applied;
}

/** Undo the last batch, or every migration with `all`; returns the names undone. */
export async function migrateRollback(db: Db, all = false): Promise<string[]> {
  const [, undone] = (await db.migrate.rollback(migrationConfig, all)) as [number, string[]];
  return undone;
}

export async function migrationStatus(db: Db): Promise<{ applied: string[]; pending: string[] }> {
  const [completed, pending] = (await db.migrate.list(migrationConfig)) as [
    Array<{ name: string }>,
    Migration[],
  ];
  return { applied: completed.map((m) => m.name), pending: pending.map((m) => m.name) };
}
