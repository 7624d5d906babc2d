/**
 * A schedule's backoff: after a FAILED run its interval (`interval_ms`, `every_ms` to begin
 * with) grows by `backoff_factor` up to `backoff_max_ms`, and goes back to `every_ms` after a
 * DONE one; `backoff_applied_at` is the due time whose run's outcome was last counted.
 */
import type { Knex } from 'knex';
import { timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('schedules', (table) => {
    table.double('backoff_factor').nullable();
    table.bigInteger('backoff_max_ms').nullable();
    table.bigInteger('interval_ms').nullable();
    timestamp(table, 'backoff_applied_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('schedules', (table) => {
    table.dropColumn('backoff_factor');
    table.dropColumn('backoff_max_ms');
    table.dropColumn('interval_ms');
    table.dropColumn('backoff_applied_at');
  });
}
