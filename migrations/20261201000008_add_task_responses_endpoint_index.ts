/** The tasks that address an endpoint, newest first. */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task_responses', (table) => {
    table.index(['endpoint', 'task_id'], 'task_responses_endpoint_task_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task_responses', (table) => {
    table.dropIndex(['endpoint', 'task_id'], 'task_responses_endpoint_task_index');
  });
}
