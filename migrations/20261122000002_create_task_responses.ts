import type { Knex } from 'knex';
import { exactCollation, tableOptions, timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  const exact = await exactCollation(knex);
  await knex.schema.createTable('task_responses', (table) => {
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
    table.boolean('expected').notNullable();
    table.string('status', 16).notNullable();
    table.integer('errnr').nullable();
    table.text('errmsg').nullable();
    table.text('payload', 'longtext').nullable();
    table.text('progress').nullable();
    table.integer('attempt').unsigned().notNullable().defaultTo(0);
    table.text('agent').nullable();
    timestamp(table, 'start_time').nullable();
    timestamp(table, 'last_event_at').nullable();
    timestamp(table, 'finished_at').nullable();
    timestamp(table, 'last_modified_time').notNullable();
    table.unique(['task_id', 'endpoint'], { indexName: 'task_responses_task_endpoint_unique' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('task_responses');
}
