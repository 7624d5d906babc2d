import type { Knex } from 'knex';
import { tableOptions, timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('outbox', (table) => {
    tableOptions(knex, table);
    table.bigIncrements('id').primary();
    table
      .bigInteger('task_id')
      .unsigned()
      .notNullable()
      .unique({ indexName: 'outbox_task_id_unique' })
      .references('id')
      .inTable('tasks')
      .onDelete('CASCADE');
    table.integer('attempts').unsigned().notNullable().defaultTo(0);
    timestamp(table, 'next_attempt_at').notNullable();
    table.text('last_error').nullable();
    timestamp(table, 'created_at').notNullable();
    table.index(['next_attempt_at'], 'outbox_next_attempt_at_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('outbox');
}
