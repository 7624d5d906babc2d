/**
 * Recurring schedules: what each makes (a task of `type` with its payload and targets), when
 * (`every_ms` or `cron` in `timezone`, between `start_at` and `end_at`), and where it stands
 * (`next_run_at`, null once it ended; `paused`). The scheduler walks the index on
 * `paused, next_run_at` for the schedules due.
 */
import type { Knex } from 'knex';
import { exactCollation, tableOptions, timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  const exact = await exactCollation(knex);
  await knex.schema.createTable('schedules', (table) => {
    tableOptions(knex, table);
    table.bigIncrements('id').primary();
    const name = table.string('name', 64).notNullable();
    if (exact) name.collate(exact);
    table.string('type', 32).notNullable();
    table.text('payload', 'longtext').notNullable();
    table.text('endpoints').nullable();
    table.text('selector').nullable();
    table.bigInteger('every_ms').nullable();
    table.string('cron', 200).nullable();
    table.string('timezone', 64).notNullable();
    timestamp(table, 'start_at').nullable();
    timestamp(table, 'end_at').nullable();
    table.string('catch_up', 8).notNullable();
    table.boolean('paused').notNullable();
    timestamp(table, 'next_run_at').nullable();
    timestamp(table, 'last_run_at').nullable();
    table.text('last_error').nullable();
    timestamp(table, 'created_at').notNullable();
    timestamp(table, 'updated_at').notNullable();
    table.unique(['name'], { indexName: 'schedules_name_unique' });
    table.index(['paused', 'next_run_at'], 'schedules_due_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('schedules');
}
