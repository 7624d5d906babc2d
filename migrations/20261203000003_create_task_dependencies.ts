/**
 * The tasks a task comes after (its POST's `after`), one row each in their order: the scheduler
 * finds the WAITING tasks none of whose dependencies is still open.
 */
import type { Knex } from 'knex';
import { tableOptions } from './support';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('task_dependencies', (table) => {
    tableOptions(knex, table);
    table.bigIncrements('id').primary();
    table
      .bigInteger('task_id')
      .unsigned()
      .notNullable()
      .references('id')
      .inTable('tasks')
      .onDelete('CASCADE');
    table
      .bigInteger('depends_on_id')
      .unsigned()
      .notNullable()
      .references('id')
      .inTable('tasks')
      .onDelete('CASCADE');
    table.integer('position').unsigned().notNullable();
    table.unique(['task_id', 'depends_on_id'], { indexName: 'task_dependencies_task_unique' });
    table.index(['depends_on_id'], 'task_dependencies_depends_on_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('task_dependencies');
}
