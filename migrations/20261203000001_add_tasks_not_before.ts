/** A delayed task's due time: it waits SCHEDULED until then, and is published from then on. */
import type { Knex } from 'knex';
import { timestamp } from './support';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    timestamp(table, 'not_before').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (table) => {
    table.dropColumn('not_before');
  });
}
