/**
 * Earlier outcomes of an endpoint's response: a row of an earlier round (a retry opened a new
 * one) or attempt, as it was when it was closed. Append-only.
 */
import type { Knex } from 'knex';
import { exactCollation, tableOptions, timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  const exact = await exactCollation(knex);
  await knex.schema.createTable('response_history', (table) => {
    tableOptions(knex, table);
    table.bigIncrements('id').primary();
    table
      .bigInteger('task_id')
      .unsigned()
      .notNullable()
      .references('id')
      .inTable('tasks')
      .onDelete('CASCADE');
    const endpoint = table.string('endpoint', 64).notNullable();
    if (exact) endpoint.collate(exact);
    table.integer('round').unsigned().notNullable();
    table.integer('attempt').unsigned().notNullable();
    table.string('status', 16).notNullable();
    table.integer('errnr').nullable();
    table.text('errmsg').nullable();
    table.text('payload', 'longtext').nullable();
    table.text('progress').nullable();
    table.text('agent').nullable();
    timestamp(table, 'start_time').nullable();
    timestamp(table, 'finished_at').nullable();
    timestamp(table, 'recorded_at').notNullable();
    table.index(['task_id', 'endpoint', 'round'], 'response_history_task_endpoint_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('response_history');
}
