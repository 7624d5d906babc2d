/**
 * The outbox carries more than new tasks: a task's later waves and rounds, and cancels, each a
 * row of its own kind with what to publish in `body`.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('outbox', (table) => {
    table.string('kind', 16).notNullable().defaultTo('task');
    table.text('body').nullable();
    table.index(['task_id'], 'outbox_task_id_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('outbox', (table) => {
    table.dropIndex(['task_id'], 'outbox_task_id_index');
    table.dropColumn('kind');
    table.dropColumn('body');
  });
}
