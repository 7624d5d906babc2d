/**
 * The scheduler finds the SCHEDULED tasks whose `not_before` has come by walking this index,
 * whatever the number of tasks released before.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    table.index(['status', 'not_before'], 'tasks_status_not_before_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    table.dropIndex(['status', 'not_before'], 'tasks_status_not_before_index');
  });
}
