/** Several outbox rows per task now (waves, rounds, cancels); the plain index serves its key. */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('outbox', (table) => {
    table.dropUnique(['task_id'], 'outbox_task_id_unique');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('outbox', (table) => {
    table.unique(['task_id'], { indexName: 'outbox_task_id_unique' });
  });
}
