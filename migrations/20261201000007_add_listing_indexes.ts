/**
 * Listing tasks newest first, by type, by status, and those that address an endpoint, at a
 * million tasks: each filter walks an index in id order instead of sorting a scan.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    table.index(['type', 'id'], 'tasks_type_id_index');
    table.index(['status', 'id'], 'tasks_status_id_index');
    table.index(['type', 'status', 'id'], 'tasks_type_status_id_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    table.dropIndex(['type', 'id'], 'tasks_type_id_index');
    table.dropIndex(['status', 'id'], 'tasks_status_id_index');
    table.dropIndex(['type', 'status', 'id'], 'tasks_type_status_id_index');
  });
}
